"""The `recipe_corpus` TFDS builder: counts, truncation, the leak guard, failed builds, Tasty's text form."""

import logging
import os

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

from anticipax.data.corpus import builder
from anticipax.data.corpus import readers
from anticipax.data.corpus.leak_guard import LeakGuard
from anticipax.data.errors import DataError
from anticipax.data.tasty import builder as tasty_builder
from anticipax.data.tasty import reader as tasty_reader
from tests.data.corpus import fixtures as fx
from tests.data.tasty.test_builder import _Records  # the build log, as the Tasty builder test reads it

tfds.disable_progress_bar()


def _row(title, directions, link="", ner=("salt",)):
  return (title, [f"1 cup {n}" for n in ner], list(directions), link, "Gathered", list(ner))


ROWS = [
    _row("Soup", ["Chop the onion.", "Fry it in oil!", "Add water.", "Simmer 20 min.", "Serve hot."],
         "www.example.com/soup", ner=("Onion", "olive oil")),                        # 0 kept, truncated to 4
    _row("Tea", ["Boil water."]),                                                      # 1 too short
    _row("Copy", ["CHOP the onion , finely .", "  ", "Fry it!"], "x.com/copy"),        # 2 leak_steps
    _row("Same page", ["Mix.", "Bake."], "https://www.tasty.co/recipe/cake/#top"),    # 3 leak_url
    _row("Toast", ["Toast the bread.", "", "Butter it."], "x.com/toast"),              # 4 kept, 1 empty step
    _row("Empty", []),                                                                 # 5 too short
    _row("Salad", ["Wash.", "Cut.", "Toss."], "x.com/salad", ner=()),                  # 6 kept
]
GUARD = LeakGuard.from_lists([["Chop the onion, finely.", "Fry it!"]], ["tasty.co/recipe/cake"])


def _load(path, data_dir, **kwargs):
  records, absl_logger = _Records(), logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.addHandler(records)
  absl_logger.setLevel(logging.INFO)
  try:
    return builder.load(path, data_dir=str(data_dir), **kwargs), records.lines
  finally:
    absl_logger.removeHandler(records)
    absl_logger.setLevel(level)


def _examples(b):
  source = b.as_data_source("train")
  return [source[i] for i in range(len(source))]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("corpus")
  readers.write_recipenlg(tmp / "full_dataset.csv", ROWS)
  b, lines = _load(tmp / "full_dataset.csv", tmp / "tfds", leak_guard=GUARD, max_steps=4)
  return b, lines, tmp


def test_counts_in_metadata_and_log(built):
  b, lines, _ = built
  # Empty steps: row 2's "  " (removed before the guard compares) and row 4's "".
  assert b.info.metadata["counts"] == {"read": 7, "kept": 3, "leak_steps": 1, "leak_url": 1, "too_short": 2,
                                       "truncated": 1, "empty_steps": 2}
  assert b.info.metadata["format"] == "recipenlg" and b.info.metadata["corpus_file"] == "full_dataset.csv"
  log = [line for line in lines if line.startswith("Corpus full_dataset.csv")]
  assert len(log) == 1, lines
  for text in ("read 7 recipes, kept 3", "leak_steps 1", "leak_url 1", "too_short 2 (fewer than 2 steps)",
               "truncated to 4 steps: 1", "empty steps removed: 2"):
    assert text in log[0], log[0]


def test_examples_in_file_order_truncated_and_padded(built):
  b = built[0]
  examples = _examples(b)
  assert [e["recipe"] for e in examples] == [b"recipenlg:0", b"recipenlg:4", b"recipenlg:6"]
  soup = examples[0]
  assert soup["steps"].tolist() == [b"chop the onion .", b"fry it in oil !", b"add water .", b"simmer 20 min ."]
  assert soup["num_steps"] == 4 and soup["ingredients"] == b"onion, olive oil"
  assert soup["title"] == b"Soup" and soup["url"] == b"www.example.com/soup"
  toast = examples[1]
  assert toast["steps"].tolist() == [b"toast the bread .", b"butter it .", b"", b""]
  np.testing.assert_array_equal(toast["step_mask"], [1, 1, 0, 0])
  assert toast["step_mask"].dtype == np.int32
  assert examples[2]["ingredients"] == b""
  # Read with grain, as the training pipeline does.
  assert list(grain.MapDataset.source(b.as_data_source("train")).map(lambda e: int(e["num_steps"]))) == [4, 2, 3]


