"""What a task gives the one trainer. Subclasses override what differs between jobs."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from anticipax.data import datasets
from anticipax.data.pipeline import Splits


class Task:
  """A job plugged into `train.Trainer`.

  Attributes:
    train_keys / eval_keys: example fields (after `preprocess`) that go into device batches.
    padded_keys / length_mask_key / length_buckets: length bucketing of padded token fields.
    model: the linen module being trained.
  """

  train_keys: tuple[str, ...] = ()
  eval_keys: tuple[str, ...] = ()
  # Length bucketing (text tasks): the fields in `padded_keys` are [B, L] rows right-padded to L; the
  # trainer cuts each batch to the shortest of `length_buckets` holding the longest row of
  # `length_mask_key`. Empty `length_buckets`: batches keep their full, static length.
  padded_keys: tuple[str, ...] = ()
  length_mask_key: str = "attention_mask"
  length_buckets: tuple[int, ...] = ()

  def __init__(self, config, splits: Splits):
    self.config = config
    self.splits = splits

  @classmethod
  def load_data(cls, config) -> Splits:
    """The splits this task trains and evaluates on; by default the action dataset `config.data` names."""
    return datasets.load(config.data)

  @property
  def train_metric_names(self) -> tuple[str, ...]:
    raise NotImplementedError

  def preprocess(self, example: dict[str, Any]) -> dict[str, Any]:
    """Host-side per-example transform run by the input pipeline (e.g. tokenization)."""
    return example

  def dummy_batch(self, batch_size: int, eval: bool = False) -> dict[str, np.ndarray]:  # pylint: disable=redefined-builtin
    """Zeros shaped like a batch of `train_keys` (or `eval_keys`)."""
    raise NotImplementedError

  def init(self, rng: jax.Array, batch: dict[str, jax.Array]) -> Any:
    """Initial (logically boxed) parameters."""
    raise NotImplementedError

  def pretrained_params(self) -> dict[str, Any] | None:
    """A nested dict mirroring part of the params tree, loaded over a fresh init (not on resume)."""
    return None

  def frozen_params(self) -> tuple[Any, Any] | None:
    """`(params, logical partition specs)` of frozen models the steps read (e.g. an online teacher)."""
    return None

  def loss_fn(self, params, batch, rng, frozen) -> tuple[jax.Array, dict[str, jax.Array]]:
    raise NotImplementedError

  def predict(self, params, batch, frozen) -> dict[str, jax.Array]:
    raise NotImplementedError

  def evaluate(self, outputs: dict[str, np.ndarray], source=None) -> dict[str, float]:
    """Metrics from `predict`'s outputs over `source` (default: the eval split; `outputs["index"]` rows)."""
    raise NotImplementedError

  def finalize(self, trainer, state, workdir: str) -> None:
    """Runs once after training (e.g. a teacher exports its predictions)."""

  def close(self) -> None:
    """Releases what evaluation kept open (e.g. a scorer's process); the trainer calls it when a run ends."""
