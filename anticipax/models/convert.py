"""Checkpoint tensors -> flax param trees: the part the BERT and ViT importers share.

An importer describes its model as data, a *name map*: for every param path of ours, the checkpoint
tensor names that may hold it (the first present one is read) and the conversion that lays the tensor
out as ours (PyTorch Linear weights are [out, in], ours [in, out]; attention projections are split into
heads). `to_params` applies the map, checks every converted tensor against the shapes of an abstract init
(`abstract_shapes`, no FLOPs, no memory) and reports every missing, mis-shaped, conflicting and
unexpected tensor together in one ValueError, so a broken checkpoint is diagnosed in one run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import glob
import json
import os
import re
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import numpy as np

Path = tuple[str, ...]
# our param path -> (checkpoint tensor names, first preferred; conversion(tensor, context) -> our array)
NameMap = Mapping[Path, tuple[Sequence[str], Callable[[np.ndarray, Any], np.ndarray]]]


def split_heads(x: np.ndarray, axis: int, heads: int) -> np.ndarray:
  """Splits `axis` (width heads * head_dim) into (heads, head_dim); left as is if it does not divide.

  A width that does not divide is not an error here: `to_params` then reports the tensor as mis-shaped,
  with the checkpoint's own shape beside the expected one.
  """
  axis %= x.ndim
  if x.shape[axis] % heads:
    return x
  return x.reshape(x.shape[:axis] + (heads, x.shape[axis] // heads) + x.shape[axis + 1:])


def abstract_shapes(model: nn.Module, *inputs: Any) -> dict[Path, tuple[int, ...]]:
  """Param path -> shape of `model.init(rng, *inputs)["params"]`, from `jax.eval_shape` (nothing computed)."""
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))
  flat = traverse_util.flatten_dict(nn.unbox(abstract)["params"])
  return {path: tuple(x.shape) for path, x in flat.items()}


def read_hf_dir(model_dir: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """(config.json as a dict, every tensor of the *.safetensors files) of a Hugging Face model directory.

  Raises:
    FileNotFoundError: no config.json or no .safetensors file in the directory.
  """
  config_path = os.path.join(model_dir, "config.json")
  files = sorted(glob.glob(os.path.join(model_dir, "*.safetensors")))
  if not os.path.isfile(config_path) or not files:
    raise FileNotFoundError(f"{model_dir}: needs config.json and *.safetensors (found {os.listdir(model_dir)}); "
                            "PyTorch .bin checkpoints are not read, re-save them with safe_serialization=True")
  with open(config_path) as f:
    hf_config = json.load(f)
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  tensors = {}
  for file in files:  # sharded checkpoints: model-0000i-of-0000n.safetensors
    tensors.update(load_file(file))
  return hf_config, tensors


def to_params(tensors: Mapping[str, Any], name_map: NameMap, shapes: Mapping[Path, tuple[int, ...]], *,
              what: str, context: Any = None, original: Mapping[str, str] | None = None,
              ignored: Sequence[str] = (), tied_aliases: bool = False,
              problems: Sequence[str] = ()) -> dict[str, Any]:
  """Maps checkpoint tensors onto a param tree by `name_map`, checking every shape.

  Args:
    tensors: tensor name (as `name_map` spells it, i.e. after the importer's renaming) -> array.
    name_map: every param path of the model -> (candidate tensor names, conversion).
    shapes: param path -> expected shape (`abstract_shapes`); must have exactly `name_map`'s paths.
    what: the checkpoint, as the error's first words (e.g. "roberta checkpoint").
    context: passed to every conversion as its second argument (e.g. the model's config).
    original: tensor name -> its name in the file, for the messages (default: the names as given).
    ignored: regular expressions (`re.search`) of unused tensors that are deliberately not loaded.
    tied_aliases: later candidates present beside the first are tied copies of it (e.g. HF's
      `decoder.bias`): used, and reported if they differ. Otherwise they are alternative layouts and a
      second one present is reported as unexpected.
    problems: problems the importer found itself (e.g. an untied decoder), listed with the rest.

  Returns:
    The nested param dict (the contents of the "params" collection), numpy arrays.

  Raises:
    AssertionError: `name_map` and `shapes` disagree (an importer's tables out of sync with its module).
    ValueError: listing every missing, mis-shaped, conflicting or unexpected tensor, and `problems`.
  """
  if set(name_map) != set(shapes):
    raise AssertionError(f"name map out of sync with the module: {sorted(set(name_map) ^ set(shapes))}")
  original = original if original is not None else {name: name for name in tensors}
  found, flat, used = [], {}, set()
  for path, (names, fn) in name_map.items():
    present = [n for n in names if n in tensors]
    ours = "/".join(path)
    if not present:
      found.append(f"missing: {names[0]} -> {ours}: expected {shapes[path]}")
      continue
    used.update(present if tied_aliases else present[:1])
    raw = np.asarray(tensors[present[0]])
    value = fn(raw, context)
    if value.shape != shapes[path]:
      found.append(f"mis-shaped: {original[present[0]]} -> {ours}: expected {shapes[path]} vs got {value.shape} "
                   f"(checkpoint {raw.shape})")
      continue
    for alias in present[1:] if tied_aliases else ():
      if not np.array_equal(tensors[alias], raw):
        found.append(f"conflicting: {original[alias]} differs from {original[present[0]]} (both map to {ours})")
    flat[path] = value
  for name in sorted(set(tensors) - used):
    if not any(re.search(p, name) for p in ignored):
      found.append(f"unexpected: {original[name]} {tuple(np.shape(tensors[name]))}")
  found += problems
  if found:
    raise ValueError(f"{what} does not match the model ({len(found)} problems):\n  " + "\n  ".join(found))
  return traverse_util.unflatten_dict(flat)
