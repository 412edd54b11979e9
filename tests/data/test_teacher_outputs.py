"""Tests for anticipax.data.teacher_outputs: export, averaging, ensembles and errors."""

import os

import numpy as np
import pytest

from anticipax.data import teacher_outputs
from anticipax.data.errors import DataError
from anticipax.data.teacher_outputs import TeacherOutputs


def test_round_trip(tmp_path):
  path = tmp_path / "bert.npz"
  logits = np.array([[1., 2., 3.], [-1., 0., 1.]], np.float32)
  features = np.array([[.5, .25], [2., 4.]], np.float32)
  teacher_outputs.write(path, ["P01_01_3", "00330"], logits, features, metadata={"teacher": "bert", "T": 2})
  t = TeacherOutputs.load(str(path))
  assert (len(t), t.num_classes, t.feature_dim) == (2, 3, 2)
  assert "00330" in t and b"00330" in t and "330" not in t
  got_logits, got_features, present = t.lookup("00330")
  assert present and got_logits.dtype == np.float32
  np.testing.assert_array_equal(got_logits, logits[1])
  np.testing.assert_array_equal(got_features, features[1])
  assert t.metadata == ({"teacher": "bert", "T": 2},) and t.paths == (str(path),)
  with np.load(path) as npz:
    assert npz["uids"].dtype.kind == "U"  # a unicode array: no pickle needed to read it


def test_rows_sharing_a_uid_are_averaged(tmp_path):
  path = tmp_path / "t.npz"
  teacher_outputs.write(path, ["a", "b", "a", "a"], [[0., 3.], [1., 1.], [3., 0.], [6., 6.]],
                        [[1.], [5.], [2.], [3.]])
  t = TeacherOutputs.load(path)
  assert len(t) == 2
  logits, features, present = t.lookup("a")
  assert present
  np.testing.assert_allclose(logits, [3., 3.])  # (0 + 3 + 6) / 3, (3 + 0 + 6) / 3
  np.testing.assert_allclose(features, [2.])
  with np.load(path) as npz:
    assert npz["uids"].tolist() == ["a", "b"]  # order of first occurrence


def test_ensemble_of_two_files_averages_over_teachers_that_have_the_uid(tmp_path):
  a, b = tmp_path / "a.npz", tmp_path / "b.npz"
  teacher_outputs.write(a, ["x", "y"], [[1., 2.], [10., 20.]], [[1.], [2.]])
  teacher_outputs.write(b, ["z", "x"], [[7., 8.], [3., 6.]], [[9.], [3.]])
  t = TeacherOutputs.load([a, b])
  assert len(t) == 3 and t.num_classes == 2 and t.feature_dim == 1
  np.testing.assert_allclose(t.lookup("x")[0], [2., 4.])  # both teachers
  np.testing.assert_allclose(t.lookup("x")[1], [2.])
  np.testing.assert_allclose(t.lookup("y")[0], [10., 20.])  # only a: not halved by b's absence
  np.testing.assert_allclose(t.lookup("z")[0], [7., 8.])  # only b
  logits, features, present = t.lookup_batch(["z", "nope", "x"])
  np.testing.assert_allclose(logits, [[7., 8.], [0., 0.], [2., 4.]])
  np.testing.assert_allclose(features, [[9.], [0.], [2.]])
  np.testing.assert_array_equal(present, [1., 0., 1.])


def test_ensemble_drops_features_unless_every_teacher_has_them(tmp_path):
  a, b = tmp_path / "a.npz", tmp_path / "b.npz"
  teacher_outputs.write(a, ["x"], [[1., 2.]], [[1., 1.]])
  teacher_outputs.write(b, ["x"], [[3., 4.]])
  t = TeacherOutputs.load([a, b])
  assert t.feature_dim is None and t.lookup("x")[1] is None
  np.testing.assert_allclose(t.lookup("x")[0], [2., 3.])


def test_unknown_uid_gives_zeros_and_not_present(tmp_path):
  path = tmp_path / "t.npz"
  teacher_outputs.write(path, ["x"], [[1., 2., 3.]], [[4., 5.]])
  logits, features, present = TeacherOutputs.load(path).lookup("missing")
  assert present is False
  np.testing.assert_array_equal(logits, np.zeros(3, np.float32))
  np.testing.assert_array_equal(features, np.zeros(2, np.float32))
  teacher_outputs.write(path, ["x"], [[1., 2., 3.]])
  assert TeacherOutputs.load(path).lookup("missing")[1] is None


def test_mismatched_class_counts_name_both_files(tmp_path):
  a, b = tmp_path / "a.npz", tmp_path / "b.npz"
  teacher_outputs.write(a, ["x"], np.zeros((1, 3)))
  teacher_outputs.write(b, ["x"], np.zeros((1, 4)))
  with pytest.raises(DataError, match=r"b\.npz: key 'logits': 4 classes, but .*a\.npz has 3"):
    TeacherOutputs.load([a, b])


def test_missing_file_or_key_names_file_and_key(tmp_path):
  with pytest.raises(DataError, match=r"nothere\.npz: teacher outputs file not found"):
    TeacherOutputs.load(tmp_path / "nothere.npz")
  np.savez(tmp_path / "nologits.npz", uids=np.array(["x"]))
  with pytest.raises(DataError, match=r"nologits\.npz: key 'logits': missing"):
    TeacherOutputs.load(tmp_path / "nologits.npz")
  np.savez(tmp_path / "nouids.npz", logits=np.zeros((1, 2)))
  with pytest.raises(DataError, match=r"nouids\.npz: key 'uids': missing"):
    TeacherOutputs.load(tmp_path / "nouids.npz")
  np.savez(tmp_path / "short.npz", uids=np.array(["x", "y"]), logits=np.zeros((1, 2)))
  with pytest.raises(DataError, match=r"short\.npz: key 'logits': expected \[2, C\]"):
    TeacherOutputs.load(tmp_path / "short.npz")
  (tmp_path / "junk.npz").write_text("not a zip")
  with pytest.raises(DataError, match=r"junk\.npz: cannot read"):
    TeacherOutputs.load(tmp_path / "junk.npz")


def test_write_is_atomic(tmp_path, monkeypatch):
  path = tmp_path / "t.npz"
  teacher_outputs.write(path, ["x"], [[1., 2.]])
  assert os.listdir(tmp_path) == ["t.npz"]  # no temporary file left behind

  def savez_then_fail(f, **arrays):
    f.write(b"PK\x03\x04 half a zip")
    raise RuntimeError("disk full")

  monkeypatch.setattr(teacher_outputs.np, "savez", savez_then_fail)
  with pytest.raises(RuntimeError, match="disk full"):
    teacher_outputs.write(tmp_path / "new.npz", ["x"], [[1., 2.]])
  with pytest.raises(RuntimeError, match="disk full"):
    teacher_outputs.write(path, ["x"], [[5., 6.]])
  assert os.listdir(tmp_path) == ["t.npz"]  # no target, no temporary file
  monkeypatch.undo()
  np.testing.assert_array_equal(TeacherOutputs.load(path).lookup("x")[0], [1., 2.])  # old file intact


def test_write_checks_shapes(tmp_path):
  with pytest.raises(ValueError, match="logits"):
    teacher_outputs.write(tmp_path / "t.npz", ["x", "y"], np.zeros((3, 2)))
  with pytest.raises(ValueError, match="features"):
    teacher_outputs.write(tmp_path / "t.npz", ["x"], np.zeros((1, 2)), np.zeros((2, 2)))
  assert not os.listdir(tmp_path)
