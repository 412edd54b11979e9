"""Readers of the Tasty Videos files, on the hand-written fixture (tests/data/tasty/fixtures.py)."""

import logging
import os

import numpy as np
import pytest

from anticipax.data.errors import DataError
from anticipax.data.tasty import features as feature_files
from anticipax.data.tasty import reader
from tests.data.tasty import fixtures as fx


@pytest.fixture
def root(tmp_path):
  return fx.write(tmp_path / "tasty")


def test_encoded_and_decoded_recipes_read_the_same_way(root):
  id2word = reader.read_id2word(root / "id2word_tasty.txt")
  assert id2word[1] == "Chop" and len(id2word) == len(fx.WORDS)
  ingredients, steps = reader.read_recipe_xml(fx.recipe_dir(root, "alpha") / "recipe_encoded.xml",
                                              id2word)
  assert ingredients == ["onion", "oil"]
  assert steps == ["Chop the onion .", "Fry the onion in oil .", "Enjoy !"]
  ingredients, steps = reader.read_recipe_xml(fx.recipe_dir(root, "beta") / "recipe.xml")
  assert ingredients == ["onion", "oil"]  # "1 cup;onion, diced;veg" -> "onion".
  assert steps == ["Chop the onion.", "Serve hot!"]


@pytest.mark.parametrize("line, name", [
    ("1 cup;onion, diced;veg", "onion"), ("2 tbsp ; olive  oil", "olive oil"),
    ("1 ; soy sauce , low sodium ; x", "soy sauce"), ("salt", "salt"), ("salt, to taste", "salt"),
    ("1;", ""),
])
def test_ingredient_name_is_the_second_field_before_its_comma(line, name):
  assert reader.ingredient_name(line) == name


def test_alignment_spans_frames_and_rows():
  # Unit u covers frames 5u-4..5u; with stride 5 the step uses rows start-1..end-1.
  assert reader.Span(1, 4, 1).frames == (1, 20)
  assert reader.Span(5, 10, 2).frames == (21, 50)
  assert reader.step_rows(reader.Span(5, 10, 2), 5) == (4, 9)
  assert reader.step_rows(reader.Span(1, 1, 1), 5) == (0, 0)
  # Other strides take every row whose frames overlap the step: stride 10, frames 21..50 -> rows
  # 2 (21-30) .. 4 (41-50); frames 6..10 -> row 0 (1-10); stride 1 -> one row per frame.
  assert reader.step_rows(reader.Span(5, 10, 2), 10) == (2, 4)
  assert reader.step_rows(reader.Span(2, 2, 1), 10) == (0, 0)
  assert reader.step_rows(reader.Span(2, 3, 1), 1) == (5, 14)


def test_alignment_file_tolerates_spaces_and_reads_no_video(root):
  spans = reader.read_alignment(fx.recipe_dir(root, "beta") / "csvalignment.dat")
  assert spans == [reader.Span(2, 3, 1), reader.Span(4, 4, 2), reader.Span(7, 9, 3)]
  spans = reader.read_alignment(fx.recipe_dir(root, "alpha") / "csvalignment.dat")
  assert spans[2] is None and spans[1] == reader.Span(5, 10, 2)


def test_collection_split_4022_counts_and_quirks(root):
  c = reader.Collection(root, "split_4022")
  assert {s: [r.name for r in rs] for s, rs in c.splits.items()} == {
      "train": ["alpha", "beta"], "validation": ["gamma"], "test": ["zeta"]}
  assert c.skipped == {"dropped_by_name": [], "no_alignment_file": ["delta"],
                       "no_aligned_steps": ["eps"]}
  beta = c.splits["train"][1]
  assert beta.spans == (reader.Span(2, 3, 1), reader.Span(4, 4, 2))  # The third line is dropped.
  gamma = c.splits["validation"][0]
  assert gamma.spans == (reader.Span(1, 2, 1), None, None)  # Missing lines: no video.
  assert gamma.steps == ("Blend the banana .", "Blend the milk .", "Serve hot !")
  assert gamma.fps == pytest.approx(29.97)
  counts = c.counts
  assert (counts["alignment_too_long"], counts["alignment_too_short"]) == (1, 1)
  # alpha 1 (Enjoy), beta 0, gamma 2, zeta 1 of 3 + 2 + 3 + 2 steps.
  assert (counts["steps_without_video"], counts["steps"]) == (4, 10)
  assert (counts["recipes_train"], counts["recipes_validation"], counts["recipes_test"]) == (2, 1, 1)
  assert (counts["skipped_no_alignment_file"], counts["skipped_no_aligned_steps"]) == (1, 1)


