"""Next-action anticipation with AVT: the student task of both methods' video side.

A task tells the one trainer what differs between jobs: which example fields it reads, how to build and
initialise the model, the training loss, what evaluation computes from the model's outputs.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from anticipax import losses
from anticipax import metrics
from anticipax.data.pipeline import Splits
from anticipax.models.avt import build_avt
from anticipax.tasks import base


class AnticipationTask(base.Task):
  """AVT student: next-action CE + future-feature MSE + past-action CE (+ verb/noun CE)."""

  train_keys = ("features", "past_actions", "action", "verb", "noun")

  def __init__(self, config, splits: Splits):
    super().__init__(config, splits)
    self.info = info = splits.info
    self.eval_keys = self.train_keys + tuple(info.eval_flags)
    self.model = build_avt(config.model, num_classes=info.num_classes,
                           num_verbs=info.num_verbs, num_nouns=info.num_nouns)
    self.weights = config.loss

  @property
  def train_metric_names(self) -> tuple[str, ...]:
    names = ["loss", "next_action_loss", "future_feature_loss", "past_action_loss", "accuracy"]
    if self.model.num_verbs:
      names += ["verb_loss", "noun_loss"]
    return tuple(names)

  def dummy_batch(self, batch_size: int, eval: bool = False) -> dict[str, np.ndarray]:  # pylint: disable=redefined-builtin
    t, d = self.info.num_frames, self.info.feature_dim
    scalars = self.eval_keys[2:] if eval else self.train_keys[2:]
    return {"features": np.zeros((batch_size, t, d), np.float32),
            "past_actions": np.zeros((batch_size, t), np.int32),
            **{k: np.zeros((batch_size,), np.int32) for k in scalars}}

  def init(self, rng: jax.Array, batch: dict[str, jax.Array]) -> Any:
    return self.model.init({"params": rng}, batch["features"], train=False)["params"]

  def loss_fn(self, params, batch, rng, frozen) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the AVT losses on one training batch."""
    outputs, aux = self.model.apply({"params": params}, batch["features"], train=True,
                                    rngs={"dropout": rng})
    mask = batch.get("mask")
    w = self.weights
    next_loss, next_aux = losses.next_action_ce(outputs["logits"], batch["action"], mask,
                                                label_smoothing=w.get("label_smoothing", 0.0))
    feat_loss, _ = losses.future_feature_mse(aux["pred_features"], aux["features"], mask)
    past_loss, _ = losses.past_action_ce(aux["past_logits"], batch["past_actions"], mask)
    total = w.next_action * next_loss + w.future_feature * feat_loss + w.past_action * past_loss
    terms = {"next_action_loss": next_loss, "future_feature_loss": feat_loss,
             "past_action_loss": past_loss, "accuracy": next_aux["accuracy"]}
    if self.model.num_verbs:
      terms["verb_loss"], _ = losses.next_action_ce(outputs["verb_logits"], batch["verb"], mask)
      terms["noun_loss"], _ = losses.next_action_ce(outputs["noun_logits"], batch["noun"], mask)
      total += w.get("verb", 0.0) * terms["verb_loss"] + w.get("noun", 0.0) * terms["noun_loss"]
    terms["loss"] = total
    return total, terms

  def predict(self, params, batch, frozen) -> dict[str, jax.Array]:
    """Evaluation outputs, with the labels carried along so the host can score them."""
    outputs, _ = self.model.apply({"params": params}, batch["features"], train=False)
    return {**outputs, **{k: batch[k] for k in ("action", "verb", "noun", *self.info.eval_flags)}}

  def evaluate(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Dataset metrics (fractions in [0, 1]) from the concatenated, unpadded eval outputs."""
    labels = {k: outputs[k] for k in ("action", "verb", "noun")}
    subsets = {}
    for flag in self.info.eval_flags:  # "unseen" -> every part; "tail_verb" -> the verb metric only
      name, _, part = flag.rpartition("_")
      parts = (part,) if part in labels else labels
      name = name if part in labels else flag
      subsets.setdefault(name, {}).update({p: outputs[flag] > 0 for p in parts})
    return metrics.anticipation_metrics(
        outputs["logits"], labels, self.info.actions, num_verbs=self.info.num_verbs,
        num_nouns=self.info.num_nouns, many_shot=self.info.many_shot,
        verb_logits=outputs.get("verb_logits"), noun_logits=outputs.get("noun_logits"),
        example_subsets=subsets)
