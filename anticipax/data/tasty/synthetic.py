"""Synthetic Tasty Videos: a generated recipe collection written in the real file format.

A demo and test stand-in for Tasty Videos that needs no download and goes through the real
reader and builder. Recipes follow a few dish grammars over ingredients (stir fry, pasta bake,
smoothie, ...). Each step sentence names a verb and a main object ("heat the oil in a wok",
"add the shrimp to the wok"); its video features are noisy copies of a prototype of that
(verb, object).

The task is built so that reading the past steps beats watching them. Dishes share steps
("heat the oil in a pan", "chop the onion"), so the previous step alone does not fix the next
one; the dish and the ingredients named earlier do, and a text teacher sees them exactly. The
features show the verb and the kind of object (vegetable, cheese, ...) well but which vegetable
only faintly, and every step adds a noise shared by all its rows that averaging cannot remove,
so a visual student is left guessing the ingredient names the next sentence repeats.

The files exercise the format's quirks: most recipes are `recipe_encoded.xml` (decoded with
`id2word_tasty.txt`), every 10th is a decoded `recipe.xml`; some steps are `-1,-1`; a few
csvalignment.dat files have extra or missing lines; a few recipes have no alignment file or no
aligned step; both split layouts (`split_4022` and a differently named `split_2511`) are written.

  b = synthetic.load_demo("/tmp/tfds")  # Writes the files once, then builds the dataset.

or, step by step:

  info = synthetic.write_synthetic_tasty("/tmp/tasty", num_recipes=600, seed=0)
  config = builder.make_config(features=synthetic.FEATURES_PATTERN)
  b = builder.load(data_dir="/tmp/tfds", manual_dir=str(info.root), config=config)

Everything is a deterministic function of the arguments (numpy generators seeded with integer
tuples, never Python's salted `hash`).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
from xml.sax import saxutils

import numpy as np

from anticipax.data.corpus import readers as corpus_readers
from anticipax.data.tasty import builder
from anticipax.data.tasty import features as feature_files
from anticipax.data.tasty import reader

FEATURES_PATTERN = "features/{recipe}.npy"
SPLIT_4022_FILES = {"train": "TRAIN_4022.txt", "validation": "VAL_4022.txt", "test": "TEST_4022.txt"}
SPLIT_2511_FILES = {"train": "training_set.txt", "validation": "validation_set.txt",
                    "test": "testing_set.txt"}
FINAL_STEP = "Enjoy!"  # Real recipes often end so, without a video segment.

POOLS = {
    "veg": ("onion", "carrot", "bell pepper", "broccoli", "zucchini", "mushroom", "spinach",
            "tomato", "potato", "cabbage", "celery", "eggplant", "kale", "corn", "peas", "asparagus",
            "green beans", "cauliflower", "leek", "sweet potato"),
    "protein": ("chicken", "beef", "shrimp", "tofu", "pork", "salmon", "turkey", "lamb", "cod", "sausage",
                "chickpeas", "tuna"),
    "cheese": ("cheddar", "mozzarella", "parmesan", "feta", "gouda", "ricotta", "swiss", "goat cheese"),
    "fruit": ("banana", "strawberry", "blueberry", "mango", "peach", "pineapple", "apple", "kiwi",
              "raspberry", "pear", "cherry", "orange"),
    "sauce": ("soy sauce", "teriyaki sauce", "tomato sauce", "pesto", "hoisin sauce", "salsa", "curry sauce",
              "alfredo sauce", "bbq sauce", "sweet chili sauce"),
    "herb": ("basil", "parsley", "cilantro", "thyme", "dill", "mint", "rosemary", "oregano"),
    "pasta": ("spaghetti", "penne", "macaroni", "fusilli", "rigatoni", "farfalle"),
    "grain": ("rice", "quinoa", "noodles", "couscous", "barley", "bulgur"),
}
# Dish grammars: (name, pantry ingredients, step templates). `{slot}` is an ingredient drawn from
# POOLS[slot without digits] (distinct within a recipe), `*` marks the step's main object, a
# leading `?` an optional step (dropped half the time), `~` a step that may swap with the next.
DISHES = (
    ("stir fry", ("oil",), (
        "slice the *{protein} into thin strips", "~chop the *{veg} into small pieces",
        "?slice the *{veg2}", "heat the *oil in a wok", "add the *{protein} to the wok",
        "cook the *{protein} until browned", "add the *{veg} and {veg2} to the wok",
        "pour the *{sauce} over the {protein}", "stir until the *{sauce} thickens",
        "serve the *{protein} over {grain}")),
    ("pasta bake", ("oil", "salt"), (
        "preheat the *oven to 400 degrees", "boil the *{pasta} in salted water",
        "drain the *{pasta}", "?chop the *{veg}", "heat the *oil in a pan",
        "cook the *{veg} until soft", "stir in the *{sauce}", "add the *{pasta} to the pan",
        "transfer the *{pasta} to a baking dish", "sprinkle the *{cheese} on top",
        "bake until the *{cheese} is bubbly")),
    ("smoothie", ("milk", "yogurt", "honey"), (
        "?peel the *{fruit}", "~slice the *{fruit}", "?slice the *{fruit2}",
        "add the *{fruit} and {fruit2} to a blender", "pour the *milk into the blender",
        "?add the *yogurt and honey", "blend until the *smoothie is smooth",
        "pour the *smoothie into a glass", "top with sliced *{fruit2}")),
    ("omelette", ("eggs", "butter", "salt", "pepper"), (
        "crack the *eggs into a bowl", "whisk the *eggs with salt and pepper", "~chop the *{veg}",
        "?grate the *{cheese}", "melt the *butter in a pan", "cook the *{veg} until soft",
        "pour the *eggs into the pan", "sprinkle the *{cheese} over the eggs",
        "fold the *omelette in half", "?garnish with *{herb}")),
    ("salad", ("oil", "lemon juice", "salt"), (
        "wash the *{veg}", "~chop the *{veg}", "slice the *{veg2}", "?crumble the *{cheese}",
        "whisk the *oil and lemon juice", "add the *{veg} and {veg2} to a bowl",
        "pour the *dressing over the salad", "toss the *salad", "top with the *{cheese}")),
    ("soup", ("oil", "garlic", "broth", "salt", "pepper"), (
        "~chop the *{veg}", "mince the *garlic", "heat the *oil in a pot",
        "cook the *{veg} and garlic until soft", "?add the *{protein} to the pot",
        "pour the *broth into the pot", "simmer the *soup for 20 minutes",
        "?blend the *soup until smooth", "season the *soup with salt and pepper",
        "garnish with *{herb}")),
    ("tacos", ("oil", "tortillas", "chili powder"), (
        "season the *{protein} with chili powder", "chop the *{veg}", "heat the *oil in a pan",
        "cook the *{protein} until browned", "warm the *tortillas in a pan",
        "fill the *tortillas with {protein}", "top with *{veg} and {cheese}",
        "?garnish with *{herb}")),
    ("roast", ("oil", "salt", "pepper"), (
        "preheat the *oven to 400 degrees", "cut the *{veg} into chunks",
        "toss the *{veg} with oil and salt", "spread the *{veg} on a baking sheet",
        "roast until the *{veg} is golden", "season the *{protein} with salt and pepper",
        "heat the *oil in a pan", "sear the *{protein} on both sides",
        "?sprinkle the *{herb} on top", "serve the *{protein} with the {veg}")),
)
_AMOUNTS = ("1", "2", "3", "1/2 cup", "1 cup", "2 cups", "1 tablespoon", "2 tablespoons",
            "1 teaspoon", "1 pound")
_PREPARATION = ("diced", "sliced", "chopped", "fresh", "to taste")
_SLOT = re.compile(r"\{(\w+?)\d*\}")
_TOKEN = re.compile(r"\w+|[^\w\s]")
# Independent random streams (the second seed word): asking for more recipes never changes the
# prototypes or the recipes already there.
_PROTOTYPES, _RECIPE, _FEATURES, _SPLITS, _IDS = range(5)
_CATEGORY = {name: pool for pool, names in POOLS.items() for name in names}


@dataclasses.dataclass(frozen=True)
class Step:
  sentence: str  # As written in recipe.xml: "Chop the onion into small pieces."
  verb: str
  obj: str  # The main object; its kind is its POOLS name (or the object itself).


@dataclasses.dataclass(frozen=True)
class SyntheticTasty:
  """What `write_synthetic_tasty` wrote.

  Attributes:
    root: the dataset root (use it as the manual dir).
    recipes: every recipe name, by index.
    dishes: the dish of each recipe.
    splits: layout ("split_4022", "split_2511") -> split -> recipe names in list order.
    quirks: "decoded_xml", "alignment_too_long", "alignment_too_short", "no_alignment_file",
      "no_aligned_steps" -> recipe names.
    features_pattern: where the features are, for `builder.make_config(features=...)`.
  """
  root: pathlib.Path
  recipes: tuple[str, ...]
  dishes: tuple[str, ...]
  splits: dict[str, dict[str, tuple[str, ...]]]
  quirks: dict[str, tuple[str, ...]]
  features_pattern: str = FEATURES_PATTERN


def _quirk(index: int) -> str:
  """Fixed by index (not drawn) so that even a small collection has every quirk."""
  if index % 50 == 11:
    return "no_alignment_file"
  if index % 50 == 13:
    return "no_aligned_steps"
  return {3: "alignment_too_long", 7: "alignment_too_short"}.get(index % 25, "")


def make_recipe(index: int, seed: int) -> tuple[str, str, list[str], list[Step]]:
  """`(name, dish, ingredient lines, steps)` of recipe `index`, from its own random stream."""
  rng = np.random.default_rng([seed, _RECIPE, index])
  dish, pantry, templates = DISHES[int(rng.integers(len(DISHES)))]
  fills = {}
  for slot in dict.fromkeys(m.group(0)[1:-1] for t in templates for m in _SLOT.finditer(t)):
    pool = [x for x in POOLS[re.sub(r"\d+$", "", slot)] if x not in fills.values()]
    fills[slot] = pool[int(rng.integers(len(pool)))]
  templates = list(templates)
  i = 0
  while i < len(templates) - 1:
    if templates[i].startswith("~") and rng.random() < 0.5:
      templates[i], templates[i + 1] = templates[i + 1], templates[i]
      i += 1  # A step moves at most one place.
    i += 1
  steps = []
  for template in templates:
    if rng.random() < 0.5 and template.startswith("?"):
      continue
    words = template.lstrip("?~").format(**fills).split(" ")
    obj = next(w for w in template.lstrip("?~").split(" ") if w.startswith("*"))[1:].format(**fills)
    sentence = " ".join(words).replace("*", "")
    steps.append(Step(sentence[0].upper() + sentence[1:] + ".", words[0], obj))
  if rng.random() < 0.4:
    steps.append(Step(FINAL_STEP, "", ""))
  ingredients = [f"{_AMOUNTS[int(rng.integers(len(_AMOUNTS)))]};{name}, "
                 f"{_PREPARATION[int(rng.integers(len(_PREPARATION)))]};{_CATEGORY[name]}"
                 for name in dict.fromkeys(fills.values())]
  ingredients += [f"{_AMOUNTS[int(rng.integers(len(_AMOUNTS)))]};{name};pantry" for name in pantry]
  main = next(iter(fills.values()))
  name = re.sub(r"[^a-z0-9]+", "-", f"{dish} with {main}") + f"-{index:04d}"
  return name, dish, ingredients, steps


def _alignment(rng: np.random.Generator, steps: list[Step], quirk: str):
  """csvalignment.dat lines (`start,end` units or None) and the number of units of video."""
  spans, unit = [], int(rng.integers(0, 4))
  for i, step in enumerate(steps):
    if step.sentence == FINAL_STEP or (quirk == "no_aligned_steps") or (
        i > 0 and rng.random() < 0.08):
      spans.append(None)
      continue
    start = unit + 1 + int(rng.integers(0, 4))
    unit = start + int(rng.integers(1, 14))  # 2..14 units: some steps have fewer rows than F.
    spans.append((start, unit))
  length = max(1, unit + int(rng.integers(0, 6)))
  if quirk == "alignment_too_long":  # Segments for steps the recipe no longer has.
    for _ in range(int(rng.integers(1, 4))):
      spans.append((length + 1, length + 4))
      length += 4
  elif quirk == "alignment_too_short":
    spans = spans[:max(1, len(spans) - int(rng.integers(1, 3)))]
  return spans, length


def _prototypes(seed: int, dim: int, object_weight: float):
  """The prototype function of a step: its verb + its object's kind + a faint object part."""
  rng = np.random.default_rng([seed, _PROTOTYPES])
  verbs = sorted({t.lstrip("?~").split(" ")[0] for _, _, ts in DISHES for t in ts})
  objects = sorted({re.sub(r"[^\w ]", "", w) for _, _, ts in DISHES for t in ts
                    for w in t.split(" ") if w.startswith("*") and "{" not in w} | set(_CATEGORY))
  kinds = sorted(set(objects) | set(POOLS))
  verb_part = dict(zip(verbs, rng.standard_normal((len(verbs), dim))))
  kind_part = dict(zip(kinds, rng.standard_normal((len(kinds), dim))))
  object_part = dict(zip(objects, rng.standard_normal((len(objects), dim))))
  background = rng.standard_normal(dim)
  scale = 1.0 / np.sqrt(2.0 + object_weight ** 2)  # Unit variance per dimension.

  def prototype(step: Step | None) -> np.ndarray:
    if step is None:
      return background
    kind = _CATEGORY.get(step.obj, step.obj)
    return scale * (verb_part[step.verb] + kind_part[kind] + object_weight * object_part[step.obj])
  return prototype