def test_split_2511_lists_are_found_by_name_and_logged(root, caplog):
  with caplog.at_level(logging.INFO):
    c = reader.Collection(root, "split_2511", drop=("zeta",))
  assert {s: p.name for s, p in c.split_files.items()} == {
      "train": "Training_Set.txt", "validation": "validation_set.txt", "test": "testing_set.txt"}
  assert ("Tasty split_2511 lists: train=Training_Set.txt, validation=validation_set.txt, "
          "test=testing_set.txt") in caplog.text
  assert [r.name for r in c.splits["train"]] == ["alpha"]
  assert c.skipped["dropped_by_name"] == ["zeta"] and c.counts["skipped_dropped_by_name"] == 1


def test_missing_validation_list_leaves_the_split_out(root):
  (root / "SPLITS/split_2511/validation_set.txt").unlink()
  c = reader.Collection(root, "split_2511")
  assert set(c.splits) == {"train", "test"}


def test_unknown_split_folder_lists_the_folders_found(root):
  with pytest.raises(DataError) as e:
    reader.Collection(root, "split_9999")
  assert str(root / "SPLITS/split_9999") in str(e.value) and "field 'split'" in str(e.value)
  assert "split_2511" in str(e.value) and "split_4022" in str(e.value)


def test_two_lists_matching_one_split_are_an_error(root):
  (root / "SPLITS/split_4022/train_extra.txt").write_text("alpha\n")
  with pytest.raises(DataError, match="field 'train': several list files"):
    reader.Collection(root, "split_4022")


def test_recipe_in_two_splits_is_an_error(root):
  path = root / "SPLITS/split_4022/VAL_4022.txt"
  path.write_text("gamma\nalpha\n")
  with pytest.raises(DataError) as e:
    reader.Collection(root, "split_4022")
  assert str(e.value).startswith(f"{path}:2: field 'recipe': 'alpha' is also in TRAIN_4022.txt")


def test_id2word_is_never_evaluated(tmp_path):
  marker = tmp_path / "evaluated"
  path = tmp_path / "id2word_tasty.txt"
  path.write_text("{1: b'a',\n 2: __import__('os').mkdir(%r)}" % str(marker))
  with pytest.raises(DataError) as e:
    reader.read_id2word(path)
  assert str(e.value).startswith(f"{path}:1: field 'id2word'")
  assert not marker.exists()
  path.write_text("{1: b'a',\n 2: b'b'\n")  # Unclosed brace.
  with pytest.raises(DataError, match=r"id2word_tasty.txt:\d+: field 'id2word'"):
    reader.read_id2word(path)
  path.write_text("{'x': b'a'}")
  with pytest.raises(DataError, match="key 'x': field 'id'"):
    reader.read_id2word(path)


# Each malformed file raises one DataError naming the file, the line and the field (the build
# tests check the same errors leave no dataset behind).

def test_broken_xml_names_file_and_line(root):
  path = fx.recipe_dir(root, "beta") / "recipe.xml"
  fx.replace_line(path, 5, "    <ingredient>1 cup;onion & garlic</ingredient>")  # Bare "&".
  with pytest.raises(DataError) as e:
    reader.read_recipe_xml(path)
  assert str(e.value) == f"{path}:5: field 'xml': broken XML: not well-formed (invalid token) (column 30)"
  # An unclosed element is noticed where its parent closes (line 7, </ingredients>).
  fx.replace_line(path, 5, "    <ingredient>1 cup;onion, diced;veg")
  with pytest.raises(DataError) as e:
    reader.read_recipe_xml(path)
  assert str(e.value).startswith(f"{path}:7: field 'xml': broken XML: mismatched tag")


def test_missing_steps_element(root):
  path = fx.recipe_dir(root, "beta") / "recipe.xml"
  path.write_text("<recipe>\n  <ingredients></ingredients>\n</recipe>\n")
  with pytest.raises(DataError) as e:
    reader.read_recipe_xml(path)
  assert str(e.value) == f"{path}:1: field 'steps_updated': <recipe> has no <steps_updated> element"


