"""A text teacher's outputs, exported once offline and read back by the student's input pipeline.

One `.npz` file per teacher holds, for each segment uid, the teacher's next-action logits and optionally a
feature vector (e.g. its pooled [CLS] state):

  uids      unicode [N], unique
  logits    float32 [N, C]
  features  float32 [N, H]   (optional)
  metadata  unicode scalar   (optional): JSON, e.g. the teacher's config

The frozen teacher thus stays out of the training step entirely (see STYLE.md, MaxText distillation).
Several files are read as a multi-teacher ensemble. Usage:

  teacher_outputs.write(path, uids, logits, features)
  teacher = teacher_outputs.TeacherOutputs.load([path_bert, path_roberta])
  logits, features, present = teacher.lookup(uid)  # present=False -> mask the example out of the KL
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

from anticipax.data.errors import DataError
from anticipax import paths as anticipax_paths

PathLike = str | os.PathLike


def _average_rows(uids: Sequence[str], *arrays: np.ndarray | None) -> tuple[list[str], list]:
  """Merges rows sharing a uid into their mean; uids keep the order of their first occurrence."""
  index: dict[str, int] = {}
  rows = np.array([index.setdefault(u, len(index)) for u in uids], np.int64)
  counts = np.bincount(rows, minlength=len(index)).astype(np.float64)[:, None]
  out = []
  for a in arrays:
    if a is None:
      out.append(None)
      continue
    sums = np.zeros((len(index), a.shape[1]), np.float64)
    np.add.at(sums, rows, a)
    out.append((sums / counts).astype(np.float32))
  return list(index), out


def write(path: PathLike, uids: Sequence[str], logits: np.ndarray, features: np.ndarray | None = None,
          metadata: dict[str, Any] | None = None) -> None:
  """Writes a teacher's outputs to one `.npz` file, atomically.

  A segment scored with several histories (several rows with one uid) gets the mean of its rows. The
  file is written to a temporary file in the same directory and renamed over `path`, so readers never
  see a half-written file and a failed write leaves no file at `path`.

  Args:
    path: the output file, used exactly as given (no `.npz` is appended).
    uids: [N] segment uids.
    logits: [N, C] teacher logits.
    features: optional [N, H] teacher features.
    metadata: optional JSON-serializable dict stored alongside (e.g. teacher name, temperature).

  Raises:
    ValueError: for arrays whose shapes disagree with `uids`.
  """
  uids = [str(u) for u in uids]
  logits = np.asarray(logits, np.float32)
  if logits.ndim != 2 or len(logits) != len(uids):
    raise ValueError(f"logits must be [{len(uids)}, C] for {len(uids)} uids, got {logits.shape}")
  if features is not None:
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or len(features) != len(uids):
      raise ValueError(f"features must be [{len(uids)}, H] for {len(uids)} uids, got {features.shape}")
  uids, (logits, features) = _average_rows(uids, logits, features)
  arrays = {"uids": np.array(uids, dtype=str).reshape(-1), "logits": logits}
  if features is not None:
    arrays["features"] = features
  if metadata is not None:
    arrays["metadata"] = np.array(json.dumps(metadata, sort_keys=True))
  with anticipax_paths.open_atomic(path, "wb") as f:
    np.savez(f, **arrays)


def _read(path: PathLike) -> dict[str, Any]:
  """Reads and checks one file written by `write`."""
  try:
    with anticipax_paths.path(path).open("rb") as f, np.load(f, allow_pickle=False) as npz:
      data = {key: npz[key] for key in npz.files}
  except FileNotFoundError as e:
    raise DataError(f"{path}: teacher outputs file not found") from e
  except Exception as e:  # pylint: disable=broad-except
    # Not a .npz, truncated, corrupt or holding pickled objects: numpy and zipfile then raise anything from
    # ValueError and EOFError to BadZipFile, RuntimeError ("encrypted") and NotImplementedError.
    raise DataError(f"{path}: cannot read teacher outputs: {type(e).__name__}: {e}") from e
  for key in ("uids", "logits"):
    if key not in data:
      raise DataError(f"{path}: key '{key}': missing (the file has {sorted(data)})")
  uids, logits = data["uids"], data["logits"]
  if uids.ndim != 1 or uids.dtype.kind not in "US":
    raise DataError(f"{path}: key 'uids': expected a 1-D string array, got {uids.dtype} {uids.shape}")
  features = data.get("features")
  for key, a, size in (("logits", logits, "C"), ("features", features, "H")):
    if a is not None and (a.ndim != 2 or len(a) != len(uids) or a.dtype.kind not in "biuf"):
      raise DataError(f"{path}: key '{key}': expected [{len(uids)}, {size}] real numbers for {len(uids)} uids, "
                      f"got {a.dtype} {a.shape}")
  try:
    metadata = json.loads(str(data["metadata"])) if "metadata" in data else {}
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: key 'metadata': not JSON: {e}") from e
  if not isinstance(metadata, dict):
    raise DataError(f"{path}: key 'metadata': expected a JSON object, got {type(metadata).__name__}")
  try:
    uids = [u.decode("utf-8") if isinstance(u, bytes) else str(u) for u in uids.tolist()]
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: key 'uids': not UTF-8: {e}") from e
  # A file not made by `write` may repeat a uid; it still counts once in an ensemble.
  uids, (logits, features) = _average_rows(uids, logits, features)
  return {"uids": uids, "logits": logits, "features": features, "metadata": metadata}


class TeacherOutputs:
  """The outputs of one teacher, or the ensemble of several, by segment uid.

  Attributes:
    paths: the files read, in order.
    metadata: the metadata dict of each file ({} where a file has none).
  """

  def __init__(self, uids: Sequence[str], logits: np.ndarray, features: np.ndarray | None,
               paths: Sequence[str] = (), metadata: Sequence[dict] = ()):
    self._row = {u: i for i, u in enumerate(uids)}
    if len(self._row) != len(uids):
      raise ValueError("uids must be unique")
    self._logits = _with_zero_row(logits)
    self._features = None if features is None else _with_zero_row(features)
    self.paths, self.metadata = tuple(paths), tuple(metadata)

  @property
  def uids(self) -> tuple[str, ...]:
    return tuple(self._row)

  @classmethod
  def load(cls, paths: PathLike | Sequence[PathLike]) -> TeacherOutputs:
    """Reads one file, or several as an ensemble.

    A uid's ensemble logits are the mean of the logits of the teachers that have it (the numpy
    counterpart of `losses.ensemble_logits`); features likewise, if every file has features (else the
    ensemble has none).

    Args:
      paths: one path or a sequence of paths of files written by `write`.

    Raises:
      DataError: naming the file and key, for a missing or unreadable file, a missing `uids` or
        `logits`, badly shaped arrays, or files that disagree on the number of classes or on the
        feature size.
    """
    paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    if not paths:
      raise ValueError("TeacherOutputs.load needs at least one path")
    files = [_read(p) for p in paths]
    for key, axis_name in (("logits", "classes"), ("features", "feature dims")):
      first = next((i for i, f in enumerate(files) if f[key] is not None), None)
      for i, f in enumerate(files):
        if f[key] is not None and f[key].shape[1] != files[first][key].shape[1]:
          raise DataError(f"{paths[i]}: key '{key}': {f[key].shape[1]} {axis_name}, but {paths[first]} has "
                          f"{files[first][key].shape[1]}; the teachers of an ensemble must agree")
    with_features = all(f["features"] is not None for f in files)
    uids, (logits, features) = _average_rows(
        [u for f in files for u in f["uids"]],
        np.concatenate([f["logits"] for f in files]),
        np.concatenate([f["features"] for f in files]) if with_features else None)
    return cls(uids, logits, features, paths, [f["metadata"] for f in files])

  @property
  def num_classes(self) -> int:
    return self._logits.shape[1]

  @property
  def feature_dim(self) -> int | None:
    """H, or None where the outputs have no features."""
    return None if self._features is None else self._features.shape[1]

  def __len__(self) -> int:
    return len(self._row)

  def __contains__(self, uid: object) -> bool:
    return _key(uid) in self._row

  def lookup(self, uid: str | bytes) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The teacher's outputs for one segment.

    Args:
      uid: a segment uid (bytes, as TFDS text features decode, are read as UTF-8).

    Returns:
      (logits float32 [C], features float32 [H] or None if the outputs have no features, present).
      For an unknown uid, zeros and present=False: the caller masks that example out of the
      distillation loss rather than distilling a made-up target.
    """
    row = self._row.get(_key(uid), len(self))
    features = None if self._features is None else self._features[row]
    return self._logits[row], features, row < len(self)

  def lookup_batch(self, uids: Sequence[str | bytes]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """`lookup` of many uids.

    Returns:
      (logits float32 [B, C], features float32 [B, H] or None, present float32 [B]: the example mask).
    """
    rows = np.array([self._row.get(_key(u), len(self)) for u in uids], np.int64).reshape(-1)
    features = None if self._features is None else self._features[rows]
    return self._logits[rows], features, (rows < len(self)).astype(np.float32)


def _with_zero_row(a: np.ndarray) -> np.ndarray:
  """A read-only float32 copy of `a` [N, K] with a row of zeros appended: what unknown uids look up."""
  out = np.concatenate([np.asarray(a, np.float32), np.zeros((1, a.shape[1]), np.float32)])
  out.setflags(write=False)
  return out


def _key(uid: object) -> object:
  return uid.decode("utf-8") if isinstance(uid, bytes) else uid


def config_paths(value) -> list[str]:
  """`distill.teacher_outputs` as a list of files: a comma-separated string (what a command line can
  override) or a list/tuple; several files form an ensemble."""
  items = value.split(",") if isinstance(value, str) else list(value)
  paths = [p.strip() for p in items if p.strip()]
  if not paths:
    raise ValueError("config.distill.teacher_outputs: no file given (kind is set, online_teacher is not)")
  return paths
