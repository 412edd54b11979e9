"""Reader of the RULSTM LMDB features (DATA_FORMATS.md, section 2).

One LMDB environment per modality (`<root>/rgb`, `<root>/flow`, `<root>/obj`, ...). Keys are
`{video}_frame_{frame:010d}.jpg` (utf-8), values raw little-endian float32 vectors. Not every
frame has a key: a requested frame reads the nearest frame at or after it in the same video,
or the video's last frame when it asks past the end (the features at the end of a video are
the best stand-in for frames past the last extracted one, and anticipation windows never
look past the action they anticipate anyway).

Usage:

  features = LmdbFeatures(data_dir, ["rgb", "obj"])
  x = features.read("P01_01", frames)  # float32 [len(frames), features.dim]
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

import lmdb
import numpy as np

from anticipax import paths
from anticipax.data.errors import DataError

_MAX_READERS = 2048  # Many data-loader workers may each hold a read transaction.
_FRAME = re.compile(rb"[0-9]{10}\.jpg")  # What follows `{video}_frame_` in a key.

# The environments open in this process, by real path. py-lmdb refuses to open one
# environment twice in a process, so all `LmdbFeatures` share them; read-only, they never
# need closing. A forked child must close the handles it inherited before reopening them.
_envs: dict[str, lmdb.Environment] = {}
_envs_pid = os.getpid()


def _process_envs() -> dict[str, lmdb.Environment]:
  """This process's environments; after a fork, the inherited handles are closed first."""
  global _envs_pid
  if _envs_pid != os.getpid():
    for env in _envs.values():
      env.close()
    _envs.clear()
    _envs_pid = os.getpid()
  return _envs


def _open(path: str, modality: str) -> lmdb.Environment:
  envs, key = _process_envs(), os.path.realpath(path)
  if key not in envs:
    try:
      envs[key] = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False,
                            max_readers=_MAX_READERS, subdir=True)
    except lmdb.Error as e:
      raise DataError(f"cannot open LMDB {path} (modality {modality!r}): {e}") from e
  return envs[key]


def _key(video: str, frame: int) -> bytes:
  return f"{video}_frame_{frame:010d}.jpg".encode("utf-8")


