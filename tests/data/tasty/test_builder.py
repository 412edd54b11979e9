"""The `tasty_videos` TFDS builder on the hand-written fixture (tests/data/tasty/fixtures.py).

Configs use F = 4 rows per step and S = 4 steps so that every value can be checked by hand. Feature
row `r` is `[r, 10 + r, -r]`, so column 0 of a sampled frame is its row.
"""

import logging
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from anticipax.data.errors import DataError
from anticipax.data.tasty import builder
from anticipax.data.tasty import reader
from tests.data.tasty import fixtures as fx

tfds.disable_progress_bar()
SMALL = dict(frames_per_step=4, max_steps=4)


def _examples(b, split):
  source = b.as_data_source(split)
  return {source[i]["recipe"].decode(): source[i] for i in range(len(source))}


class _Records(logging.Handler):
  def __init__(self):
    super().__init__(logging.INFO)
    self.lines = []

  def emit(self, record):
    self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  """(builder, log lines, data dir) of the fixture built with split_4022, F 4, S 4."""
  tmp = tmp_path_factory.mktemp("tasty")
  root = fx.write(tmp / "manual")
  records, absl_logger = _Records(), logging.getLogger("absl")
  level = absl_logger.level
  absl_logger.addHandler(records)
  absl_logger.setLevel(logging.INFO)
  try:
    b = builder.load(data_dir=str(tmp / "tfds"), manual_dir=str(root),
                     config=builder.make_config(**SMALL))
  finally:
    absl_logger.removeHandler(records)
    absl_logger.setLevel(level)
  return b, records.lines, str(tmp / "tfds")


def test_schema(built):
  b = built[0]
  ex = _examples(b, "train")["alpha"]
  assert set(ex) == {"recipe", "ingredients", "steps", "raw_steps", "num_steps", "step_mask", "has_video",
                     "step_features", "frame_mask"}
  assert ex["steps"].shape == ex["raw_steps"].shape == (4,) and ex["step_features"].shape == (4, 4, fx.DIM)
  assert ex["step_features"].dtype == np.float32
  for key, shape in (("step_mask", (4,)), ("has_video", (4,)), ("frame_mask", (4, 4))):
    assert ex[key].shape == shape and ex[key].dtype == np.int32, key
  assert {s: b.info.splits[s].num_examples for s in b.info.splits} == {
      "train": 2, "validation": 1, "test": 1}


def test_alpha_by_hand(built):
  ex = _examples(built[0], "train")["alpha"]
  assert ex["ingredients"] == b"onion, oil"
  assert ex["steps"].tolist() == [b"chop the onion .", b"fry the onion in oil .", b"enjoy !", b""]
  # As decoded from recipe_encoded.xml, before normalization: what references are scored as.
  assert ex["raw_steps"].tolist() == [b"Chop the onion .", b"Fry the onion in oil .", b"Enjoy !", b""]
  assert ex["num_steps"] == 3
  np.testing.assert_array_equal(ex["step_mask"], [1, 1, 1, 0])
  np.testing.assert_array_equal(ex["has_video"], [1, 1, 0, 0])
  # Step 1, units 1..4: rows 0..3, all four. Step 2, units 5..10: rows 4..9 (n = 6), slot i takes
  # row 4 + floor((2i + 1) 6 / 8) = 4, 6, 7, 9. Step 3 (-1,-1) and the padding step: zeros.
  np.testing.assert_array_equal(ex["step_features"][0, :, 0], [0, 1, 2, 3])
  np.testing.assert_array_equal(ex["step_features"][1], fx.feature_rows(12)[[4, 6, 7, 9]])
  np.testing.assert_array_equal(ex["step_features"][2:], 0)
  np.testing.assert_array_equal(ex["frame_mask"], [[1] * 4, [1] * 4, [0] * 4, [0] * 4])


