"""Anticipative Video Transformer (Girdhar & Grauman, ICCV 2021), linen.

AVT = a frame backbone (pre-extracted per-frame features as they are or projected; or a ViT on the frames
themselves, AVT-b) followed by
AVT-h, a causal GPT-2-style head. The head reads frames 1..T and, at every position t, predicts the
feature of frame t+1. One classifier reads those predicted features: at the last position it gives the
next-action logits, at the earlier positions the "past" logits used by the past-classification loss.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from anticipax.models.layers import Dtype, causal_transformer, dense
from anticipax.models.vit import ViTBackbone, vit_config


class IdentityBackbone(nn.Module):
  """Pre-extracted per-frame features [B, T, D] go to AVT-h as they are (AVT's own setting: the head's
  bias-free encoder is the first learned layer)."""

  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, frames: jax.Array, *, deterministic: bool = True) -> jax.Array:
    del deterministic
    return nn.with_logical_constraint(frames.astype(self.dtype), ("batch", "length", "features"))


class FeatureBackbone(nn.Module):
  """Projects pre-extracted per-frame features [B, T, D_in] to the backbone width [B, T, dim]."""

  dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, frames: jax.Array, *, deterministic: bool = True) -> jax.Array:
    del deterministic
    x = dense(self.dim, ("input", "features"), dtype=self.dtype, name="proj")(frames)
    return nn.with_logical_constraint(x, ("batch", "length", "features"))


class AvtHead(nn.Module):
  """AVT-h: predicts the next frame's feature at every position (causal).

  Attributes:
    inter_dim: width of the transformer.
    num_layers: GPT-2 blocks.
    num_heads: attention heads.
    max_len: number of learned position embeddings (>= frames per clip).
    dropout: embedding, attention, residual and MLP dropout.
  """

  inter_dim: int
  num_layers: int
  num_heads: int
  max_len: int = 64
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, feats: jax.Array, *, deterministic: bool) -> jax.Array:
    """feats [B, T, D] -> predicted next-frame features [B, T, D]."""
    dim = feats.shape[-1]
    # Frame features live on the "features" axis; the transformer's own width is "embed".
    x = dense(self.inter_dim, ("features", "embed"), use_bias=False, dtype=self.dtype, name="encoder")(feats)
    x = causal_transformer(self, x, num_layers=self.num_layers, num_heads=self.num_heads, max_len=self.max_len,
                           dropout=self.dropout, dtype=self.dtype, deterministic=deterministic)
    x = dense(dim, ("embed", "features"), use_bias=False, dtype=self.dtype, name="decoder")(x)
    return nn.with_logical_constraint(x, ("batch", "length", "features"))


class Avt(nn.Module):
  """Backbone + AVT-h + classifiers.

  Attributes:
    backbone: module mapping inputs [B, T, ...] to frame features [B, T, D].
    head: AvtHead.
    num_classes: next-action classes.
    num_verbs / num_nouns: optional extra heads on the same predicted features (0 = off).
    dropout: dropout before the classifiers.
    distill_dim: if > 0, aux["projected"] [B, distill_dim] projects the last predicted feature for
      contrastive distillation.

  Returns from __call__: `(outputs, aux)`; outputs has `logits` [B, C] (next action) and optionally
  `verb_logits`, `noun_logits`; aux has `past_logits` [B, T, C] (position t classifies frame t+1),
  `pred_features` [B, T, D] and `features` [B, T, D] (the observed frame features).
  """

  backbone: nn.Module
  head: AvtHead
  num_classes: int
  num_verbs: int = 0
  num_nouns: int = 0
  dropout: float = 0.0
  distill_dim: int = 0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, frames: jax.Array, *, train: bool = False) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    deterministic = not train
    feats = self.backbone(frames.astype(self.dtype), deterministic=deterministic)
    pred = self.head(feats, deterministic=deterministic)
    h = nn.Dropout(self.dropout)(pred, deterministic=deterministic)

    def classifier(n, name):
      logits = dense(n, ("features", "classes"), dtype=self.dtype, name=name)(h).astype(jnp.float32)
      return nn.with_logical_constraint(logits, ("batch", "length", "classes"))

    past_logits = classifier(self.num_classes, "classifier")
    outputs = {"logits": past_logits[:, -1]}
    if self.num_verbs:
      outputs["verb_logits"] = classifier(self.num_verbs, "verb_classifier")[:, -1]
    if self.num_nouns:
      outputs["noun_logits"] = classifier(self.num_nouns, "noun_classifier")[:, -1]
    aux = {"past_logits": past_logits, "pred_features": pred.astype(jnp.float32),
           "features": feats.astype(jnp.float32)}
    if self.distill_dim:  # the predicted next-frame feature, in the text teacher's feature space
      proj = dense(self.distill_dim, ("features", "embed"), dtype=self.dtype, name="distill_proj")
      aux["projected"] = proj(pred[:, -1]).astype(jnp.float32)
    return outputs, aux


def build_avt(cfg, *, num_classes: int, num_verbs: int = 0, num_nouns: int = 0, distill_dim: int = 0) -> Avt:
  """AVT from `config.model` (backbone.kind/dim, head.*, dropout, verb_noun_heads, dtype).

  `backbone.kind`: "identity" feeds the pre-extracted features to the head unchanged; "linear" (the
  default) projects them to `backbone.dim` first; "vit" (AVT-b) encodes normalised frames [B, T, H, W, 3]
  with the ViT `backbone.name` ("B/16", "tiny", ...; `anticipax.models.vit.vit_config`), optionally at
  `backbone.image_size` and with `backbone.remat` / `backbone.remat_policy`, in `model.dtype`.
  """
  dtype = jnp.dtype(cfg.get("dtype", "float32"))
  kind = cfg.backbone.get("kind", "linear")
  if kind == "identity":
    backbone = IdentityBackbone(dtype=dtype)
  elif kind == "linear":
    backbone = FeatureBackbone(cfg.backbone.dim, dtype=dtype)
  elif kind == "vit":
    backbone = ViTBackbone(vit_backbone_config(cfg))
  else:
    raise ValueError(f"config.model.backbone.kind: unknown {kind!r} (identity, linear or vit)")
  head = AvtHead(cfg.head.inter_dim, cfg.head.num_layers, cfg.head.num_heads,
                 max_len=cfg.head.get("max_len", 64), dropout=cfg.head.dropout, dtype=dtype)
  with_vn = cfg.get("verb_noun_heads", False)
  return Avt(backbone, head, num_classes, num_verbs if with_vn else 0, num_nouns if with_vn else 0,
             dropout=cfg.dropout, distill_dim=distill_dim, dtype=dtype)


def vit_backbone_config(cfg):
  """The `ViTConfig` of a "vit" backbone from `config.model`."""
  fields = {k: cfg.backbone[k] for k in ("image_size", "remat", "remat_policy") if k in cfg.backbone}
  return vit_config(cfg.backbone.get("name", "B/16"), dtype=jnp.dtype(cfg.get("dtype", "float32")), **fields)