def _features(rng, prototype, steps, spans, length, stride, dim, step_noise, noise):
  """float32 `[rows, dim]`: each row the prototype of the step it shows, plus noise."""
  frames = length * reader.UNIT_FRAMES
  rows = -(-frames // stride)
  label = np.full([rows], -1)
  first_frames = np.arange(rows) * stride + 1
  for i, span in enumerate(spans[:len(steps)]):
    if span is not None:
      first, last = reader.Span(*span, line=0).frames
      label[(first_frames >= first) & (first_frames <= last)] = i
  offsets = rng.standard_normal((len(steps), dim)) * step_noise  # Shared by a step's rows.
  x = np.stack([prototype(steps[i]) + offsets[i] if i >= 0 else prototype(None) for i in label])
  return (x + noise * rng.standard_normal((rows, dim))).astype(np.float32)


def _xml(url: str, ingredients: list[str], steps: list[str]) -> str:
  def block(tag, child, texts):
    inner = "".join(f"    <{child}>{saxutils.escape(t)}</{child}>\n" for t in texts)
    return f"  <{tag}>\n{inner}  </{tag}>\n"
  return ("<?xml version='1.0' encoding='UTF-8'?>\n<recipe>\n"
          f"  <url>{saxutils.escape(url)}</url>\n" + block("ingredients", "ingredient", ingredients)
          + block("steps", "step", steps) + block("steps_updated", "steps_updated", steps)
          + "</recipe>\n")


def write_synthetic_tasty(root: str | os.PathLike, *, num_recipes: int = 600,
                          feature_dim: int = 64, seed: int = 0, stride: int = 5,
                          noise_std: float = 1.5, step_noise_std: float = 0.8,
                          object_weight: float = 0.35) -> SyntheticTasty:
  """Writes a synthetic Tasty Videos collection under `root` (see the module docstring).

  Args:
    root: the dataset root to create (the builder's manual dir).
    num_recipes: recipes written (a few are skipped by the builder on purpose).
    feature_dim: D of the features.
    seed: root seed of every random stream.
    stride: frames between feature rows.
    noise_std: std of the per-row gaussian noise (prototypes have unit variance per dimension).
    step_noise_std: std of a noise shared by all rows of one step.
    object_weight: weight of the ingredient-specific part of a prototype, next to unit-weight
      verb and ingredient-kind parts; small values make ingredients hard to tell apart.

  Returns:
    What was written, for tests and demos.
  """
  root = pathlib.Path(root)
  prototype = _prototypes(seed, feature_dim, object_weight)
  recipes = [make_recipe(i, seed) for i in range(num_recipes)]
  names = [r[0] for r in recipes]
  quirks = {q: [] for q in ("decoded_xml", "alignment_too_long", "alignment_too_short",
                            "no_alignment_file", "no_aligned_steps")}
  encoded = {}  # name -> (ingredient lines, step sentences) still to encode
  for i, (name, _, ingredients, steps) in enumerate(recipes):
    directory = root / reader.RECIPES_DIR / name
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, _FEATURES, i])
    quirk = _quirk(i)
    spans, length = _alignment(rng, steps, quirk)
    if quirk:
      quirks[quirk].append(name)
    if quirk != "no_alignment_file":
      (directory / reader.ALIGNMENT).write_text(
          "".join(f"{s[0]},{s[1]}\n" if s else "-1,-1\n" for s in spans))
    (directory / reader.FPS).write_text(f"{(24, 25, 29.97, 30)[int(rng.integers(4))]}\n")
    sentences = [s.sentence for s in steps]
    if i % 10 == 4:
      quirks["decoded_xml"].append(name)
      (directory / reader.DECODED_XML).write_text(
          _xml(f"https://example.invalid/{name}", ingredients, sentences))
    else:
      encoded[name] = (ingredients, sentences)
    path = feature_files.features_path(FEATURES_PATTERN, root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, _features(rng, prototype, steps, spans, length, stride, feature_dim,
                            step_noise_std, noise_std))
  # Word ids in a random order, as an opaque dictionary would have them.
  words = sorted({w for ings, sents in encoded.values() for t in (*ings, *sents)
                  for w in _TOKEN.findall(t)})
  ids = np.random.default_rng([seed, _IDS]).permutation(len(words)) + 1
  id_of = dict(zip(words, ids.tolist()))
  (root / reader.ID2WORD).write_text(repr({i: w.encode() for w, i in sorted(
      id_of.items(), key=lambda kv: kv[1])}))
  for name, (ingredients, sentences) in encoded.items():
    def encode(t):
      return " ".join(str(id_of[w]) for w in _TOKEN.findall(t))
    (root / reader.RECIPES_DIR / name / reader.ENCODED_XML).write_text(
        _xml(f"https://example.invalid/{name}", [encode(t) for t in ingredients],
             [encode(t) for t in sentences]))
  (root / reader.ALL_RECIPES).write_text("".join(f"{n}\n" for n in sorted(names)))
  splits = _write_splits(root, names, np.random.default_rng([seed, _SPLITS]))
  return SyntheticTasty(root=root, recipes=tuple(names), dishes=tuple(r[1] for r in recipes),
                        splits=splits, quirks={k: tuple(v) for k, v in quirks.items()})


