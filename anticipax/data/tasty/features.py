"""The Tasty Videos feature files (DATA_FORMATS.md, section 5): where a recipe's `.npy` lives, reading one
safely, and checking that every kept recipe's features exist and cover its annotated steps."""

from __future__ import annotations

import pathlib
import tokenize
import zipfile

import numpy as np

from anticipax.data.errors import DataError
from anticipax.data.tasty.reader import RECIPES_DIR, Collection, PathLike, step_rows


def features_path(pattern: str, root: PathLike, recipe: str) -> pathlib.Path:
  """The features file of `recipe`: `pattern` with `{root}`, `{recipe}` and `{recipe_dir}` filled.

  A relative result is taken relative to the dataset root.
  """
  root = pathlib.Path(root)
  try:
    path = pathlib.Path(pattern.format(root=root, recipe=recipe,
                                       recipe_dir=root / RECIPES_DIR / recipe))
  except (KeyError, IndexError, ValueError) as e:
    raise DataError(f"features pattern {pattern!r}: field 'features': use {{root}}, {{recipe}} or "
                    f"{{recipe_dir}}: {e!r}") from e
  return path if path.is_absolute() else root / path


def read_features(path: PathLike, *, mmap: bool = False) -> np.ndarray:
  """Reads a float32 `[rows, D]` .npy features file (`mmap`: map it, to check the shape only).

  The file is always mapped first: mapping checks the header's shape against the file's size, so
  a header promising terabytes fails here instead of allocating them. Pickled (object) arrays are
  refused, never unpickled.
  """
  path = pathlib.Path(path)
  try:
    x = np.load(path, mmap_mode="r", allow_pickle=False)
  except FileNotFoundError as e:
    raise DataError(f"{path}: field 'features': missing features file") from e
  except (OSError, ValueError, EOFError, OverflowError, MemoryError, zipfile.BadZipFile,
          tokenize.TokenError) as e:  # TokenError: a version 1.0 header numpy re-tokenizes.
    if isinstance(e, OverflowError):
      _refuse_empty_dtype(path)
    raise DataError(f"{path}: field 'features': cannot read as .npy: {type(e).__name__}: {e}") from e
  if not isinstance(x, np.ndarray):  # An .npz archive.
    if hasattr(x, "close"):
      x.close()
    raise DataError(f"{path}: field 'shape': expected float32 [rows, D], got {type(x).__name__}")
  if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
    raise DataError(f"{path}: field 'shape': expected float32 [rows, D], got shape {x.shape}")
  if x.dtype != np.float32:
    raise DataError(f"{path}: field 'dtype': expected float32 [rows, D], got {x.dtype}")
  return x if mmap else np.array(x)  # A copy in memory, no longer tied to the file.


def _refuse_empty_dtype(path: pathlib.Path) -> None:
  """Names the shape or dtype of a header whose dtype holds no bytes (`V0`, `S0`, ...).

  numpy's map multiplies the shape out in C longs, which overflows for such a header with an
  astronomical shape although the file holds all of its (zero) bytes: it is the wrong dtype, not unreadable.
  """
  with open(path, "rb") as f:
    try:
      version = np.lib.format.read_magic(f)
      read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
      shape, _, dtype = read(f)
    except (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError):
      return
  if dtype.itemsize or dtype.hasobject or min(shape, default=0) < 0:
    return
  shape += dtype.shape
  if len(shape) != 2 or min(shape) < 1:
    raise DataError(f"{path}: field 'shape': expected float32 [rows, D], got shape {shape}")
  raise DataError(f"{path}: field 'dtype': expected float32 [rows, D], got {dtype}")


def check_features(collection: Collection, pattern: str, stride: int) -> int:
  """Checks that every kept recipe's features exist and cover its steps.

  Only the .npy headers are read (memory-mapped), so this is cheap even for the real dataset,
  and a bad file fails the build before anything is written.

  Returns:
    The feature dimension D, the same for every file.
  """
  dim, dim_path = None, None
  for recipes in collection.splits.values():
    for recipe in recipes:
      path = features_path(pattern, collection.root, recipe.name)
      rows, d = read_features(path, mmap=True).shape
      if dim is None:
        dim, dim_path = d, path
      elif d != dim:
        raise DataError(f"{path}: field 'shape': feature dimension {d} differs from {dim} in {dim_path}")
      for span in recipe.spans:
        if span is not None and step_rows(span, stride)[1] >= rows:
          raise DataError(
              f"{recipe.alignment_path}:{span.line}: field 'end': unit {span.end} (frame "
              f"{span.frames[1]}) needs feature row {step_rows(span, stride)[1]} but {path} has "
              f"{rows} rows (one every {stride} frames)")
  if dim is None:
    raise DataError(f"{collection.root}: field 'recipes': no recipe with video in any split")
  return dim