def test_short_steps_and_alignment_quirks_by_hand(built):
  b = built[0]
  # beta: "2,3" -> rows 1..2, two frames; "4,4" -> row 3, one; its third line has no step.
  ex = _examples(b, "train")["beta"]
  assert ex["steps"].tolist() == [b"chop the onion .", b"serve hot !", b"", b""]
  assert ex["raw_steps"].tolist() == [b"Chop the onion.", b"Serve hot!", b"", b""]  # a decoded recipe.xml
  np.testing.assert_array_equal(ex["step_features"][0, :, 0], [1, 2, 0, 0])
  np.testing.assert_array_equal(ex["step_features"][0, :, 1], [11, 12, 0, 0])
  np.testing.assert_array_equal(ex["step_features"][1, :, 0], [3, 0, 0, 0])
  np.testing.assert_array_equal(ex["step_features"][1, :, 1], [13, 0, 0, 0])
  np.testing.assert_array_equal(ex["frame_mask"], [[1, 1, 0, 0], [1, 0, 0, 0], [0] * 4, [0] * 4])
  np.testing.assert_array_equal(ex["has_video"], [1, 1, 0, 0])
  # gamma: one line for three steps -> steps 2 and 3 have no video.
  ex = _examples(b, "validation")["gamma"]
  assert ex["num_steps"] == 3 and ex["ingredients"] == b"banana, milk"
  np.testing.assert_array_equal(ex["has_video"], [1, 0, 0, 0])
  np.testing.assert_array_equal(ex["frame_mask"][0], [1, 1, 0, 0])
  # zeta: delta (no alignment file) and eps (all -1,-1) are skipped from the test split.
  assert list(_examples(b, "test")) == ["zeta"]


def test_counts_in_metadata_and_log(built):
  b, log, _ = built
  meta = b.info.metadata
  assert meta["counts"] == {
      "alignment_too_long": 1, "alignment_too_short": 1, "listed_not_in_all_recipes": 0,
      "recipes_test": 1, "recipes_train": 2, "recipes_validation": 1, "skipped_dropped_by_name": 0,
      "skipped_no_aligned_steps": 1, "skipped_no_alignment_file": 1, "steps": 10,
      "steps_without_video": 4, "truncated_recipes": 0}
  assert (meta["feature_dim"], meta["max_steps"], meta["frames_per_step"]) == (3, 4, 4)
  assert meta["split_files"] == {"train": "TRAIN_4022.txt", "validation": "VAL_4022.txt",
                                 "test": "TEST_4022.txt"}
  for line in ("Tasty recipes kept: train 2, validation 1, test 1.",
               "Tasty recipes skipped: dropped_by_name 0, no_alignment_file 1, no_aligned_steps 1.",
               "Tasty csvalignment.dat files longer than their recipe (extra lines ignored): 1; "
               "shorter (last steps without video): 1.",
               "Tasty steps without video: 4 of 10.",
               "Tasty recipes with more than 4 steps (truncated): 0.",
               "Tasty split_4022 lists: train=TRAIN_4022.txt, validation=VAL_4022.txt, "
               "test=TEST_4022.txt"):
    assert line in log


def test_vocabulary_comes_from_the_training_split_only(built):
  b = built[0]
  vocab = builder.vocab(b)
  # alpha and beta: steps and ingredient names; not gamma's "blend"/"banana" nor zeta's "whisk".
  assert set(vocab.tokens) == {"<pad>", "<bos>", "<eos>", "<unk>", "chop", "the", "onion", ".",
                               "fry", "in", "oil", "enjoy", "!", "serve", "hot"}
  assert vocab.tokens[4:8] == ("onion", ".", "oil", "the")  # 5 occurrences, then 3 each.
  assert vocab.decode(vocab.encode("Blend the banana.", 8)) == "<unk> the <unk> ."
  assert builder.vocab_path(b).read_text().split("\n")[:-1] == list(vocab.tokens)
  # A fresh builder on the prepared data sees the same vocabulary.
  again = builder.TastyVideos(data_dir=built[2],
                              config=builder.make_config(**SMALL), file_format="array_record")
  assert again.is_prepared() and builder.vocab(again) == vocab


def test_split_2511_truncation_min_count_and_drop(tmp_path):
  root = fx.write(tmp_path / "manual")
  config = builder.make_config(split="split_2511", max_steps=2, frames_per_step=4,
                               min_word_count=2, drop=("zeta",))
  b = builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(root), config=config)
  assert {s: list(_examples(b, s)) for s in b.info.splits} == {
      "train": ["alpha"], "validation": ["beta"], "test": ["gamma"]}
  assert b.info.metadata["split_files"]["train"] == "Training_Set.txt"
  counts = b.info.metadata["counts"]
  assert counts["skipped_dropped_by_name"] == 1 and counts["truncated_recipes"] == 2  # alpha, gamma
  ex = _examples(b, "train")["alpha"]
  assert ex["num_steps"] == 2 and ex["steps"].tolist() == [b"chop the onion .",
                                                          b"fry the onion in oil ."]
  assert ex["step_features"].shape == (2, 4, 3)
  # Train = alpha's two kept steps + its ingredients; twice or more: onion (4), ".", oil, the (2).
  assert builder.vocab(b).tokens[4:] == ("onion", ".", "oil", "the")