def _write_splits(root, names, rng):
  """split_4022 over every recipe (70/10/20); split_2511 over two thirds, named otherwise."""
  out = {}
  for layout, files, fraction in (("split_4022", SPLIT_4022_FILES, 1.0),
                                  ("split_2511", SPLIT_2511_FILES, 2 / 3)):
    order = rng.permutation(len(names))[:max(3, round(fraction * len(names)))]
    n_train, n_val = round(0.7 * len(order)), max(1, round(0.1 * len(order)))
    parts = {"train": order[:n_train], "validation": order[n_train:n_train + n_val],
             "test": order[n_train + n_val:]}
    folder = root / "SPLITS" / layout
    folder.mkdir(parents=True, exist_ok=True)
    out[layout] = {}
    for split, indices in parts.items():
      out[layout][split] = tuple(names[i] for i in indices)
      (folder / files[split]).write_text("".join(f"{n}\n" for n in out[layout][split]))
  return out


CORPUS_FILE = "full_dataset.csv"  # RecipeNLG's file name.
CORPUS = "<synthetic>"  # `data.corpus` value: the corpus a demo collection writes beside itself.
_CORPUS_FIRST_INDEX = 1_000_000  # Corpus recipes come from the same grammars, past every video's index.


def corpus_rows(num_recipes: int, seed: int) -> list[tuple[str, list[str], list[str], str, str, list[str]]]:
  """Text-only recipes from the same dish grammars as RecipeNLG rows.

  Returns `(title, ingredient lines, directions, link, source, NER)` per recipe: cased step sentences
  with punctuation, ingredient lines as a cook writes them ("1 cup broccoli, chopped") and their names
  in NER. They are recipes without video, as a recipe site has many more of than a video collection;
  by chance a few equal a video recipe step for step, which is what the corpus leak guard is for.
  """
  rows = []
  for i in range(_CORPUS_FIRST_INDEX, _CORPUS_FIRST_INDEX + num_recipes):
    name, dish, ingredients, steps = make_recipe(i, seed)
    fields = [line.split(";") for line in ingredients]
    lines = [f"{amount} {item}" for amount, item, _ in fields]
    ner = [item.split(",")[0] for _, item, _ in fields]
    rows.append((dish.title(), lines, [s.sentence for s in steps], f"example.invalid/corpus/{name}",
                 "Gathered", ner))
  return rows


