"""Paths that may be local or in a bucket (`gs://`, `s3://`): one place that turns a flag into a path.

Every workdir, data dir and output of anticipax goes through `path()`, an `etils.epath.Path`, so that
`--workdir=gs://bucket/run` writes to the bucket (orbax and TFDS take such paths themselves) instead of
a local folder named `gs:`. Inputs that need a local disk (LMDB feature stores, JPEG frame folders read
by the native decoders) go through `local()`, which refuses a bucket path with one clear line.

    workdir = paths.path(flags.FLAGS.workdir)
    paths.write_text(workdir / "metrics.json", json.dumps(result))
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import IO, Iterator

from etils import epath

PathLike = str | os.PathLike


def is_remote(p: PathLike) -> bool:
  """Whether `p` names an object store (`gs://...`), not this machine's disk."""
  return "://" in os.fspath(p)


def path(p: PathLike) -> epath.Path:
  """`p` as an `epath.Path`: local paths absolute with `~` expanded, bucket URIs as they are."""
  if isinstance(p, epath.Path):
    return p
  p = os.fspath(p)
  return epath.Path(p if is_remote(p) else os.path.abspath(os.path.expanduser(p)))


def local(p: PathLike, what: str) -> str:
  """`p` as a local path string, or one `ValueError` saying that `what` needs a local disk."""
  if is_remote(p):
    raise ValueError(f"{what}: {os.fspath(p)} is in an object store, but {what} is read from a local disk; "
                     "copy it to local scratch first (e.g. `gcloud storage cp -r SRC /tmp/...`) and pass that path")
  return os.path.abspath(os.path.expanduser(os.fspath(p)))


@contextlib.contextmanager
def open_atomic(target: PathLike, mode: str = "wb") -> Iterator[IO]:
  """A file to write `target` through, whole or not at all; creates the folder.

  Locally a temporary file beside `target`, flushed to disk and renamed into place on success (removed on
  failure); in a bucket the object itself, since an object appears only once its upload completes (and a
  bucket has no atomic rename).
  """
  if mode not in ("w", "wb"):
    raise ValueError(f"open_atomic writes ('w' or 'wb'), not {mode!r}")
  target = path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_remote(target):
    with target.open(mode) as f:
      yield f
    return
  fd, tmp = tempfile.mkstemp(dir=os.fspath(target.parent), prefix=f".{target.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users of a shared folder
    os.replace(tmp, os.fspath(target))
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_bytes(target: PathLike, data: bytes) -> epath.Path:
  """Writes `data` to `target` whole or not at all (`open_atomic`)."""
  with open_atomic(target, "wb") as f:
    f.write(data)
  return path(target)


def write_text(target: PathLike, text: str) -> epath.Path:
  """`write_bytes` of `text` in UTF-8."""
  return write_bytes(target, text.encode("utf-8"))


def copy_tree(src: PathLike, dst: PathLike) -> None:
  """Copies the files under `src` (a folder, local or in a bucket) to `dst`, keeping sub-folders."""
  src, dst = path(src), path(dst)
  for child in src.iterdir():
    if child.is_dir():
      copy_tree(child, dst / child.name)
    else:
      dst.mkdir(parents=True, exist_ok=True)
      child.copy(dst / child.name, overwrite=True)


def local_copy(p: PathLike) -> str:
  """A local folder holding what `p` holds: `p` itself on this disk, else a fresh temporary copy (for
  readers that only take local paths, e.g. Hugging Face tokenizers)."""
  if not is_remote(p):
    return os.fspath(path(p))
  scratch = tempfile.mkdtemp(prefix="anticipax_")
  copy_tree(p, scratch)
  return scratch


def remove_tree(p: PathLike) -> None:
  """Removes a file or a folder with everything in it, if there."""
  p = path(p)
  if p.is_dir():
    p.rmtree()
  elif p.exists():
    p.unlink()