def test_features_are_those_of_tasty_videos(built):
  corpus = builder.RecipeCorpus(data_dir=str(built[2] / "tfds"), config=built[0].builder_config).info.features
  tasty = tasty_builder.TastyVideos(data_dir=str(built[2] / "tasty_tfds"),
                                    config=tasty_builder.make_config(max_steps=4)).info.features
  for key in ("recipe", "ingredients", "steps", "num_steps", "step_mask"):
    assert repr(corpus[key]) == repr(tasty[key]), key


def test_examples_equal_what_the_tasty_builder_stores_for_the_same_text(built):
  # The same recipe through tasty_videos' make_example: the text fields must be byte for byte equal.
  for example, row in zip(_examples(built[0]), [ROWS[0], ROWS[4], ROWS[6]]):
    title, _, directions, _, _, ner = row
    recipe = tasty_reader.Recipe(
        name=example["recipe"].decode(), directory=built[2], ingredients=tuple(ner),
        steps=tuple(s for s in directions if s.strip()), spans=(None,) * len(directions),
        alignment_path=built[2])
    tasty = tasty_builder.make_example(recipe, np.zeros([1, 3], np.float32),
                                       tasty_builder.make_config(max_steps=4, frames_per_step=2))
    assert example["recipe"].decode() == tasty["recipe"]
    assert example["ingredients"].decode() == tasty["ingredients"], title
    assert [s.decode() for s in example["steps"]] == list(tasty["steps"]), title
    assert int(example["num_steps"]) == tasty["num_steps"]
    np.testing.assert_array_equal(example["step_mask"], tasty["step_mask"])


def test_prepared_once_and_independent_of_the_input_file(built, tmp_path):
  b, _, tmp = built
  moved = tmp_path / "full_dataset.csv"
  os.replace(tmp / "full_dataset.csv", moved)
  try:
    again, lines = _load(tmp / "full_dataset.csv", tmp / "tfds", leak_guard=GUARD, max_steps=4)
    assert not [line for line in lines if line.startswith("Corpus ")]  # Not rebuilt.
    assert again.data_dir == b.data_dir and len(again.as_data_source("train")) == 3
    assert again.info.metadata["counts"]["kept"] == 3
  finally:
    os.replace(moved, tmp / "full_dataset.csv")


def test_config_names_follow_every_field(tmp_path):
  path = tmp_path / "c.csv"
  base = builder.make_config(path, leak_guard=GUARD)
  assert base.name == builder.make_config(str(path), leak_guard=LeakGuard.from_lists(
      [["chop the onion , finely .", "fry it !"]], ["https://tasty.co/recipe/cake"])).name
  others = [builder.make_config(path), builder.make_config(tmp_path / "d.csv", leak_guard=GUARD),
            builder.make_config(path, leak_guard=GUARD, format="recipenlg"),
            builder.make_config(path, leak_guard=GUARD, max_steps=8),
            builder.make_config(path, leak_guard=GUARD, min_steps=3),
            builder.make_config(path, leak_guard=GUARD, max_recipes=5),
            builder.make_config(path, leak_guard=GUARD, drop_empty_steps=False),
            builder.make_config(path, leak_guard=GUARD, delimiter="\t")]
  assert len({base.name, *(c.name for c in others)}) == len(others) + 1
  with pytest.raises(ValueError, match="min_steps"):
    builder.make_config(path, min_steps=0)
  with pytest.raises(ValueError, match="format"):
    builder.make_config(path, format="csv")