def write_corpus(path: str | os.PathLike, num_recipes: int, seed: int = 0) -> pathlib.Path:
  """Writes `corpus_rows(num_recipes, seed)` as a RecipeNLG `full_dataset.csv` (aside, then renamed)."""
  path = pathlib.Path(path)
  if not path.exists():
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.partial-{os.getpid()}")
    corpus_readers.write_recipenlg(partial, corpus_rows(num_recipes, seed))
    os.replace(partial, path)
  return path


def corpus_path(data_dir: str | None, *, num_recipes: int = 600, feature_dim: int = 64, seed: int = 0,
                num_corpus_recipes: int = 4000) -> pathlib.Path:
  """The RecipeNLG-form corpus beside a demo collection (`load_demo`'s arguments), written once."""
  base = _demo_dir(data_dir, num_recipes, feature_dim, seed)
  return write_corpus(base / f"corpus_n{num_corpus_recipes}" / CORPUS_FILE, num_corpus_recipes, seed)


def manual_dir(data_dir: str | None, *, num_recipes: int = 600, feature_dim: int = 64, seed: int = 0) -> pathlib.Path:
  """Where `load_demo` writes the Tasty files of a demo collection."""
  return _demo_dir(data_dir, num_recipes, feature_dim, seed) / "manual"


