"""BERT-family text encoders (BERT, RoBERTa, DistilBERT), linen, laid out to load HF checkpoints.

The three families share one post-LayerNorm architecture; they differ only in data held by `BertConfig`:
RoBERTa numbers positions from `pad_token_id + 1` and skips padding when counting, DistilBERT has no
token-type embeddings. Checkpoints are read by `anticipax.models.hf_import.load_hf_bert`.

Parameter tree of `BertEncoder` (`BertForMaskedLM` nests it under `encoder` next to `mlm_head`):
  embeddings/{word_embeddings, position_embeddings, token_type_embeddings}/embedding, embeddings/layer_norm
  layers_{i}/attention/{query,key,value,out}, layers_{i}/attention_norm, layers_{i}/mlp/{fc,proj},
  layers_{i}/output_norm
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from anticipax.models.layers import Dtype, Mlp, SelfAttention, default_kernel_init, dense, get_activation, layer_norm

FAMILIES = ("bert", "roberta", "distilbert")
# HF `model_type` -> family. XLM-R and CamemBERT are RoBERTa with another vocabulary.
_MODEL_TYPES = {"bert": "bert", "roberta": "roberta", "xlm-roberta": "roberta", "camembert": "roberta",
                "distilbert": "distilbert"}


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """Architecture of a BERT-family encoder (defaults: bert-base-uncased).

  Attributes:
    vocab_size: rows of the word embedding (and MLM logits).
    hidden_size: model width H.
    num_layers: transformer blocks.
    num_heads: attention heads (H must divide by it).
    intermediate_size: MLP width.
    max_position_embeddings: rows of the position table. For RoBERTa it includes the `pad_token_id + 1`
      offset, so the longest input is `max_position_embeddings - pad_token_id - 1` tokens.
    type_vocab_size: segment (token type) embeddings; 0 means none (DistilBERT).
    layer_norm_eps: epsilon of every LayerNorm.
    hidden_act: MLP activation by its HF name: "gelu" (exact erf), "gelu_new"/"gelu_pytorch_tanh" (tanh), "relu".
    dropout: embedding, residual and MLP dropout.
    attention_dropout: dropout on attention probabilities.
    pad_token_id: id of the padding token (RoBERTa derives position ids from it).
    family: "bert", "roberta" or "distilbert".
    dtype: computation dtype (parameters stay as loaded).
  """

  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"
  dropout: float = 0.1
  attention_dropout: float = 0.1
  pad_token_id: int = 0
  family: str = "bert"
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
    if self.family == "distilbert" and self.type_vocab_size:
      raise ValueError("DistilBERT has no token-type embeddings; set type_vocab_size=0")
    get_activation(self.hidden_act)  # fail at construction, not at the first forward pass

  @property
  def position_offset(self) -> int:
    """First position id of a real token: RoBERTa (fairseq) reserves rows 0..pad_token_id."""
    return self.pad_token_id + 1 if self.family == "roberta" else 0

  @property
  def mlm_act(self) -> str:
    """Activation of the MLM head: HF's RobertaLMHead hard-codes exact GELU, the others follow the config."""
    return "gelu" if self.family == "roberta" else self.hidden_act

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any], **overrides) -> BertConfig:
    """Reads an HF `config.json` dict of a BERT, RoBERTa/XLM-R or DistilBERT model.

    Args:
      d: the parsed config.json.
      **overrides: fields to set afterwards (e.g. `dtype=jnp.bfloat16`, `dropout=0.0`).

    Returns:
      The config.

    Raises:
      ValueError: unknown model_type.
      NotImplementedError: a variant this module does not implement (sinusoidal or relative positions).
    """
    model_type = d.get("model_type") or ("distilbert" if "n_layers" in d else "bert")
    if model_type not in _MODEL_TYPES:
      raise ValueError(f"model_type {model_type!r} is not a BERT family model; known: {sorted(_MODEL_TYPES)}")
    family = _MODEL_TYPES[model_type]
    if family == "distilbert":
      if d.get("sinusoidal_pos_embds", False):
        raise NotImplementedError("DistilBERT with sinusoidal_pos_embds=true is not supported")
      kw = dict(vocab_size=d["vocab_size"], hidden_size=d["dim"], num_layers=d["n_layers"],
                num_heads=d["n_heads"], intermediate_size=d["hidden_dim"],
                max_position_embeddings=d.get("max_position_embeddings", 512), type_vocab_size=0,
                layer_norm_eps=1e-12,  # hard-coded in HF's DistilBERT
                hidden_act=d.get("activation", "gelu"), dropout=d.get("dropout", 0.1),
                attention_dropout=d.get("attention_dropout", 0.1), pad_token_id=d.get("pad_token_id", 0))
    else:
      pos_type = d.get("position_embedding_type", "absolute")
      if pos_type != "absolute":
        raise NotImplementedError(f"position_embedding_type={pos_type!r} is not supported (only 'absolute')")
      kw = dict(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"], num_layers=d["num_hidden_layers"],
                num_heads=d["num_attention_heads"], intermediate_size=d["intermediate_size"],
                max_position_embeddings=d.get("max_position_embeddings", 512),
                type_vocab_size=d.get("type_vocab_size", 2), layer_norm_eps=d.get("layer_norm_eps", 1e-12),
                hidden_act=d.get("hidden_act", "gelu"), dropout=d.get("hidden_dropout_prob", 0.1),
                attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
                pad_token_id=d.get("pad_token_id", 1 if family == "roberta" else 0))
    return cls(family=family, **{**kw, **overrides})


