"""Next-action anticipation with AVT: the student task of both methods' video side.

A task tells the one trainer what differs between jobs: which example fields it reads, how to build and
initialise the model, the training loss, what evaluation computes from the model's outputs.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from anticipax import checkpointing
from anticipax.data import frames
from anticipax.data.pipeline import DatasetInfo, Splits
from anticipax.data import teacher_outputs
from anticipax.data.text_values import as_text
from anticipax import losses
from anticipax import metrics
from anticipax.models.vit_import import load_vit
from anticipax.next_action.avt import build_avt
from anticipax.tasks import base


class AnticipationTask(base.Task):
  """AVT student: next-action CE + future-feature MSE + past-action CE (+ verb/noun CE), plus, with
  `distill.kind`, knowledge from a text teacher: KL on the next-action logits ("kl") or InfoNCE between
  the projected predicted feature and the teacher's [CLS] feature ("contrastive").

  The teacher is either cached (`distill.teacher_outputs`: files exported by a teacher run, several =
  an ensemble; segments without an entry are masked out of the distillation loss) or online
  (`distill.online_teacher`: a teacher workdir whose frozen model runs inside the train step).

  With a "vit" backbone (AVT-b) the examples hold JPEG bytes (`frames`); `preprocess` decodes and augments
  them in the input pipeline's threads into uint8 `frames` [T, H, W, 3] (training: one random view) or
  [V, T, H, W, 3] (evaluation: V = crops x flips), normalised on the device. `predict` runs every view and
  averages the scores (logits) over views, as AVT's multi-crop evaluation does.
  """

  def __init__(self, config, splits: Splits[DatasetInfo]):
    super().__init__(config, splits)
    self.info = info = splits.info
    self.distill = config.get("distill", {})
    self.kind = self.distill.get("kind", "")
    if self.kind not in ("", "kl", "contrastive"):
      raise ValueError(f"config.distill.kind: unknown {self.kind!r} (kl, contrastive or empty)")
    backbone = config.model.backbone
    self.vit = backbone.get("kind") == "vit"
    if (config.data.get("inputs", "features") == "frames") != self.vit:
      raise ValueError("config.data.inputs=frames (JPEG frames) goes with config.model.backbone.kind=vit, and "
                       "pre-extracted features with the identity or linear backbones")
    self.input_key = "frames" if self.vit else "features"
    self.transform = frames.ClipTransform.from_config(config.data) if self.vit else None
    keys = [self.input_key, "past_actions", "action", "verb", "noun"]
    self.eval_keys = tuple(keys) + tuple(info.eval_flags)
    self.cached = self.online = None
    distill_dim = 0
    if self.kind and self.distill.get("online_teacher"):
      self.online = OnlineTeacher(self.distill.online_teacher, info)
      keys += ["input_ids", "attention_mask", "teacher_mask"]
      distill_dim = self.online.feature_dim
    elif self.kind:
      self.cached = teacher_outputs.TeacherOutputs.load(teacher_outputs.config_paths(self.distill.teacher_outputs))
      keys += ["teacher_logits", "teacher_mask"] + (["teacher_features"] if self.kind == "contrastive" else [])
      distill_dim = self.cached.feature_dim or 0
      if self.cached.num_classes != info.num_classes:
        raise ValueError(f"config.distill.teacher_outputs: {self.cached.num_classes} teacher classes, "
                         f"the dataset has {info.num_classes}")
    self.train_keys = tuple(keys)
    self.model = build_avt(config.model, num_classes=info.num_classes, num_verbs=info.num_verbs,
                           num_nouns=info.num_nouns,
                           distill_dim=distill_dim if self.kind == "contrastive" else 0)
    self.weights = config.loss
    if self.vit:
      size = self.model.backbone.config.image_size
      if size != (self.transform.crop_size,) * 2:
        raise ValueError(f"config.data.crop_size {self.transform.crop_size} differs from the ViT's image size "
                         f"{size} (config.model.backbone.image_size)")
      self.pixel_mean = tuple(backbone.get("pixel_mean", (0.5, 0.5, 0.5)))
      self.pixel_std = tuple(backbone.get("pixel_std", (0.5, 0.5, 0.5)))

  @property
  def train_metric_names(self) -> tuple[str, ...]:
    names = ["loss", "next_action_loss", "future_feature_loss", "past_action_loss", "accuracy"]
    if self.model.num_verbs:
      names += ["verb_loss", "noun_loss"]
    if self.kind:
      names += ["distill_loss", "teacher_coverage"]
    return tuple(names)

  def preprocess(self, example, rng: np.random.Generator | None = None):
    """Host side, in the pipeline's threads: decodes/augments frames (`rng`: training), adds teacher inputs."""
    if self.vit:
      name, numbers = f"video {as_text(example['video'])!r}", example.get("frame_numbers")
      pixels = (self.transform.train(example["frames"], rng, name=name, frame_numbers=numbers)
                if rng is not None else self.transform.eval(example["frames"], name=name, frame_numbers=numbers))
      example = {**example, "frames": pixels}
    if self.cached is not None:
      logits, features, present = self.cached.lookup(as_text(example["uid"]))
      example = {**example, "teacher_logits": logits, "teacher_mask": np.float32(present)}
      if features is not None:
        example["teacher_features"] = features
    elif self.online is not None:
      example = {**example, **self.online.text(example["history"]), "teacher_mask": np.float32(1.0)}
    return example

  def dummy_batch(self, batch_size: int, eval: bool = False) -> dict[str, np.ndarray]:  # pylint: disable=redefined-builtin
    t, d = self.info.num_frames, self.info.feature_dim
    shapes = {"features": (t, d), "past_actions": (t,)}
    if self.vit:
      c, views = self.transform.crop_size, (self.transform.num_views,) if eval else ()
      shapes["frames"] = (*views, t, c, c, 3)
    if self.cached is not None:
      shapes.update(teacher_logits=(self.info.num_classes,), teacher_features=(self.cached.feature_dim,))
    if self.online is not None:
      shapes.update(input_ids=(self.online.text.max_len,), attention_mask=(self.online.text.max_len,))
    dtypes = {k: np.float32 for k in ("features", "teacher_logits", "teacher_features", "teacher_mask")}
    dtypes["frames"] = np.uint8
    return {k: np.zeros((batch_size, *shapes.get(k, ())), dtypes.get(k, np.int32))
            for k in (self.eval_keys if eval else self.train_keys)}

  def inputs(self, batch) -> jax.Array:
    """The model's input: features as they are, or frames normalised to the backbone's range."""
    if self.vit:
      return frames.normalize(batch["frames"], self.pixel_mean, self.pixel_std)
    return batch["features"]

  def pretrained_params(self):
    """The ViT of `model.backbone.pretrained` (an .npz or HF directory) for a "vit" backbone."""
    path = self.config.model.backbone.get("pretrained") if self.vit else None
    if not path:
      return None
    _, params = load_vit(os.path.expanduser(path), self.model.backbone.config)
    return {"backbone": {"vit": params}}

  def frozen_params(self):
    return None if self.online is None else self.online.frozen()

  def init(self, rng: jax.Array, batch: dict[str, jax.Array]) -> Any:
    return self.model.init({"params": rng}, self.inputs(batch), train=False)["params"]

  def loss_fn(self, params, batch, rng, frozen) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Weighted sum of the AVT losses on one training batch."""
    outputs, aux = self.model.apply({"params": params}, self.inputs(batch), train=True,
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
    if self.kind:
      distill_loss, coverage = self._distill_loss(outputs, aux, batch, frozen, mask)
      total += self.distill.weight * distill_loss
      terms.update(distill_loss=distill_loss, teacher_coverage=coverage)
    terms["loss"] = total
    return total, terms

  def teacher(self, batch, frozen) -> tuple[jax.Array, jax.Array | None]:
    """The teacher's (logits, features) for a batch: read from the batch, or computed online."""
    if self.online is not None:
      return self.online(frozen, batch)
    return batch["teacher_logits"], batch.get("teacher_features")

  def _distill_loss(self, outputs, aux, batch, frozen, mask):
    teacher_logits, teacher_features = self.teacher(batch, frozen)
    m = batch["teacher_mask"] if mask is None else batch["teacher_mask"] * mask
    if self.kind == "kl":
      loss, _ = losses.distillation_kl(outputs["logits"], teacher_logits, m,
                                       temperature=self.distill.temperature,
                                       top_k=self.distill.get("top_k", 0),
                                       reduction=self.distill.get("reduction", "sum"))
    else:
      loss, _ = losses.info_nce(aux["projected"], teacher_features, m,
                                temperature=self.distill.temperature)
    return loss, jnp.mean(m)

  def predict(self, params, batch, frozen) -> dict[str, jax.Array]:
    """Evaluation outputs, with the labels carried along so the host can score them.

    Several views per example (frames [B, V, T, H, W, 3]) run as B * V clips; their outputs are averaged.
    """
    x = self.inputs(batch)
    views = x.shape[1] if self.vit and x.ndim == 6 else 0
    if views:
      x = x.reshape(-1, *x.shape[2:])
    outputs, _ = self.model.apply({"params": params}, x, train=False)
    if views:
      outputs = {k: jnp.mean(v.reshape(-1, views, *v.shape[1:]), axis=1) for k, v in outputs.items()}
    return {**outputs, **{k: batch[k] for k in ("action", "verb", "noun", *self.info.eval_flags)}}

  def evaluate(self, outputs: dict[str, np.ndarray], source=None) -> dict[str, float]:
    del source  # the labels travel with the outputs
    return anticipation_metrics(self.info, outputs)


