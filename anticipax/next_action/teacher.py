"""Fine-tuning the text teacher: the text of the previous actions -> the next action.

After training, the teacher's action logits and [CLS] features for every training (and evaluation)
segment are exported to `teacher_outputs_<split>.npz` in the workdir, keyed by segment uid; a student
config points `distill.teacher_outputs` at the training file.
"""

from __future__ import annotations

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from anticipax.data import buckets
from anticipax.data import teacher_outputs
from anticipax.data.text_values import as_text
from anticipax import losses
from anticipax.next_action.task import anticipation_metrics
from anticipax.next_action.text_classifier import TextClassifier
from anticipax import paths
from anticipax.tasks import base
from anticipax import text_encoders


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """w_c = N / (C_present * n_c) for classes present in `labels` (scikit-learn's "balanced"); 1 elsewhere."""
  labels = labels[labels >= 0]
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  present = counts > 0
  weights = np.ones(num_classes)
  weights[present] = len(labels) / (present.sum() * counts[present])
  return weights.astype(np.float32)


class TeacherTask(base.Task):
  """CLS -> action / verb / noun CE, weighted by `loss.{next_action, verb, noun}`."""

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.info = info = splits.info
    self.tokenizer = text_encoders.load_tokenizer(config.text)
    self.bert_config = text_encoders.bert_config(config.text, self.tokenizer)
    self.text = text_encoders.HistoryText(config.text, info, self.tokenizer)
    self.model = TextClassifier(self.bert_config, info.num_classes, info.num_verbs, info.num_nouns,
                                dropout=config.model.get("dropout", 0.1))
    self.train_keys = ("input_ids", "attention_mask", "action", "verb", "noun")
    self.padded_keys = ("input_ids", "attention_mask")
    self.length_buckets = buckets.bucket_lengths(self.text.max_len, config.text.get("length_buckets", "auto"))
    self.eval_keys = self.train_keys + tuple(info.eval_flags)
    self.weights = config.loss
    # "balanced": each head's cross-entropy weighted by its own balanced class weights (as the seed
    # paper's teacher code does for action, verb and noun alike).
    self.class_weights = {"action": None, "verb": None, "noun": None}
    if config.loss.get("class_weights") == "balanced":
      rows = [splits.train[i] for i in range(len(splits.train))]
      sizes = {"action": info.num_classes, "verb": info.num_verbs, "noun": info.num_nouns}
      self.class_weights = {
          part: jnp.asarray(balanced_class_weights(np.array([int(r[part]) for r in rows]), n))
          for part, n in sizes.items()}

  @property
  def train_metric_names(self):
    return ("loss", "action_loss", "verb_loss", "noun_loss", "accuracy")

  def preprocess(self, example):
    return {**example, **self.text(example["history"])}

  def dummy_batch(self, batch_size, eval=False):  # pylint: disable=redefined-builtin
    keys = self.eval_keys if eval else self.train_keys
    return {k: np.zeros((batch_size, self.text.max_len) if k in ("input_ids", "attention_mask") else
                        (batch_size,), np.int32) for k in keys}

  def init(self, rng, batch):
    return self.model.init({"params": rng}, batch["input_ids"], batch["attention_mask"])["params"]

  def pretrained_params(self):
    return text_encoders.pretrained_params(self.config.text, with_mlm_head=False)

  def loss_fn(self, params, batch, rng, frozen):
    del frozen
    outputs, _ = self.model.apply({"params": params}, batch["input_ids"], batch["attention_mask"],
                                  train=True, rngs={"dropout": rng})
    mask, w = batch.get("mask"), self.weights
    cw = self.class_weights
    action, aux = losses.next_action_ce(outputs["logits"], batch["action"], mask, class_weights=cw["action"])
    verb, _ = losses.next_action_ce(outputs["verb_logits"], batch["verb"], mask, class_weights=cw["verb"])
    noun, _ = losses.next_action_ce(outputs["noun_logits"], batch["noun"], mask, class_weights=cw["noun"])
    total = w.next_action * action + w.verb * verb + w.noun * noun
    return total, {"loss": total, "action_loss": action, "verb_loss": verb, "noun_loss": noun,
                   "accuracy": aux["accuracy"]}

  def predict(self, params, batch, frozen):
    del frozen
    outputs, aux = self.model.apply({"params": params}, batch["input_ids"], batch["attention_mask"])
    labels = ("action", "verb", "noun", *self.info.eval_flags)
    return {**outputs, "cls": aux["cls"], **{k: batch[k] for k in labels}}

  def evaluate(self, outputs, source=None):
    del source  # the labels travel with the outputs
    return anticipation_metrics(self.info, outputs)

  def finalize(self, trainer, state, workdir):
    """Exports logits + [CLS] features per segment uid for the training and evaluation splits."""
    text_encoders.save(workdir, self.bert_config, self.tokenizer)
    for split, source in (("train", self.splits.train), ("eval", self.splits.eval)):
      outputs = trainer.predict(state.params, source)
      if jax.process_index() != 0:
        continue
      uids = [as_text(source[int(i)]["uid"]) for i in outputs["index"]]
      path = paths.path(workdir) / f"teacher_outputs_{split}.npz"
      teacher_outputs.write(path, uids, outputs["logits"], outputs["cls"],
                            metadata={"step": int(jax.device_get(state.step))})
      logging.info("Exported teacher outputs of %d %s segments to %s.", len(uids), split, path)