class LmdbFeatures:
  """Per-frame features of several modalities, concatenated in modality order.

  Environments open lazily, once per process and path (instances share them), and again
  in a forked or spawned worker, so one instance can be handed to data-loader workers.

  Attributes:
    root: the directory holding one LMDB directory per modality.
    modalities: the modality names, i.e. the subdirectories of `root`.
    dims: the feature size of each modality, inferred from its first value.
  """

  def __init__(self, root: str | os.PathLike, modalities: Sequence[str]):
    """Opens `root/<modality>` for each modality and infers the feature sizes.

    Raises:
      DataError: a modality directory is missing or is not a readable, non-empty LMDB
        of float32 vectors.
    """
    if isinstance(modalities, str) or not modalities:
      raise ValueError(f"modalities must be a non-empty sequence of names, got {modalities!r}")
    # py-lmdb maps files of this machine: a bucket path gets one clear line (prepare from local scratch;
    # the prepared dataset itself may then live in a bucket).
    self.root = paths.local(root, "the RULSTM LMDB features (data.manual_dir)")
    self.modalities = tuple(modalities)
    self._paths = tuple(os.path.join(self.root, m) for m in self.modalities)
    for modality, path in zip(self.modalities, self._paths):
      if not os.path.isdir(path):
        raise DataError(f"LMDB directory {path} of modality {modality!r} does not exist")
    self.dims = tuple(self._infer_dim(i) for i in range(len(self.modalities)))

  @property
  def dim(self) -> int:
    """The size of a concatenated feature vector."""
    return sum(self.dims)

  def _env(self, i: int) -> lmdb.Environment:
    return _open(self._paths[i], self.modalities[i])

  def _infer_dim(self, i: int) -> int:
    path, modality = self._paths[i], self.modalities[i]
    with self._env(i).begin(buffers=True) as txn:
      cursor = txn.cursor()
      if not cursor.first():
        raise DataError(f"LMDB {path} (modality {modality!r}) has no entries")
      size = len(cursor.value())
      if size == 0 or size % 4:
        key = bytes(cursor.key()).decode("utf-8", "replace")
        raise DataError(f"LMDB {path} (modality {modality!r}): key {key!r}: value of {size} bytes is not "
                        "a float32 vector")
    return size // 4

  def read(self, video: str, frames) -> np.ndarray:
    """Features of 1-based `frames` of `video`.

    Each frame reads the nearest key at or after it in the same video (one `set_range`
    seek); a frame past the video's last key reads that last key. Modalities may have
    keys for different frames: each is looked up on its own.

    Args:
      video: the video id, as in the annotation CSVs (e.g. `P01_01`).
      frames: int `[F]` 1-based frame indices.

    Returns:
      float32 `[F, dim]`, the modalities' features concatenated in modality order.

    Raises:
      DataError: the video has no keys in some modality, or a value is not `4 * dim` bytes.
    """
    frames = np.asarray(frames)
    if frames.ndim != 1 or (frames.size and not np.issubdtype(frames.dtype, np.integer)):
      raise ValueError(f"frames must be a 1-D integer array, got {frames.dtype} {frames.shape}")
    if frames.size and frames.min() < 1:
      raise ValueError(f"frames are 1-based, got {frames.min()}")
    out = np.empty((len(frames), self.dim), np.float32)
    column = 0
    for i, dim in enumerate(self.dims):
      with self._env(i).begin(buffers=True) as txn:
        self._read_modality(txn.cursor(), i, video, frames.tolist(), out[:, column:column + dim])
      column += dim
    return out

  def _read_modality(self, cursor, i: int, video: str, frames: list[int], out: np.ndarray) -> None:
    """Fills `out` [F, dims[i]] with modality `i`'s features of `frames` of `video`."""
    prefix = f"{video}_frame_".encode("utf-8")
    last = None  # The video's last row, looked up when first needed.
    for j, frame in enumerate(frames):
      if j and frame == frames[j - 1]:  # Windows repeat frame 1 near the start of a video.
        out[j] = out[j - 1]
      elif cursor.set_range(_key(video, frame)) and bytes(cursor.key()[:len(prefix)]) == prefix:
        out[j] = self._value(cursor, i, prefix)
      else:
        if last is None:
          last = self._last_row(cursor, i, video, prefix)
        out[j] = last

  def _last_row(self, cursor, i: int, video: str, prefix: bytes) -> np.ndarray:
    # A video's keys are contiguous and sort below prefix + b"\xff" (frame numbers are ASCII
    # digits), so the key before that is the video's last one if the video has any.
    found = cursor.prev() if cursor.set_range(prefix + b"\xff") else cursor.last()
    if not found or bytes(cursor.key()[:len(prefix)]) != prefix:
      raise DataError(f"video {video!r} has no frames in {self._paths[i]} (modality {self.modalities[i]!r})")
    return self._value(cursor, i, prefix).copy()

  def _value(self, cursor, i: int, prefix: bytes) -> np.ndarray:
    """The value at `cursor`, whose key starts with `prefix` (`{video}_frame_`)."""
    value, key = cursor.value(), bytes(cursor.key())
    if not _FRAME.fullmatch(key, len(prefix)):  # Else a stray key would pass for the video's frame.
      raise DataError(f"LMDB {self._paths[i]} (modality {self.modalities[i]!r}): key "
                      f"{key.decode('utf-8', 'replace')!r} is not a frame key "
                      f"{prefix.decode('utf-8', 'replace') + '<10 digits>.jpg'!r}")
    if len(value) != 4 * self.dims[i]:
      key = key.decode("utf-8", "replace")
      raise DataError(f"LMDB {self._paths[i]} (modality {self.modalities[i]!r}): key {key!r}: value of "
                      f"{len(value)} bytes, expected {4 * self.dims[i]} (dim {self.dims[i]} float32)")
    return np.frombuffer(value, "<f4")

  def __repr__(self) -> str:
    return f"LmdbFeatures({self.root!r}, {list(self.modalities)!r}, dims={self.dims})"


def write_lmdb(path: str | os.PathLike, items: Mapping[str, np.ndarray]) -> None:
  """Writes `key -> float32 little-endian vector` entries into the LMDB directory `path`.

  A helper for tests and fixtures; adds to an existing environment.
  """
  arrays = {k.encode("utf-8"): np.ascontiguousarray(v, "<f4").reshape(-1) for k, v in items.items()}
  # Values over a page go to overflow pages; 4x the payload plus 1 MiB is ample and sparse on disk.
  map_size = 4 * sum(len(k) + a.nbytes + 16 for k, a in arrays.items()) + (1 << 20)
  os.makedirs(path, exist_ok=True)
  cached = _process_envs().pop(os.path.realpath(path), None)  # py-lmdb cannot open it twice.
  if cached is not None:
    cached.close()  # Readers reopen it and see the new entries.
  data = os.path.join(path, "data.mdb")
  map_size += os.path.getsize(data) if os.path.exists(data) else 0
  env = lmdb.open(os.fspath(path), map_size=map_size, subdir=True)
  try:
    with env.begin(write=True) as txn:
      for key, array in arrays.items():
        txn.put(key, array.tobytes())
  finally:
    env.close()