def test_word_id_missing_from_the_dictionary(root):
  path = fx.recipe_dir(root, "alpha") / "recipe_encoded.xml"
  fx.replace_line(path, 10, "    <steps_updated>1 2 999</steps_updated>")
  with pytest.raises(DataError) as e:
    reader.read_recipe_xml(path, reader.read_id2word(root / "id2word_tasty.txt"))
  assert str(e.value).startswith(f"{path}:10: field 'steps_updated': word id 999 is not in")
  fx.replace_line(path, 6, "    <ingredient>1 x 2</ingredient>")
  with pytest.raises(DataError) as e:
    reader.read_recipe_xml(path, reader.read_id2word(root / "id2word_tasty.txt"))
  assert str(e.value) == f"{path}:6: field 'ingredient': expected word ids, got 'x'"


@pytest.mark.parametrize("text, message", [
    ("5,1O", "field 'end': expected an integer, got '1O'"),
    ("5.0,10", "field 'start': expected an integer, got '5.0'"),
    ("5,4", "field 'end': 4 is before start 5"),
    ("0,4", "field 'start': units are 1-based"),
    ("-1,4", "field 'start': units are 1-based"),
    ("5", "expected 2 fields (start, end), got 1"),
])
def test_malformed_alignment_line(root, text, message):
  path = fx.recipe_dir(root, "alpha") / "csvalignment.dat"
  fx.replace_line(path, 2, text)
  with pytest.raises(DataError) as e:
    reader.read_alignment(path)
  assert str(e.value).startswith(f"{path}:2: {message}")


def test_recipe_listed_but_absent(root):
  path = root / "SPLITS/split_4022/TEST_4022.txt"
  path.write_text("delta\neps\nzeta\nomega\n")
  with pytest.raises(DataError) as e:
    reader.Collection(root, "split_4022")
  assert str(e.value).startswith(f"{path}:4: field 'recipe': 'omega' has no folder")


def test_boundary_past_the_feature_rows(root):
  path = fx.recipe_dir(root, "alpha") / "csvalignment.dat"
  fx.replace_line(path, 2, "5,13")  # Rows 4..12, but the file has 12 rows (0..11).
  collection = reader.Collection(root, "split_4022")
  with pytest.raises(DataError) as e:
    feature_files.check_features(collection, "{recipe_dir}/resnet50.npy", stride=5)
  npy = fx.recipe_dir(root, "alpha") / "resnet50.npy"
  assert str(e.value) == (f"{path}:2: field 'end': unit 13 (frame 65) needs feature row 12 but "
                          f"{npy} has 12 rows (one every 5 frames)")
  fx.replace_line(path, 2, "5,12")  # Row 11 is the last one: fine.
  assert feature_files.check_features(reader.Collection(root, "split_4022"),
                               "{recipe_dir}/resnet50.npy", stride=5) == fx.DIM


@pytest.mark.parametrize("bad, field", [
    (np.zeros([12], np.float32), "field 'shape'"),
    (np.zeros([12, 3, 1], np.float32), "field 'shape'"),
    (np.zeros([12, 3], np.float64), "field 'dtype'"),
    (np.zeros([12, 4], np.float32), "field 'shape': feature dimension 4 differs from 3"),
    (b"not an npy file", "field 'features': cannot read"),
    (None, "field 'features': missing"),
])
def test_bad_features_file(root, bad, field):
  path = fx.recipe_dir(root, "beta") / "resnet50.npy"  # alpha is read first: its D is 3.
  if bad is None:
    path.unlink()
  elif isinstance(bad, bytes):
    path.write_bytes(bad)
  else:
    np.save(path, bad)
  with pytest.raises(DataError) as e:
    feature_files.check_features(reader.Collection(root, "split_4022"), "{recipe_dir}/resnet50.npy", 5)
  assert str(e.value).startswith(f"{path}: {field}")


def test_feature_path_patterns(root):
  assert (feature_files.features_path("{recipe_dir}/resnet50.npy", root, "alpha")
          == root / "ALL_RECIPES_without_videos/alpha/resnet50.npy")
  assert feature_files.features_path("feats/{recipe}.npy", root, "alpha") == root / "feats/alpha.npy"
  assert (feature_files.features_path(os.fspath(root / "x/{recipe}.npy"), "/elsewhere", "alpha")
          == root / "x/alpha.npy")
  with pytest.raises(DataError, match="field 'features'"):
    feature_files.features_path("{video}.npy", root, "alpha")


def test_encoded_recipe_without_dictionary(root):
  (root / "id2word_tasty.txt").unlink()
  with pytest.raises(DataError) as e:
    reader.Collection(root, "split_4022")
  assert str(e.value).startswith(f"{root / 'id2word_tasty.txt'}: missing;")