GENERATOR_VERSION = 2  # Bumped when the generator writes other recipes: collections never mix versions.


def _demo_dir(data_dir, num_recipes, feature_dim, seed) -> pathlib.Path:
  base = pathlib.Path(data_dir or os.path.expanduser("~/tensorflow_datasets"))
  return base / f"tasty_synthetic_v{GENERATOR_VERSION}_n{num_recipes}_d{feature_dim}_s{seed}"


def load_demo(data_dir: str | None, *, num_recipes: int = 600, feature_dim: int = 64,
              seed: int = 0, **config) -> builder.TastyVideos:
  """Writes (once) a synthetic collection and returns its prepared `tasty_videos` builder.

  Files go to `<data_dir>/tasty_synthetic_v<version>_n<num_recipes>_d<feature_dim>_s<seed>/` (`manual/`
  for the Tasty files, `tfds/` for the prepared dataset), so that different collections never
  share a prepared dataset.

  Args:
    data_dir: base directory; None uses TFDS's default (`~/tensorflow_datasets`).
    num_recipes, feature_dim, seed: as in `write_synthetic_tasty`.
    **config: other `builder.make_config` arguments (split, frames_per_step, max_steps, ...).
  """
  base = _demo_dir(data_dir, num_recipes, feature_dim, seed)
  manual = base / "manual"
  if not manual.exists():
    # Written aside and renamed, so an interrupted run never leaves a partial collection.
    partial = base / f"manual.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    write_synthetic_tasty(partial, num_recipes=num_recipes, feature_dim=feature_dim, seed=seed)
    try:
      partial.rename(manual)
    except OSError:  # Another process finished first; its files are the same.
      shutil.rmtree(partial, ignore_errors=True)
  return builder.load(data_dir=str(base / "tfds"), manual_dir=str(manual),
                      config=builder.make_config(features=FEATURES_PATTERN, **config))
