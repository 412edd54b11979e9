"""Input pipeline: prepared TFDS datasets (array_record) read with grain.

Training: every process reads its own slice of the examples (`process_index::process_count`), shuffled
deterministically from the seed and reshuffled every epoch, batched to its share of the global batch.
The iterator state (`{"next_index": n}`) is saved with every checkpoint. Evaluation: one pass in file
order, the last batch padded and flagged by `mask`, every process running the same number of batches.

Per-example work (reading, a task's `preprocess`: tokenization, JPEG decoding, augmentation) runs in
grain's reader threads. A training `preprocess` that takes an `rng` argument gets a `np.random.Generator`
seeded from (seed, epoch, example index): an example's augmentation depends on nothing else (not the
process count, the thread timing or the point a run resumed from). Evaluation passes no `rng`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
import dataclasses
import inspect
import math
from typing import Any, Generic, TypeVar

import grain
import numpy as np

from anticipax.data.errors import DataError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the model and metrics need to know about a dataset."""

  num_classes: int
  num_verbs: int
  num_nouns: int
  actions: np.ndarray  # [num_classes, 2] action id -> (verb id, noun id)
  feature_dim: int
  num_frames: int
  action_names: tuple[str, ...] = ()
  verb_names: tuple[str, ...] = ()
  noun_names: tuple[str, ...] = ()
  many_shot: Mapping[str, np.ndarray] | None = None  # 'verb'/'noun'/'action' -> class ids
  # Per-example 0/1 fields of the eval split marking subsets scored on their own ("unseen",
  # "tail_verb", ...): "<subset>" applies to every part, "<subset>_<part>" to one part.
  eval_flags: tuple[str, ...] = ()


InfoT = TypeVar("InfoT")


@dataclasses.dataclass
class Splits(Generic[InfoT]):
  """A job's random-access train and eval sources and what its model must know about them: a
  `DatasetInfo` for the action datasets (method 1), a `tasks.next_step.TastyInfo` for Tasty (method 2),
  None for text-only jobs (MLM)."""
  train: Sequence[Mapping[str, Any]]
  eval: Sequence[Mapping[str, Any]]
  info: InfoT | None = None


_DEVICE_DTYPES = {np.dtype(np.int64): np.int32, np.dtype(np.float64): np.float32}


def _select(keys: Sequence[str], preprocess: Callable[..., dict] | None = None):
  """Keeps `keys` as numpy arrays; 64-bit values (TFDS returns Python ints) become 32-bit."""
  def fn(example, **kwargs):
    if preprocess is not None:
      example = preprocess(example, **kwargs)
    out = {}
    for k in keys:
      x = np.asarray(example[k])
      out[k] = x.astype(_DEVICE_DTYPES.get(x.dtype, x.dtype), copy=False)
    return out
  return fn


def train_iterator(source, *, keys: Sequence[str], batch_size: int, seed: int,
                   preprocess: Callable[[Any], dict] | None = None,
                   process_index: int = 0, process_count: int = 1,
                   num_threads: int = 4, prefetch: int = 8) -> grain.DatasetIterator:
  """Endless iterator of this process's training batches (numpy dicts with `keys`).

  All processes walk the same shuffled stream of examples (a new permutation every epoch); global batch b
  is stream positions [b G, (b+1) G) and process p reads only its rows [b G + p L, b G + (p+1) L) of it
  (G = global, L = local batch). So the global batches, and the training run, are the same whatever the
  number of processes.

  Args:
    source: random-access source of example dicts (e.g. `builder.as_data_source("train")`).
    keys: example fields to keep (strings are dropped from device batches).
    batch_size: examples per batch on this process (L = global batch / process count).
    seed: shuffle seed; epoch e uses a permutation derived from (seed, e).
    preprocess: optional host-side transform of each example (e.g. tokenization), before `keys`; one
      with an `rng` parameter also gets a generator seeded from (seed, epoch, example index).
    process_index / process_count: which rows of every global batch this process reads.
  """
  global_batch = batch_size * process_count
  n = len(source)
  if n < global_batch:
    raise DataError(f"{n} training examples, fewer than one global batch of {global_batch}")
  order = grain.MapDataset.range(n).shuffle(seed=seed).repeat(None)  # stream position -> example index
  offset = process_index * batch_size
  select = _select(keys, preprocess)
  with_rng = preprocess is not None and _takes_rng(preprocess)

  def example(k):  # k-th example this process reads
    position = (k // batch_size) * global_batch + offset + k % batch_size
    index = int(order[position])
    if with_rng:
      return select(source[index], rng=np.random.default_rng((seed, position // n, index)))
    return select(source[index])

  ds = grain.MapDataset.range(_ENDLESS).map(example)
  ds = ds.batch(batch_size, drop_remainder=True)
  return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch)))


_ENDLESS = 2**62  # examples a training iterator can produce (the stream repeats forever)


def _takes_rng(fn: Callable[..., Any]) -> bool:
  try:
    return "rng" in inspect.signature(fn).parameters
  except (TypeError, ValueError):  # builtins without a signature
    return False


def num_eval_batches(num_examples: int, batch_size: int, process_count: int = 1) -> int:
  """Batches every process runs so that the largest process slice is covered."""
  return max(1, math.ceil(math.ceil(num_examples / process_count) / batch_size))


def eval_batches(source, *, keys: Sequence[str], batch_size: int, process_index: int = 0,
                 process_count: int = 1, num_threads: int = 4,
                 preprocess: Callable[[Any], dict] | None = None) -> Iterator[dict[str, np.ndarray]]:
  """One pass over this process's slice, in order.

  Every batch has `batch_size` rows, a float `mask` (0 for padding) and the examples' `index` in
  `source`, so outputs gathered from several processes can be put back in order.
  """
  select = _select(keys, preprocess)
  ds = grain.MapDataset.range(len(source))[process_index::process_count]
  ds = ds.map(lambda i: {**select(source[i]), "index": np.int32(i)}).batch(batch_size, drop_remainder=False)
  it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=4)))
  for _ in range(num_eval_batches(len(source), batch_size, process_count)):
    batch = next(it, None)
    if batch is None:  # this process's slice ran out before the largest one
      batch = {k: v[None] for k, v in select(source[0]).items()}
      batch["index"] = np.zeros(1, np.int32)
      n = 0
    else:
      n = len(batch["index"])
    out = {k: _pad(v, batch_size) for k, v in batch.items()}
    out["mask"] = (np.arange(batch_size) < n).astype(np.float32)
    yield out


def _pad(x: np.ndarray, size: int) -> np.ndarray:
  if len(x) == size:
    return x
  return np.concatenate([x, np.repeat(x[-1:], size - len(x), axis=0)])

