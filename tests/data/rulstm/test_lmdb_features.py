"""RULSTM LMDB features: nearest frame at or after, end of video, errors, concatenation."""

import pickle
import subprocess
import sys

import numpy as np
import pytest

from anticipax.data.rulstm import lmdb_features
from anticipax.data.errors import DataError
from anticipax.data.rulstm.lmdb_features import LmdbFeatures
from tests.data.rulstm import fixtures as fx


def _vector(frame, dim=3, video=0):
  return np.arange(dim, dtype=np.float32) + 100 * frame + 10000 * video


def _write(root, modality, video_frames, dim=3):
  items = {f"{video}_frame_{f:010d}.jpg": _vector(f, dim, v)
           for v, (video, frames) in enumerate(video_frames.items()) for f in frames}
  lmdb_features.write_lmdb(root / modality, items)


def test_nearest_frame_at_or_after_and_last_frame_past_the_end(tmp_path):
  _write(tmp_path, "rgb", {"P01_01": [2, 5, 9]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  assert features.dims == (3,) and features.dim == 3
  got = features.read("P01_01", np.array([1, 2, 3, 5, 6, 9, 10, 100]))
  expected = [_vector(f) for f in [2, 2, 5, 5, 9, 9, 9, 9]]
  np.testing.assert_array_equal(got, expected)
  assert got.dtype == np.float32 and got.shape == (8, 3)


def test_neighbouring_videos_never_leak(tmp_path):
  # "P01_1_frame_..." sorts right before "P01_10_frame_..." and after "P01_0...".
  _write(tmp_path, "rgb", {"P01_1": [1, 2, 3], "P01_10": [1, 2, 3, 4, 5], "P01_2": [7]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  np.testing.assert_array_equal(features.read("P01_1", [2, 4, 50]), [_vector(2), _vector(3), _vector(3)])
  np.testing.assert_array_equal(features.read("P01_10", [5, 6]), [_vector(5, video=1)] * 2)
  np.testing.assert_array_equal(features.read("P01_2", [1, 8]), [_vector(7, video=2)] * 2)


@pytest.mark.parametrize("video", ["P01_0", "P01_11", "P01_100", "A", "Z"])
def test_video_without_keys_is_an_error(tmp_path, video):
  _write(tmp_path, "rgb", {"P01_1": [1, 2], "P01_10": [1, 2], "P01_2": [1]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  with pytest.raises(DataError) as e:
    features.read(video, [1])
  assert str(e.value) == f"video {video!r} has no frames in {tmp_path / 'rgb'} (modality 'rgb')"


def test_value_size_mismatch_names_path_key_and_sizes(tmp_path):
  _write(tmp_path, "obj", {"P01_01": [1, 2]}, dim=4)
  lmdb_features.write_lmdb(tmp_path / "obj", {"P01_01_frame_0000000003.jpg": np.zeros(3)})
  features = LmdbFeatures(tmp_path, ["obj"])
  features.read("P01_01", [1, 2])
  with pytest.raises(DataError) as e:
    features.read("P01_01", [2, 3])
  message = str(e.value)
  for part in [str(tmp_path / "obj"), "'obj'", "key 'P01_01_frame_0000000003.jpg'", "12 bytes", "expected 16"]:
    assert part in message, (part, message)


def test_missing_modality_directory(tmp_path):
  _write(tmp_path, "rgb", {"P01_01": [1]})
  with pytest.raises(DataError) as e:
    LmdbFeatures(tmp_path, ["rgb", "flow"])
  assert str(tmp_path / "flow") in str(e.value) and "'flow'" in str(e.value)


def test_empty_or_invalid_lmdb(tmp_path):
  lmdb_features.write_lmdb(tmp_path / "rgb", {})
  with pytest.raises(DataError, match="no entries"):
    LmdbFeatures(tmp_path, ["rgb"])
  (tmp_path / "flow").mkdir()
  (tmp_path / "flow" / "data.mdb").write_bytes(b"not an lmdb")
  with pytest.raises(DataError, match="cannot open LMDB .*flow"):
    LmdbFeatures(tmp_path, ["flow"])


@pytest.mark.parametrize("dataset", ["egtea", "ek55", "ek100"])
def test_fixture_concatenates_modalities_with_different_frames(tmp_path, dataset):
  info = fx.write(dataset, tmp_path)
  features = LmdbFeatures(tmp_path, ["rgb", "obj"])
  assert features.dims == (6, 4) and features.dim == 10
  for v, video in enumerate(info["videos"]):
    length = int(info["frames"]["rgb"][video][-1])
    frames = np.array([1, 1, 2, 3, 4, 7, 8, 13, length - 1, length, length + 1, length + 40])
    got = features.read(video, frames)
    np.testing.assert_array_equal(got, fx.expected_features(info, ["rgb", "obj"], video, frames))
  # By hand, first video: rgb has no frame 3 (reads 4), obj only odd frames (2 reads 3).
  got = features.read(info["videos"][0], [2, 3])
  np.testing.assert_array_equal(got[0], np.concatenate([2 + np.arange(6) / 8, 2 * 3 + np.arange(4) / 8]))
  np.testing.assert_array_equal(got[1], np.concatenate([4 + np.arange(6) / 8, 2 * 3 + np.arange(4) / 8]))
  # Modality order decides the concatenation order.
  swapped = LmdbFeatures(tmp_path, ["obj", "rgb"]).read(info["videos"][0], [2, 3])
  np.testing.assert_array_equal(swapped, np.concatenate([got[:, 6:], got[:, :6]], axis=1))


def test_every_segment_window_reads(tmp_path):
  info = fx.write_ek55(tmp_path)
  features = LmdbFeatures(tmp_path, ["rgb"])
  for segments in info["segments"].values():
    for s in segments:
      frames = np.arange(max(1, s.start_frame - 30), s.start_frame, 5)
      np.testing.assert_array_equal(features.read(s.video, frames),
                                    fx.expected_features(info, ["rgb"], s.video, frames))


def test_instances_share_environments_and_pickle(tmp_path):
  _write(tmp_path, "rgb", {"P01_01": [2, 5]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  expected = features.read("P01_01", [1, 4])
  np.testing.assert_array_equal(expected, [_vector(2), _vector(5)])
  # py-lmdb cannot open one environment twice in a process: a second reader must still work.
  np.testing.assert_array_equal(LmdbFeatures(tmp_path, ["rgb"]).read("P01_01", [1, 4]), expected)
  np.testing.assert_array_equal(pickle.loads(pickle.dumps(features)).read("P01_01", [1, 4]), expected)


_FORK_SCRIPT = """
import os, sys
import numpy as np
from anticipax.data.rulstm.lmdb_features import LmdbFeatures
features = LmdbFeatures(sys.argv[1], ["rgb"])
parent = features.read("P01_01", [3])  # The parent holds the environment open when it forks.
pid = os.fork()
if pid == 0:  # py-lmdb would refuse to reopen the inherited environment without closing it.
  os._exit(0 if np.array_equal(features.read("P01_01", [3]), parent) else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
assert np.array_equal(features.read("P01_01", [3]), parent)  # The parent's handle still works.
print(parent.tolist())
"""


def test_reads_in_a_forked_worker(tmp_path):
  # In a fresh interpreter: forking this (possibly JAX-threaded) test process is unsafe.
  _write(tmp_path, "rgb", {"P01_01": [2, 5]})
  result = subprocess.run([sys.executable, "-c", _FORK_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          check=False, timeout=120)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == str([_vector(5).tolist()])


def test_write_lmdb_adds_entries_readers_see(tmp_path):
  _write(tmp_path, "rgb", {"P01_01": [2]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  np.testing.assert_array_equal(features.read("P01_01", [3]), [_vector(2)])
  lmdb_features.write_lmdb(tmp_path / "rgb", {"P01_01_frame_0000000004.jpg": _vector(4)})
  np.testing.assert_array_equal(features.read("P01_01", [3]), [_vector(4)])


def test_frames_argument(tmp_path):
  _write(tmp_path, "rgb", {"P01_01": [2, 5]})
  features = LmdbFeatures(tmp_path, ["rgb"])
  assert features.read("P01_01", np.zeros([0], np.int64)).shape == (0, 3)
  with pytest.raises(ValueError, match="1-based"):
    features.read("P01_01", [0, 1])
  with pytest.raises(ValueError, match="1-D integer"):
    features.read("P01_01", [1.5])
  with pytest.raises(ValueError, match="modalities"):
    LmdbFeatures(tmp_path, "rgb")