def _embed(num: int, features: int, names: tuple[str, str], dtype: Dtype) -> nn.Embed:
  return nn.Embed(num, features, dtype=dtype,
                  embedding_init=nn.with_logical_partitioning(default_kernel_init, names))


class BertEmbeddings(nn.Module):
  """Word + position (+ token type) embeddings, LayerNorm, dropout.

  Attributes:
    config: the architecture.
  """

  config: BertConfig

  def setup(self):
    c = self.config
    self.word_embeddings = _embed(c.vocab_size, c.hidden_size, ("vocab", "embed"), c.dtype)
    self.position_embeddings = _embed(c.max_position_embeddings, c.hidden_size, ("length", "embed"), c.dtype)
    if c.type_vocab_size:
      self.token_type_embeddings = _embed(c.type_vocab_size, c.hidden_size, ("type_vocab", "embed"), c.dtype)
    self.layer_norm = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps)
    self.dropout = nn.Dropout(c.dropout)

  def position_ids(self, input_ids: jax.Array) -> jax.Array:
    """[B, T] position ids; RoBERTa counts only non-pad tokens so left padding does not shift positions."""
    c = self.config
    if c.family == "roberta":
      # As HF's create_position_ids_from_input_ids: pads sit at row pad_token_id, tokens from pad_token_id + 1.
      not_pad = (input_ids != c.pad_token_id).astype(jnp.int32)
      return jnp.cumsum(not_pad, axis=1) * not_pad + c.pad_token_id
    return jnp.broadcast_to(jnp.arange(input_ids.shape[1]), input_ids.shape)

  def __call__(self, input_ids: jax.Array, token_type_ids: jax.Array | None = None, *,
               deterministic: bool) -> jax.Array:
    """input_ids [B, T] (and token_type_ids [B, T], zeros if None) -> embeddings [B, T, H]."""
    c = self.config
    max_len = c.max_position_embeddings - c.position_offset
    if input_ids.shape[1] > max_len:
      raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the {max_len} positions of this model")
    x = self.word_embeddings(input_ids) + self.position_embeddings(self.position_ids(input_ids))
    if c.type_vocab_size:
      if token_type_ids is None:
        token_type_ids = jnp.zeros_like(input_ids)
      x = x + self.token_type_embeddings(token_type_ids)
    elif token_type_ids is not None:
      raise ValueError(f"{c.family} has no token-type embeddings, but token_type_ids were given")
    x = self.dropout(self.layer_norm(x), deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))

  def attend(self, x: jax.Array) -> jax.Array:
    """Projects [..., H] onto the word embeddings: the tied MLM decoder, [..., vocab]."""
    return self.word_embeddings.attend(x)


