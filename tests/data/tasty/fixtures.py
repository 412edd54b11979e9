"""A tiny hand-written Tasty Videos folder, in the real format, small enough to check by hand.

Recipes (`RECIPES`): name -> (xml kind, ingredient lines, step sentences, csvalignment.dat lines or
None for no file, feature rows). Feature row `r` of every file is `[r, 10 + r, -r]` (D = 3),
written to `<recipe folder>/resnet50.npy`, so a sampled row can be read off its first column.

- alpha (train, encoded): 3 steps, lines `1,4` `5,10` `-1,-1`.
- beta (train, decoded): 2 steps, 3 lines (one too many).
- gamma (validation, encoded): 3 steps, 1 line (two steps without video); says "blend".
- delta (test): no csvalignment.dat. eps (test): every step `-1,-1`.
- zeta (test, decoded): says "whisk".
split_2511 names its lists `Training_Set.txt`, `validation_set.txt`, `testing_set.txt`.
"""

import pathlib

import numpy as np

WORDS = ("Chop the onion . Fry in oil Enjoy ! 1 cup ; , diced 2 tbsp Serve hot Blend "
         "banana milk smooth").split()
ID2WORD = {i + 1: w.encode() for i, w in enumerate(WORDS)}
ID = {w: i for i, w in ID2WORD.items() for w in [w.decode()]}
DIM = 3

RECIPES = {
    "alpha": ("encoded", ["1 cup ; onion , diced", "2 tbsp ; oil"],
              ["Chop the onion .", "Fry the onion in oil .", "Enjoy !"], ["1,4", "5,10", "-1,-1"], 12),
    "beta": ("decoded", ["1 cup;onion, diced;veg", "2 tbsp;oil"],
             ["Chop the onion.", "Serve hot!"], ["2,3", " 4 , 4 ", "7,9"], 6),
    "gamma": ("encoded", ["1 cup ; banana", "1 cup ; milk"],
              ["Blend the banana .", "Blend the milk .", "Serve hot !"], ["1,2"], 4),
    "delta": ("decoded", ["1;onion"], ["Chop the onion."], None, 4),
    "eps": ("decoded", ["1;onion"], ["Chop the onion.", "Fry the onion."], ["-1,-1", "-1,-1"], 4),
    "zeta": ("decoded", ["2;eggs, beaten"], ["Whisk the eggs.", "Enjoy!"], ["1,3", "-1,-1"], 5),
}
SPLITS = {
    "split_4022": {"TRAIN_4022.txt": ["alpha", "beta"], "VAL_4022.txt": ["gamma"],
                   "TEST_4022.txt": ["delta", "eps", "zeta"]},
    "split_2511": {"Training_Set.txt": ["alpha", "zeta"], "validation_set.txt": ["beta"],
                   "testing_set.txt": ["gamma"]},
}


def encode(text: str) -> str:
  return " ".join(str(ID[w]) for w in text.split())


def xml(ingredients, steps, url="https://example.invalid/r") -> str:
  """A recipe XML as released: one element per line."""
  lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<recipe>", f"  <url>{url}</url>",
           "  <ingredients>", *(f"    <ingredient>{x}</ingredient>" for x in ingredients),
           "  </ingredients>", "  <steps_updated>",
           *(f"    <steps_updated>{x}</steps_updated>" for x in steps), "  </steps_updated>",
           "</recipe>"]
  return "\n".join(lines) + "\n"


def feature_rows(rows: int) -> np.ndarray:
  r = np.arange(rows, dtype=np.float32)
  return np.stack([r, 10 + r, -r], axis=1)


def recipe_dir(root, name) -> pathlib.Path:
  return pathlib.Path(root) / "ALL_RECIPES_without_videos" / name


def write(root) -> pathlib.Path:
  """Writes the fixture under `root` and returns it."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  (root / "id2word_tasty.txt").write_text(repr(ID2WORD))
  for name, (kind, ingredients, steps, alignment, rows) in RECIPES.items():
    d = recipe_dir(root, name)
    d.mkdir(parents=True)
    if kind == "encoded":
      (d / "recipe_encoded.xml").write_text(
          xml([encode(x) for x in ingredients], [encode(x) for x in steps]))
    else:
      (d / "recipe.xml").write_text(xml(ingredients, steps))
    if alignment is not None:
      (d / "csvalignment.dat").write_text("\n".join(alignment) + "\n")
    (d / "fps.txt").write_text("29.97\n")
    np.save(d / "resnet50.npy", feature_rows(rows))
  for layout, files in SPLITS.items():
    (root / "SPLITS" / layout).mkdir(parents=True)
    for filename, names in files.items():
      (root / "SPLITS" / layout / filename).write_text("".join(f"{n}\n" for n in names))
  (root / "ALL_RECIPES.txt").write_text("".join(f"{n}\n" for n in sorted(RECIPES)))
  return root


def replace_line(path, line: int, text: str) -> None:
  """Replaces 1-based `line` of a text file."""
  path = pathlib.Path(path)
  lines = path.read_text().split("\n")
  lines[line - 1] = text
  path.write_text("\n".join(lines))