def test_steps_without_video_can_be_dropped_as_public_loaders_do(tmp_path):
  root = fx.write(tmp_path / "manual")
  b = builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(root),
                   config=builder.make_config(**SMALL, steps_without_video="drop"))
  alpha, beta = _examples(b, "train")["alpha"], _examples(b, "train")["beta"]
  # alpha's third step ("Enjoy !", -1,-1) is gone; beta's two steps both have video.
  assert alpha["num_steps"] == 2 and alpha["steps"].tolist() == [b"chop the onion .", b"fry the onion in oil .",
                                                                 b"", b""]
  assert alpha["raw_steps"].tolist()[:2] == [b"Chop the onion .", b"Fry the onion in oil ."]
  np.testing.assert_array_equal(alpha["step_features"][1], fx.feature_rows(12)[[4, 6, 7, 9]])
  assert beta["num_steps"] == 2
  # gamma keeps only its first step (the alignment file has one line for three steps); zeta its first.
  assert _examples(b, "validation")["gamma"]["num_steps"] == 1
  assert _examples(b, "test")["zeta"]["num_steps"] == 1
  for split in b.info.splits:
    for ex in _examples(b, split).values():
      np.testing.assert_array_equal(ex["has_video"], ex["step_mask"])
  # "Enjoy" occurred only in alpha's dropped step: the vocabulary never saw it.
  assert "enjoy" not in builder.vocab(b).tokens and "serve" in builder.vocab(b).tokens


def test_config_names_encode_every_field():
  names = {builder.make_config().name, builder.make_config(features="/f/{recipe}.npy").name,
           builder.make_config(drop=("a",)).name, builder.make_config(stride=1).name,
           builder.make_config(split="split_2511").name, builder.make_config(min_word_count=2).name,
           builder.make_config(steps_without_video="drop").name}
  assert len(names) == 7
  with pytest.raises(ValueError, match="steps_without_video must be one of keep, drop, got 'skip'"):
    builder.make_config(steps_without_video="skip")
  assert builder.make_config(drop=("b", "a")).name == builder.make_config(drop=("a", "b")).name
  with pytest.raises(ValueError):
    builder.make_config(frames_per_step=0)
  with pytest.raises(ValueError):
    builder.make_config(split="../x")


@pytest.mark.parametrize("first, last, num, rows, mask", [
    (0, 19, 8, [1, 3, 6, 8, 11, 13, 16, 18], [1] * 8),  # floor((2i + 1) 20 / 16)
    (4, 9, 4, [4, 6, 7, 9], [1] * 4),
    (5, 8, 4, [5, 6, 7, 8], [1] * 4),
    (1, 2, 4, [1, 2, 1, 1], [1, 1, 0, 0]),
    (3, 3, 4, [3, 3, 3, 3], [1, 0, 0, 0]),
])
def test_sample_rows(first, last, num, rows, mask):
  got_rows, got_mask = builder.sample_rows(first, last, num)
  np.testing.assert_array_equal(got_rows, rows)
  np.testing.assert_array_equal(got_mask, mask)
  assert got_mask.dtype == np.int32


# -- failed builds ---------------------------------------------------------------------------------

def _assert_nothing_prepared(data_dir, config):
  """No dataset_info.json, vocabulary, incomplete dir or record file, and nothing prepared."""
  assert not builder.TastyVideos(data_dir=str(data_dir), config=config,
                                 file_format="array_record").is_prepared()
  left = [os.path.join(r, f) for r, dirs, files in os.walk(data_dir) for f in dirs + files]
  for bad in ("dataset_info.json", builder.VOCAB_FILENAME, "incomplete", "array_record"):
    assert not [p for p in left if bad in os.path.basename(p)], (bad, left)


def _alpha(root, name):
  return fx.recipe_dir(root, "alpha") / name