class BertLayer(nn.Module):
  """Post-LayerNorm block: x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x))).

  Attributes:
    config: the architecture.
  """

  config: BertConfig

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, *, deterministic: bool) -> jax.Array:
    """x [B, T, H], mask boolean broadcastable to [B, heads, T, T] -> [B, T, H]."""
    c = self.config
    h = SelfAttention(c.num_heads, c.attention_dropout, dtype=c.dtype, name="attention")(
        x, mask, deterministic=deterministic)
    h = nn.Dropout(c.dropout)(h, deterministic=deterministic)
    x = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="attention_norm")(x + h)
    # Mlp applies its own output dropout, as BERT's output.dropout.
    h = Mlp(c.intermediate_size, c.dropout, dtype=c.dtype, activation=c.hidden_act, name="mlp")(
        x, deterministic=deterministic)
    x = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="output_norm")(x + h)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class BertEncoder(nn.Module):
  """Embeddings followed by `num_layers` post-LN blocks (no pooler: its weights are ignored on import).

  Attributes:
    config: the architecture.
  """

  config: BertConfig

  def setup(self):
    self.embeddings = BertEmbeddings(self.config)
    self.layers = [BertLayer(self.config) for _ in range(self.config.num_layers)]

  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
               token_type_ids: jax.Array | None = None, *, train: bool = False,
               output_hidden_states: bool = False) -> tuple[jax.Array, dict[str, Any]]:
    """Encodes token ids.

    Args:
      input_ids: [B, T] int token ids.
      attention_mask: [B, T], 1 for tokens and 0 for padding; None attends everywhere.
      token_type_ids: [B, T] segment ids (families with token types; zeros if None).
      train: enables dropout (needs a "dropout" rng).
      output_hidden_states: also return the embeddings and every block's output.

    Returns:
      `(last_hidden_state [B, T, H], aux)`; aux has `cls` [B, H] (the first token's state) and, if asked,
      `hidden_states`: a tuple of num_layers + 1 arrays [B, T, H] (embeddings first), as HF.
    """
    deterministic = not train
    if attention_mask is None:
      attention_mask = jnp.ones(input_ids.shape, bool)
    # Padding hides keys only; padded query rows are still computed (and ignored downstream), as in HF.
    mask = attention_mask.astype(bool)[:, None, None, :]
    x = self.embeddings(input_ids, token_type_ids, deterministic=deterministic)
    states = [x]
    for layer in self.layers:
      x = layer(x, mask, deterministic=deterministic)
      states.append(x)
    aux = {"cls": x[:, 0]}
    if output_hidden_states:
      aux["hidden_states"] = tuple(states)
    return x, aux

  def attend(self, x: jax.Array) -> jax.Array:
    """Tied output projection onto the word embeddings, [..., H] -> [..., vocab]."""
    return self.embeddings.attend(x)


class MlmHead(nn.Module):
  """Masked-LM head: dense -> activation -> LayerNorm -> tied word-embedding decoder + bias.

  The same structure serves BERT (cls.predictions), RoBERTa (lm_head) and DistilBERT (vocab_*).

  Attributes:
    config: the architecture.
  """

  config: BertConfig

  @nn.compact
  def __call__(self, hidden: jax.Array, decoder) -> jax.Array:
    """hidden [B, T, H] and `decoder` ([..., H] -> [..., V], the tied embedding) -> logits [B, T, V]."""
    c = self.config
    # The transform maps embed -> embed; a second logical name avoids one mesh axis on both dimensions.
    x = dense(c.hidden_size, ("embed", "embed_out"), dtype=c.dtype, name="transform")(hidden)
    x = get_activation(c.mlm_act)(x)
    x = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="layer_norm")(x)
    bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("vocab",)),
                      (c.vocab_size,))
    logits = decoder(x) + bias.astype(c.dtype)
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))


class BertForMaskedLM(nn.Module):
  """Encoder + MLM head whose decoder is the word embedding (no separate decoder kernel).

  Attributes:
    config: the architecture.
  """

  config: BertConfig

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array | None = None,
               token_type_ids: jax.Array | None = None, *, train: bool = False,
               output_hidden_states: bool = False) -> tuple[jax.Array, dict[str, Any]]:
    """Token logits; arguments as `BertEncoder.__call__`.

    Returns:
      `(logits [B, T, vocab] float32, aux)`; aux is the encoder's aux plus `last_hidden_state` [B, T, H].
    """
    encoder = BertEncoder(self.config, name="encoder")
    hidden, aux = encoder(input_ids, attention_mask, token_type_ids, train=train,
                          output_hidden_states=output_hidden_states)
    logits = MlmHead(self.config, name="mlm_head")(hidden, encoder.attend)
    return logits.astype(jnp.float32), {**aux, "last_hidden_state": hidden}