def test_max_recipes_min_steps_and_kept_empty_steps(tmp_path):
  readers.write_recipenlg(tmp_path / "c.csv", ROWS)
  b, _ = _load(tmp_path / "c.csv", tmp_path / "tfds", max_recipes=2, min_steps=1)
  assert [e["recipe"] for e in _examples(b)] == [b"recipenlg:0", b"recipenlg:1"]
  assert b.info.metadata["counts"] == {"read": 2, "kept": 2, "leak_steps": 0, "leak_url": 0, "too_short": 0,
                                       "truncated": 0, "empty_steps": 0}
  b, _ = _load(tmp_path / "c.csv", tmp_path / "tfds", min_steps=3, drop_empty_steps=False)
  assert [e["recipe"] for e in _examples(b)] == [b"recipenlg:0", b"recipenlg:2", b"recipenlg:4",
                                                  b"recipenlg:6"]
  assert _examples(b)[2]["steps"][:4].tolist() == [b"toast the bread .", b"", b"butter it .", b""]
  np.testing.assert_array_equal(_examples(b)[2]["step_mask"][:4], [1, 1, 1, 0])


@pytest.mark.parametrize("name, data, fmt, expected", [
    ("layer1.json", fx.RECIPE1M, None, ["recipe1m:000018c8a5", "recipe1m:ff"]),
    ("recipes.txt", fx.TEXT, None, ["text:1", "text:4"]),
    ("full_dataset.csv", fx.RECIPENLG, None, ["recipenlg:0", "recipenlg:2", "recipenlg:3"]),
    ("corpus.dat", fx.TEXT, "text", ["text:1", "text:4"]),
])
def test_every_format_builds(tmp_path, name, data, fmt, expected):
  (tmp_path / name).write_bytes(data)
  b, _ = _load(tmp_path / name, tmp_path / "tfds", format=fmt)
  examples = _examples(b)
  assert [e["recipe"].decode() for e in examples] == expected
  if name == "layer1.json":  # Recipe1M ingredients are whole lines, normalized like names.
    assert examples[0]["ingredients"] == "6 ounces penne, 2 cups beecher ’ s \" flagship \" cheese".encode()
    assert examples[0]["steps"][1] == "cook the 🧀 pasta .".encode()


def _assert_nothing_prepared(data_dir, config):
  """No dataset_info.json, incomplete dir or record file, and nothing prepared."""
  assert not builder.RecipeCorpus(data_dir=str(data_dir), config=config, file_format="array_record").is_prepared()
  left = [os.path.join(r, f) for r, dirs, files in os.walk(data_dir) for f in dirs + files]
  for bad in ("dataset_info.json", "incomplete", "array_record"):
    assert not [p for p in left if bad in os.path.basename(p)], (bad, left)


def test_a_malformed_row_late_in_the_file_leaves_nothing_and_a_fixed_file_builds(tmp_path):
  path = tmp_path / "full_dataset.csv"
  readers.write_recipenlg(path, ROWS * 30)
  good = path.read_bytes()
  path.write_bytes(good + b'210,Bad,[],"[""Mix."", oops]",l,s,[]\n')
  config = builder.make_config(path)
  with pytest.raises(DataError) as e:
    builder.load(path, data_dir=str(tmp_path / "tfds"))
  assert str(e.value) == (f"{path}:212: field 'directions': not a JSON array of strings: "
                          "Expecting value (char 9)")
  _assert_nothing_prepared(tmp_path / "tfds", config)
  path.write_bytes(good)
  b = builder.load(path, data_dir=str(tmp_path / "tfds"))
  assert len(b.as_data_source("train")) == 5 * 30  # No guard: rows 2 and 3 are kept too.


def test_no_recipe_kept_is_an_error_and_a_missing_file_is_named(tmp_path):
  readers.write_recipenlg(tmp_path / "c.csv", [ROWS[1], ROWS[5]])
  with pytest.raises(DataError, match=r"c.csv: field 'steps': no recipe kept of 2 read"):
    builder.load(tmp_path / "c.csv", data_dir=str(tmp_path / "tfds"))
  _assert_nothing_prepared(tmp_path / "tfds", builder.make_config(tmp_path / "c.csv"))
  with pytest.raises(DataError, match=r"nowhere.csv: field 'corpus': no such file"):
    builder.load(tmp_path / "nowhere.csv", data_dir=str(tmp_path / "tfds"))