# name -> (corrupt(root) -> path of the file at fault, expected message start after the path)
CORRUPTIONS = {
    "broken_xml": (lambda root: _edit(fx.recipe_dir(root, "beta") / "recipe.xml", 9,
                                      "    <steps_updated>Serve <b>hot!</steps_updated>"),
                   ":9: field 'xml': broken XML: mismatched tag"),
    "missing_word_id": (lambda root: _edit(_alpha(root, "recipe_encoded.xml"), 9,
                                           "    <steps_updated>1 2 77</steps_updated>"),
                        ":9: field 'steps_updated': word id 77 is not in"),
    "non_integer_boundary": (lambda root: _edit(_alpha(root, "csvalignment.dat"), 2, "5,x"),
                             ":2: field 'end': expected an integer, got 'x'"),
    "past_feature_rows": (lambda root: _edit(_alpha(root, "csvalignment.dat"), 2, "5,13"),
                          ":2: field 'end': unit 13 (frame 65) needs feature row 12"),
    "start_after_end": (lambda root: _edit(_alpha(root, "csvalignment.dat"), 1, "4,3"),
                        ":1: field 'end': 3 is before start 4"),
    "absent_recipe": (lambda root: _edit(root / "SPLITS/split_4022/VAL_4022.txt", 2, "omega"),
                      ":2: field 'recipe': 'omega' has no folder"),
    "features_shape": (lambda root: _save(_alpha(root, "resnet50.npy"), np.zeros([12], np.float32)),
                       ": field 'shape': expected float32 [rows, D], got shape (12,)"),
    "features_dtype": (lambda root: _save(_alpha(root, "resnet50.npy"), np.zeros([12, 3])),
                       ": field 'dtype': expected float32 [rows, D], got float64"),
    "features_unreadable": (lambda root: _write(_alpha(root, "resnet50.npy"), b"\x93NUMPY garbage"),
                            ": field 'features': cannot read as .npy"),
}


def _edit(path, line, content):
  fx.replace_line(path, line, content)
  return path


def _save(path, array):
  np.save(path, array)
  return path


def _write(path, data):
  path.write_bytes(data)
  return path


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_malformed_input_fails_naming_file_line_and_field_and_leaves_nothing(tmp_path, name):
  corrupt, message = CORRUPTIONS[name]
  path = corrupt(fx.write(tmp_path / "manual"))
  config = builder.make_config(**SMALL)
  with pytest.raises(DataError) as e:
    builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "manual"), config=config)
  assert str(e.value).startswith(f"{path}{message}"), str(e.value)
  _assert_nothing_prepared(tmp_path / "tfds", config)


def test_failure_while_writing_leaves_nothing_and_a_fixed_input_builds(tmp_path, monkeypatch):
  root = fx.write(tmp_path / "manual")
  config = builder.make_config(**SMALL)
  make_example = builder.make_example

  def failing(recipe, features, c):
    if recipe.name == "zeta":  # The last split written; train and validation are already on disk.
      raise DataError("zeta: simulated failure")
    return make_example(recipe, features, c)

  monkeypatch.setattr(builder, "make_example", failing)
  with pytest.raises(DataError, match="simulated"):
    builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(root), config=config)
  _assert_nothing_prepared(tmp_path / "tfds", config)
  monkeypatch.setattr(builder, "make_example", make_example)
  b = builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(root), config=config)
  assert b.info.splits["test"].num_examples == 1


def test_missing_manual_dir(tmp_path):
  with pytest.raises(DataError) as e:
    builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(tmp_path / "nowhere"))
  assert str(tmp_path / "nowhere") in str(e.value) and "does not exist" in str(e.value)


def test_no_training_recipe_with_video(tmp_path):
  root = fx.write(tmp_path / "manual")
  (root / "SPLITS/split_4022/TRAIN_4022.txt").write_text("delta\neps\n")
  (root / "SPLITS/split_4022/TEST_4022.txt").write_text("zeta\n")
  with pytest.raises(DataError) as e:
    builder.load(data_dir=str(tmp_path / "tfds"), manual_dir=str(root),
                 config=builder.make_config(**SMALL))
  assert "TRAIN_4022.txt" in str(e.value) and "no training recipe has video" in str(e.value)


def test_reader_and_builder_agree_on_rows(built):
  # Every stored frame equals the feature row sample_rows picks from reader.step_rows.
  b = built[0]
  for split in b.info.splits:
    for name, ex in _examples(b, split).items():
      spans = fx.RECIPES[name][3]
      features = fx.feature_rows(fx.RECIPES[name][4])
      for i in range(int(ex["num_steps"])):
        line = spans[i] if i < len(spans) else "-1,-1"
        start, end = (int(x) for x in line.split(","))
        if start == -1:
          assert ex["has_video"][i] == 0
          continue
        rows, mask = builder.sample_rows(*reader.step_rows(reader.Span(start, end, 0), 5), 4)
        np.testing.assert_array_equal(ex["step_features"][i], features[rows] * mask[:, None])
        np.testing.assert_array_equal(ex["frame_mask"][i], mask)