def anticipation_metrics(info, outputs: dict[str, np.ndarray]) -> dict[str, float]:
  """Dataset metrics (fractions in [0, 1]) from concatenated, unpadded eval outputs (student or teacher)."""
  labels = {k: outputs[k] for k in ("action", "verb", "noun")}
  subsets = {}
  for flag in info.eval_flags:  # "unseen" -> every part; "tail_verb" -> the verb metric only
    name, _, part = flag.rpartition("_")
    parts = (part,) if part in labels else labels
    name = name if part in labels else flag
    subsets.setdefault(name, {}).update({p: outputs[flag] > 0 for p in parts})
  return metrics.anticipation_metrics(
      outputs["logits"], labels, info.actions, num_verbs=info.num_verbs, num_nouns=info.num_nouns,
      many_shot=info.many_shot, verb_logits=outputs.get("verb_logits"),
      noun_logits=outputs.get("noun_logits"), example_subsets=subsets)


class OnlineTeacher:
  """A fine-tuned teacher run (its workdir) evaluated inside the student's train step, frozen."""

  def __init__(self, workdir: str, info):
    import ml_collections  # pylint: disable=g-import-not-at-top
    from anticipax.next_action.text_classifier import TextClassifier  # pylint: disable=g-import-not-at-top
    from anticipax import text_encoders  # pylint: disable=g-import-not-at-top
    teacher_config = ml_collections.ConfigDict(checkpointing.stored_config(workdir))
    text_cfg = ml_collections.ConfigDict({**teacher_config.text.to_dict(), "init_workdir": workdir})
    tokenizer = text_encoders.load_tokenizer(text_cfg)
    self.bert_config = text_encoders.bert_config(text_cfg, tokenizer)
    self.text = text_encoders.HistoryText(text_cfg, info, tokenizer)
    self.model = TextClassifier(self.bert_config, info.num_classes, info.num_verbs, info.num_nouns)
    self.workdir = workdir
    self.feature_dim = self.bert_config.hidden_size

  def frozen(self):
    from anticipax import text_encoders  # pylint: disable=g-import-not-at-top
    ids = jnp.zeros((1, self.text.max_len), jnp.int32)
    boxed = jax.eval_shape(lambda: self.model.init(jax.random.key(0), ids, ids)["params"])
    with_heads = text_encoders.restore_params(self.workdir)
    return jax.device_get(with_heads), nn.get_partition_spec(boxed)

  def __call__(self, params, batch):
    outputs, aux = self.model.apply({"params": params}, batch["input_ids"], batch["attention_mask"])
    return jax.lax.stop_gradient(outputs["logits"]), jax.lax.stop_gradient(aux["cls"])
