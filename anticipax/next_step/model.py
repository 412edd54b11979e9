"""Next-step models for instructional activity anticipation (Yang et al. 2022, "method 2"), linen.

A recipe is its ingredient list and S step sentences, each step with (student) the frame features of its
video segment or (teacher) its sentence. A step encoder turns every step into a vector; a causal temporal
transformer reads [ingredients, step_1, ..., step_S], so that its state at position s has seen the
ingredients and steps < s; a sentence decoder conditioned on state s generates step s's sentence
(s = 0: from the ingredients alone). Student and teacher are the same `NextStepModel` with a different
step encoder; their states (or projections of them) are what cross-modal contrastive distillation aligns.

Inputs (a mapping; unused keys are ignored):
  visual: step_features [B, S, F, D_in] float, frame_mask [B, S, F], has_video [B, S] (default: any frame)
  text:   step_tokens [B, S, T] int (BERT vocabulary), step_attention [B, S, T]
  both:   ingredient_ids [B, Li] int (decoder vocabulary, `pad_id` = padding; or ingredient_mask [B, Li]),
          step_mask [B, S] (1 = a real step)

Parameter tree of `NextStepModel`: step_encoder/..., ingredient_encoder/..., temporal/..., decoder/...,
projection/ (if proj_dim). For the text model the BERT encoder sits at params["step_encoder"]["encoder"],
laid out exactly as `hf_import.load_hf_bert(...)` and `text_encoders.pretrained_params(...)["encoder"]` return
it; `with_pretrained_text_encoder` puts such weights there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp

from anticipax.models.bert import BertConfig, BertEncoder
from anticipax.models.layers import Dtype, Gpt2Block, causal_transformer, default_kernel_init, dense, layer_norm
from anticipax.next_step.decoder import Cache, TransformerDecoder

POOLINGS = ("mean", "cls")


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """x [N, T, D], mask [N, T] -> mean over the valid positions [N, D] (zeros where none is valid)."""
  m = mask.astype(jnp.float32)[..., None]
  total = jnp.sum(x.astype(jnp.float32) * m, axis=-2)
  return (total / jnp.maximum(jnp.sum(m, axis=-2), 1.0)).astype(x.dtype)


def _check_pooling(pooling: str) -> None:
  if pooling not in POOLINGS:
    raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")


class VisualStepEncoder(nn.Module):
  """A small transformer over one step's frame features, pooled to one vector per step.

  Attributes:
    dim: output (and transformer) width D.
    num_layers: bidirectional transformer blocks (`Gpt2Block(causal=False)` over the frames).
    num_heads: attention heads.
    max_frames: learned frame positions (>= F).
    pooling: "mean" (masked mean over valid frames) or "cls" (a learned token prepended).
    mlp_ratio: MLP width as a multiple of D.
    dropout: embedding, attention, residual and MLP dropout.
    dtype: computation dtype.
  """

  dim: int
  num_layers: int
  num_heads: int
  max_frames: int
  pooling: str = "mean"
  mlp_ratio: int = 4
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, deterministic: bool) -> jax.Array:
    """step_features [.., F, D_in], frame_mask [.., F], has_video [..] -> step vectors [.., D].

    Steps without video (has_video False, or no valid frame) get the learned `no_video` vector.
    """
    _check_pooling(self.pooling)
    feats = inputs["step_features"]
    *lead, frames, in_dim = feats.shape
    if frames > self.max_frames:
      raise ValueError(f"{frames} frames per step exceed max_frames {self.max_frames}")
    frame_mask = inputs.get("frame_mask")
    frame_mask = jnp.ones(feats.shape[:-1], bool) if frame_mask is None else frame_mask.astype(bool)
    has_video = inputs.get("has_video")
    has_video = frame_mask.any(-1) if has_video is None else has_video.astype(bool) & frame_mask.any(-1)

    x = dense(self.dim, ("input", "embed"), dtype=self.dtype, name="proj")(
        feats.reshape(-1, frames, in_dim).astype(self.dtype))
    pos = self.param("wpe", nn.with_logical_partitioning(default_kernel_init, ("length", "embed")),
                     (self.max_frames, self.dim))
    x = x + pos[:frames].astype(self.dtype)
    mask = frame_mask.reshape(-1, frames)
    if self.pooling == "cls":
      cls = self.param("cls", nn.with_logical_partitioning(default_kernel_init, ("embed",)), (self.dim,))
      x = jnp.concatenate([jnp.broadcast_to(cls.astype(self.dtype), (x.shape[0], 1, self.dim)), x], axis=1)
      mask = jnp.concatenate([jnp.ones_like(mask[:, :1]), mask], axis=1)
    x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    for i in range(self.num_layers):
      x = Gpt2Block(self.num_heads, self.mlp_ratio, self.dropout, self.dtype, causal=False, name=f"layers_{i}")(
          x, mask[:, None, None, :], deterministic=deterministic)
    x = layer_norm(dtype=self.dtype, name="ln_f")(x)
    pooled = x[:, 0] if self.pooling == "cls" else masked_mean(x, mask)
    no_video = self.param("no_video", nn.with_logical_partitioning(default_kernel_init, ("embed",)), (self.dim,))
    pooled = jnp.where(has_video.reshape(-1, 1), pooled, no_video.astype(self.dtype))
    return pooled.reshape(*lead, self.dim)


class TextStepEncoder(nn.Module):
  """A BERT-family encoder over one step's sentence, pooled and projected to D.

  The encoder is `BertEncoder` named "encoder", so HF checkpoints (e.g. all-MiniLM-L6-v2) load into it as
  everywhere else (see `with_pretrained_text_encoder`).

  Attributes:
    config: the BERT architecture.
    dim: output width D.
    pooling: "mean" over valid tokens (sentence-transformers' MiniLM pooling) or "cls" (the first token).
    dtype: computation dtype of the projection.
  """

  config: BertConfig
  dim: int
  pooling: str = "mean"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, deterministic: bool) -> jax.Array:
    """step_tokens [.., T], step_attention [.., T] -> step vectors [.., D]."""
    _check_pooling(self.pooling)
    ids = inputs["step_tokens"]
    *lead, length = ids.shape
    attention = inputs.get("step_attention")
    attention = (ids != self.config.pad_token_id) if attention is None else attention
    ids, attention = ids.reshape(-1, length), attention.reshape(-1, length)
    hidden, aux = BertEncoder(self.config, name="encoder")(ids, attention, train=not deterministic)
    pooled = aux["cls"] if self.pooling == "cls" else masked_mean(hidden, attention)
    out = dense(self.dim, ("input", "embed"), dtype=self.dtype, name="proj")(pooled.astype(self.dtype))
    return out.reshape(*lead, self.dim)


class IngredientEncoder(nn.Module):
  """Word embeddings of the ingredient tokens, masked mean, projected to D: the recipe before step 1.

  Attributes:
    vocab_size: rows of the word embedding (the decoder's vocabulary).
    dim: output width D.
    embed_dim: word embedding width (0 = D).
    pad_id: padding id, used when the inputs hold no `ingredient_mask`.
    dtype: computation dtype.
  """

  vocab_size: int
  dim: int
  embed_dim: int = 0
  pad_id: int = 0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, inputs: Mapping[str, jax.Array], *, deterministic: bool) -> jax.Array:
    """ingredient_ids [B, Li] (and optionally ingredient_mask [B, Li]) -> [B, D]."""
    del deterministic
    ids = inputs["ingredient_ids"]
    mask = inputs.get("ingredient_mask")
    mask = (ids != self.pad_id) if mask is None else mask
    embed = nn.Embed(self.vocab_size, self.embed_dim or self.dim, dtype=self.dtype, name="embed",
                     embedding_init=nn.with_logical_partitioning(default_kernel_init, ("vocab", "features")))
    pooled = masked_mean(embed(ids), mask)
    return dense(self.dim, ("features", "embed"), dtype=self.dtype, name="proj")(pooled)


class TemporalTransformer(nn.Module):
  """Causal GPT-2 blocks with learned positions over [ingredients, step_1, ..., step_S].

  Attributes:
    dim: width D (of the inputs too).
    num_layers: Gpt2Blocks.
    num_heads: attention heads.
    max_len: learned positions (>= S + 1).
    mlp_ratio: MLP width as a multiple of D.
    dropout: embedding, attention, residual and MLP dropout.
    dtype: computation dtype.
  """

  dim: int
  num_layers: int
  num_heads: int
  max_len: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    """x [B, P, D] -> states [B, P, D]; state p depends on positions <= p only."""
    return causal_transformer(self, x, num_layers=self.num_layers, num_heads=self.num_heads,
                              max_len=self.max_len, mlp_ratio=self.mlp_ratio, dropout=self.dropout,
                              dtype=self.dtype, deterministic=deterministic)


def shift_right(tokens: jax.Array, bos_id: int) -> jax.Array:
  """Targets [.., L] -> decoder inputs [.., L]: BOS followed by the targets without their last token."""
  bos = jnp.full(tokens.shape[:-1] + (1,), bos_id, tokens.dtype)
  return jnp.concatenate([bos, tokens[..., :-1]], axis=-1)


class NextStepModel(nn.Module):
  """Step encoder + ingredient encoder + temporal transformer + sentence decoder.

  Attributes:
    step_encoder: VisualStepEncoder (student) or TextStepEncoder (teacher): inputs -> [B, S, D].
    ingredient_encoder: IngredientEncoder: inputs -> [B, D].
    temporal: TemporalTransformer of width D (max_len >= S + 1).
    decoder: TransformerDecoder; its memory is one state (M = 1).
    proj_dim: if > 0, aux["projected"] [B, S, proj_dim] projects a representation for the contrastive loss.
    copy_ingredients: the decoder can copy the recipe's ingredient words (its `copy_positions` > 0 must hold
      them): a step names the ingredient the state only points to, and an ingredient never seen in training
      can still be named.
    contrast: what aux["projected"] projects: "states" (the temporal states that predict each next step)
      or "steps" (each step's own vector from the step encoder, before the temporal transformer).
    bos_id: first decoder input (teacher forcing prepends it; decoding starts from it).
    dtype: computation dtype of the projection head.
  """

  step_encoder: nn.Module
  ingredient_encoder: nn.Module
  temporal: TemporalTransformer
  decoder: TransformerDecoder
  proj_dim: int = 0
  contrast: str = "states"
  copy_ingredients: bool = False
  bos_id: int = 1
  dtype: Dtype = jnp.float32

  def setup(self):
    if self.proj_dim:
      self.projection = dense(self.proj_dim, ("embed", "features"), dtype=self.dtype)

  def encode(self, inputs: Mapping[str, jax.Array], step_mask: jax.Array | None = None, *,
             train: bool = False) -> jax.Array:
    """The states that predict each step: [B, S, D]; state s has seen the ingredients and steps < s.

    Args:
      inputs: see the module docstring.
      step_mask: [B, S], 1 for real steps (default inputs["step_mask"], else all); padded steps enter the
        temporal transformer as zeros.
      train: enables dropout (needs a "dropout" rng).

    Returns:
      states [B, S, D] in the computation dtype.
    """
    return self.encode_steps(inputs, step_mask, train=train)[1]

  def encode_steps(self, inputs: Mapping[str, jax.Array], step_mask: jax.Array | None = None, *,
                   train: bool = False) -> tuple[jax.Array, jax.Array]:
    """`(steps, states)`: each step's own vector [B, S, D] (masked) and the states of `encode`."""
    steps, states, _ = self._encode(inputs, step_mask, train=train)
    return steps, states

  def _encode(self, inputs, step_mask, *, train: bool):
    """`(steps, states, decoder inputs)`: memory [B * S, M, D], memory_mask [B * S, M] and, if copying,
    copy_ids / copy_mask [B * S, Li] (every step's decoder copies from its recipe's ingredient words)."""
    deterministic = not train
    steps = self.step_encoder(inputs, deterministic=deterministic)  # [B, S, D]
    if step_mask is None:
      step_mask = inputs.get("step_mask")
    if step_mask is not None:
      steps = steps * step_mask[..., None].astype(steps.dtype)
    ingredients = self.ingredient_encoder(inputs, deterministic=deterministic)  # [B, D]
    sequence = jnp.concatenate([ingredients[:, None].astype(steps.dtype), steps], axis=1)
    # Position S has seen every step and predicts nothing within the recipe.
    states = self.temporal(sequence, deterministic=deterministic)[:, :-1]
    batch, num_steps, dim = states.shape
    memory, memory_mask = states.reshape(batch * num_steps, 1, dim), jnp.ones((batch * num_steps, 1), bool)
    decoder_inputs = {"memory": memory, "memory_mask": memory_mask}
    if self.copy_ingredients:
      ids = inputs["ingredient_ids"]
      word_mask = inputs.get("ingredient_mask", ids != self.ingredient_encoder.pad_id)
      decoder_inputs.update(copy_ids=jnp.repeat(ids, num_steps, axis=0),
                            copy_mask=jnp.repeat(word_mask.astype(bool), num_steps, axis=0))
    return steps, states, decoder_inputs

  def __call__(self, inputs: Mapping[str, jax.Array], target_tokens: jax.Array,
               step_mask: jax.Array | None = None, *, train: bool = False
               ) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    """Teacher-forced prediction of every step's sentence from the state before it.

    Args:
      inputs: see the module docstring.
      target_tokens: [B, S, L] step sentences in the decoder vocabulary, without BOS, ending with EOS and
        padded; the decoder reads them shifted right behind `bos_id`. (`data.tasty.text.Vocab.encode` writes
        `<bos>` first: pass its ids[..., 1:].)
      step_mask: [B, S] (see `encode`).
      train: enables dropout (needs a "dropout" rng).

    Returns:
      `(outputs, aux)`: outputs["logits"] [B, S, L, V] float32, position l predicting target_tokens[..., l];
      aux["states"] [B, S, D] float32, aux["steps"] [B, S, D] float32 (`encode_steps`) and, if proj_dim,
      aux["projected"] [B, S, proj_dim] float32.
    """
    step_vectors, states, decoder_inputs = self._encode(inputs, step_mask, train=train)
    batch, steps, length = target_tokens.shape
    logits, _ = self.decoder(shift_right(target_tokens, self.bos_id).reshape(batch * steps, length),
                             **decoder_inputs, deterministic=not train)
    outputs = {"logits": logits.reshape(batch, steps, length, -1)}
    aux = {"states": states.astype(jnp.float32), "steps": step_vectors.astype(jnp.float32)}
    if self.proj_dim:
      if self.contrast not in ("states", "steps"):
        raise ValueError(f"contrast must be 'states' or 'steps', got {self.contrast!r}")
      aux["projected"] = self.projection({"states": states, "steps": step_vectors}[self.contrast]).astype(jnp.float32)
    return outputs, aux

  def decode_init(self, inputs: Mapping[str, jax.Array], step_mask: jax.Array | None = None, *,
                  length: int | None = None, use_cache: bool = True) -> Cache:
    """Encodes the recipes and returns the decoding cache of all B * S states (row b * S + s)."""
    _, _, decoder_inputs = self._encode(inputs, step_mask, train=False)
    return self.decoder.init_cache(**decoder_inputs, length=length, use_cache=use_cache)

  def decode_step(self, tokens: jax.Array, cache: Cache, index: jax.Array) -> tuple[jax.Array, Cache]:
    """`TransformerDecoder.step`: (log_probs [B * S, V], cache)."""
    return self.decoder.step(tokens, cache, index)

  def decode_step_uncached(self, tokens: jax.Array, cache: Cache, index: jax.Array
                           ) -> tuple[jax.Array, Cache]:
    """`TransformerDecoder.step_uncached`: recomputes the prefix (cache from decode_init(use_cache=False))."""
    return self.decoder.step_uncached(tokens, cache, index)


def with_pretrained_text_encoder(params: Mapping[str, Any], encoder_params: Mapping[str, Any]) -> dict[str, Any]:
  """Puts pretrained BERT weights into a text NextStepModel's params["step_encoder"]["encoder"].

  Args:
    params: the model's params (boxed, as from `init`, or plain arrays).
    encoder_params: `BertEncoder` params, e.g. `hf_import.load_hf_bert(name)[1]` or
      `text_encoders.pretrained_params(text_cfg, with_mlm_head=False)["encoder"]`.

  Returns:
    A copy of `params` with the encoder replaced (logical-axis boxes kept).

  Raises:
    ValueError: the weights do not fit the model's encoder (every missing, extra or mis-shaped tensor).
  """
  target = params["step_encoder"]["encoder"]
  want = traverse_util.flatten_dict(nn.unbox(target), sep="/")
  got = traverse_util.flatten_dict(nn.unbox(encoder_params), sep="/")
  problems = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
  problems += [f"unexpected {k}" for k in sorted(got.keys() - want.keys())]
  problems += [f"{k}: shape {got[k].shape}, model has {want[k].shape}" for k in sorted(want.keys() & got.keys())
               if got[k].shape != want[k].shape]
  if problems:
    raise ValueError("pretrained text encoder does not fit params['step_encoder']['encoder']: "
                     + "; ".join(problems))
  new = jax.tree.map(lambda box, value: box.replace_boxed(jnp.asarray(value, box.value.dtype))
                     if isinstance(box, nn.Partitioned) else jnp.asarray(value, box.dtype),
                     target, dict(nn.unbox(encoder_params)), is_leaf=lambda x: isinstance(x, nn.Partitioned))
  return {**params, "step_encoder": {**params["step_encoder"], "encoder": new}}


def _section(cfg, name: str) -> Mapping[str, Any]:
  return cfg.get(name) or {}


def build_next_step_model(cfg, *, vocab_size: int, modality: str, bert_config: BertConfig | None = None,
                          bos_id: int = 1) -> NextStepModel:
  """NextStepModel from `config.model`.

  Fields read (defaults in brackets):
    dim: width D of step vectors, temporal states and decoder.
    num_heads: attention heads of every transformer here.
    dropout [0.0], dtype ["float32"], proj_dim [0], mlp_ratio [4].
    visual.num_layers [1], visual.max_frames, visual.pooling ["mean" | "cls"]   (modality "visual")
    text.pooling ["mean" | "cls"]   (modality "text"; the BERT itself is `bert_config`, dtype set to dtype)
    ingredients.embed_dim [dim], ingredients.pad_id [0]
    temporal.num_layers, temporal.max_steps (S; positions S + 1)
    decoder.num_layers, decoder.max_len, decoder.tie_embeddings [True],
    decoder.copy_ingredients [0: no copying; else the most ingredient words to copy from, >= Li]

  Args:
    cfg: the model ConfigDict.
    vocab_size: decoder (and ingredient) vocabulary size.
    modality: "visual" (student) or "text" (teacher).
    bert_config: the text encoder's architecture (required for "text").
    bos_id: first decoder input.

  Returns:
    The model.
  """
  dtype = jnp.dtype(cfg.get("dtype", "float32"))
  dim, heads = cfg.dim, cfg.num_heads
  dropout, mlp_ratio = cfg.get("dropout", 0.0), cfg.get("mlp_ratio", 4)
  if modality == "visual":
    v = _section(cfg, "visual")
    step_encoder = VisualStepEncoder(dim, v.get("num_layers", 1), heads, max_frames=v["max_frames"],
                                     pooling=v.get("pooling", "mean"), mlp_ratio=mlp_ratio, dropout=dropout,
                                     dtype=dtype)
  elif modality == "text":
    if bert_config is None:
      raise ValueError("modality 'text' needs bert_config (e.g. from hf_import.load_hf_bert)")
    step_encoder = TextStepEncoder(dataclasses.replace(bert_config, dtype=dtype), dim,
                                   pooling=_section(cfg, "text").get("pooling", "mean"), dtype=dtype)
  else:
    raise ValueError(f"modality must be 'visual' or 'text', got {modality!r}")
  ing = _section(cfg, "ingredients")
  ingredient_encoder = IngredientEncoder(vocab_size, dim, embed_dim=ing.get("embed_dim", 0),
                                         pad_id=ing.get("pad_id", 0), dtype=dtype)
  t, d = cfg.temporal, cfg.decoder
  temporal = TemporalTransformer(dim, t.num_layers, heads, max_len=t.max_steps + 1, mlp_ratio=mlp_ratio,
                                 dropout=dropout, dtype=dtype)
  copy_positions = d.get("copy_ingredients", 0)
  decoder = TransformerDecoder(vocab_size, dim, d.num_layers, heads, max_len=d.max_len, mlp_ratio=mlp_ratio,
                               dropout=dropout, tie_embeddings=d.get("tie_embeddings", True),
                               copy_positions=copy_positions, dtype=dtype)
  return NextStepModel(step_encoder, ingredient_encoder, temporal, decoder, proj_dim=cfg.get("proj_dim", 0),
                       copy_ingredients=bool(copy_positions),
                       bos_id=bos_id, dtype=dtype)
