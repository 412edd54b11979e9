"""Transformer sentence decoder (pre-LN, causal self-attention, cross-attention to a memory), linen.

Two ways to run it:
- teacher forcing: `__call__(tokens [N, L], memory [N, M, Dm], memory_mask [N, M])` -> logits [N, L, V];
- incremental: `init_cache(memory, memory_mask)` once, then `step(tokens, cache, index)` feeds the token at
  `index` and returns the next token's log-probabilities [N, V] and the updated cache. The cache is a plain
  pytree whose every leaf has the rows N as its leading axis, so `anticipax.next_step.decoding` can reorder it by
  beam; `step_uncached` has the same signature and recomputes the whole prefix instead.

With `copy_positions > 0` the decoder can also *copy* (a pointer-generator, See et al. 2017): given source
tokens (e.g. a recipe's ingredient words) it mixes the vocabulary distribution with an attention
distribution over those tokens, p = (1 - g) softmax(logits) + g sum_c a_c onehot(source_c), g a learned
gate; its outputs are then log p (normalized, so softmax/log_softmax of them is p again).

Cache pytree (dtype of the computation):
  memory [N, M, Dm], memory_mask [N, M] bool, with copying copy_ids [N, C], copy_mask [N, C] bool and
  copy_keys [N, C, D], and (unless `use_cache=False`)
  layers: one dict per block: self_k, self_v [N, max_len, heads, head_dim] (positions > index are zeros)
          and cross_k, cross_v [N, M, heads, head_dim] (the memory's keys and values, computed once).

Parameter tree: embed/embedding [V, D] ("vocab", "embed"), wpe [max_len, D], blocks_{i}/{ln_1, self_attn,
ln_2, cross_attn, ln_3, mlp}, ln_f, out/{kernel, bias} only without tied embeddings, and with copying
copy_wpe [copy_positions, D], copy_query, copy_key, copy_gate.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

from anticipax.models.layers import Dtype, HeadsDense, Mlp, default_kernel_init, dense, layer_norm

Cache = dict[str, Any]


class Attention(nn.Module):
  """Multi-head attention whose keys and values are projected apart from the queries.

  Same parameter layout as `layers.SelfAttention` (query/key/value [in, heads, kv], out [heads, kv, D]), so
  that cross-attention can project the memory once and self-attention can grow a cache one key at a time.

  Attributes:
    dim: output width D (divisible by num_heads).
    num_heads: attention heads.
    dropout: dropout on the attention probabilities.
    dtype: computation dtype.
  """

  dim: int
  num_heads: int
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  def setup(self):
    if self.dim % self.num_heads:
      raise ValueError(f"width {self.dim} is not divisible by num_heads {self.num_heads}")

    def proj():
      return HeadsDense(self.dim, self.num_heads, dtype=self.dtype)

    self.query, self.key, self.value = proj(), proj(), proj()
    self.out = HeadsDense(self.dim, self.num_heads, split=False, dtype=self.dtype)

  def key_value(self, source: jax.Array) -> tuple[jax.Array, jax.Array]:
    """source [N, Lk, Din] -> keys, values [N, Lk, heads, head_dim]."""
    names = ("batch", "length", "heads", "kv")
    return (nn.with_logical_constraint(self.key(source), names),
            nn.with_logical_constraint(self.value(source), names))

  def attend(self, x: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None, *,
             deterministic: bool) -> jax.Array:
    """Queries from x [N, Lq, D] over keys/values [N, Lk, heads, head_dim]; mask broadcastable to
    [N, heads, Lq, Lk] (True = attend) -> [N, Lq, D]."""
    q = nn.with_logical_constraint(self.query(x), ("batch", "length", "heads", "kv"))
    dropout_rng = None if deterministic or self.dropout == 0.0 else self.make_rng("dropout")
    y = nn.dot_product_attention(q, k.astype(self.dtype), v.astype(self.dtype), mask=mask,
                                 dropout_rng=dropout_rng, dropout_rate=self.dropout,
                                 deterministic=deterministic, dtype=self.dtype)
    y = nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))
    return self.out(y)

  def __call__(self, x: jax.Array, source: jax.Array, mask: jax.Array | None, *,
               deterministic: bool) -> jax.Array:
    k, v = self.key_value(source)
    return self.attend(x, k, v, mask, deterministic=deterministic)


class DecoderBlock(nn.Module):
  """Pre-LN block: causal self-attention, cross-attention to the memory, MLP; each a residual branch.

  Attributes:
    dim: width D.
    num_heads: attention heads.
    mlp_ratio: MLP width as a multiple of D.
    dropout: attention, residual and MLP dropout.
    dtype: computation dtype.
  """

  dim: int
  num_heads: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  dtype: Dtype = jnp.float32

  def setup(self):
    self.ln_1 = layer_norm(dtype=self.dtype)
    self.self_attn = Attention(self.dim, self.num_heads, self.dropout, self.dtype)
    self.ln_2 = layer_norm(dtype=self.dtype)
    self.cross_attn = Attention(self.dim, self.num_heads, self.dropout, self.dtype)
    self.ln_3 = layer_norm(dtype=self.dtype)
    self.mlp = Mlp(self.mlp_ratio * self.dim, self.dropout, dtype=self.dtype)
    self.residual_dropout = nn.Dropout(self.dropout)

  def __call__(self, x: jax.Array, memory: jax.Array, memory_mask: jax.Array, *,
               deterministic: bool) -> jax.Array:
    """x [N, L, D], memory [N, M, Dm], memory_mask [N, M] bool -> [N, L, D]."""
    causal = nn.make_causal_mask(jnp.ones(x.shape[:2], bool))
    h = self.ln_1(x)
    h = self.self_attn(h, h, causal, deterministic=deterministic)
    x = x + self.residual_dropout(h, deterministic=deterministic)
    h = self.cross_attn(self.ln_2(x), memory, memory_mask[:, None, None, :], deterministic=deterministic)
    x = x + self.residual_dropout(h, deterministic=deterministic)
    x = x + self.mlp(self.ln_3(x), deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))

  def init_cache(self, memory: jax.Array, length: int) -> Cache:
    """Empty self-attention cache of `length` positions and the memory's keys/values."""
    head_dim = self.dim // self.num_heads
    empty = jnp.zeros((memory.shape[0], length, self.num_heads, head_dim), self.dtype)
    cross_k, cross_v = self.cross_attn.key_value(memory)
    return {"self_k": empty, "self_v": empty, "cross_k": cross_k, "cross_v": cross_v}

  def step(self, x: jax.Array, cache: Cache, memory_mask: jax.Array, index: jax.Array
           ) -> tuple[jax.Array, Cache]:
    """One position: x [N, 1, D] at `index` -> ([N, 1, D], cache with this position's key/value)."""
    h = self.ln_1(x)
    k, v = self.self_attn.key_value(h)
    self_k = lax.dynamic_update_slice(cache["self_k"], k.astype(cache["self_k"].dtype), (0, index, 0, 0))
    self_v = lax.dynamic_update_slice(cache["self_v"], v.astype(cache["self_v"].dtype), (0, index, 0, 0))
    self_k, self_v = (nn.with_logical_constraint(c, ("batch", "length", "heads", "kv")) for c in (self_k, self_v))
    visible = (jnp.arange(self_k.shape[1]) <= index)[None, None, None, :]
    x = x + self.self_attn.attend(h, self_k, self_v, visible, deterministic=True)
    x = x + self.cross_attn.attend(self.ln_2(x), cache["cross_k"], cache["cross_v"],
                                   memory_mask[:, None, None, :], deterministic=True)
    x = x + self.mlp(self.ln_3(x), deterministic=True)
    return x, {**cache, "self_k": self_k, "self_v": self_v}


class TransformerDecoder(nn.Module):
  """Token + learned position embeddings, `num_layers` DecoderBlocks, final LayerNorm, vocabulary logits.

  Attributes:
    vocab_size: V, rows of the word embedding and width of the logits.
    dim: width D.
    num_layers: DecoderBlocks.
    num_heads: attention heads.
    max_len: learned positions: the longest sequence (teacher forcing) and the cache length.
    mlp_ratio: MLP width as a multiple of D.
    dropout: embedding, attention, residual and MLP dropout (teacher forcing with deterministic=False).
    tie_embeddings: logits are the final states times the word embedding (no separate output kernel).
    copy_positions: > 0 enables copying from source tokens (`copy_ids`) of up to this many positions, each
      with a learned position embedding (so the order of the source can choose, e.g. the first vegetable).
    dtype: computation dtype (e.g. bfloat16). Parameters are float32, and the output projection and the
      logits are computed in float32 whatever the dtype.
  """

  vocab_size: int
  dim: int
  num_layers: int
  num_heads: int
  max_len: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  tie_embeddings: bool = True
  copy_positions: int = 0
  dtype: Dtype = jnp.float32

  def setup(self):
    # float32 table: the lookup is cast to dtype below, and the tied projection stays in float32.
    self.embed = nn.Embed(self.vocab_size, self.dim, dtype=jnp.float32,
                          embedding_init=nn.with_logical_partitioning(default_kernel_init, ("vocab", "embed")))
    self.wpe = self.param("wpe", nn.with_logical_partitioning(default_kernel_init, ("length", "embed")),
                          (self.max_len, self.dim))
    self.embed_dropout = nn.Dropout(self.dropout)
    self.blocks = [DecoderBlock(self.dim, self.num_heads, self.mlp_ratio, self.dropout, self.dtype)
                   for _ in range(self.num_layers)]
    self.ln_f = layer_norm(dtype=self.dtype)
    if not self.tie_embeddings:
      self.out = dense(self.vocab_size, ("embed", "vocab"), dtype=jnp.float32)
    if self.copy_positions:
      self.copy_wpe = self.param("copy_wpe", nn.with_logical_partitioning(default_kernel_init, ("length", "embed")),
                                 (self.copy_positions, self.dim))
      self.copy_query = dense(self.dim, ("embed", "features"), dtype=jnp.float32)
      self.copy_key = dense(self.dim, ("embed", "features"), dtype=jnp.float32)
      self.copy_gate = dense(1, ("embed", None), dtype=jnp.float32)

  def copy_source(self, copy_ids: jax.Array | None, copy_mask: jax.Array | None) -> dict[str, jax.Array]:
    """The tokens to copy from, [N, C] (C <= copy_positions), with their keys; {} without copying."""
    if not self.copy_positions:
      return {}
    if copy_ids is None:
      raise ValueError("this decoder copies (copy_positions > 0): pass copy_ids [N, C]")
    if copy_ids.shape[1] > self.copy_positions:
      raise ValueError(f"{copy_ids.shape[1]} source tokens exceed the decoder's copy_positions {self.copy_positions}")
    mask = jnp.ones(copy_ids.shape, bool) if copy_mask is None else copy_mask.astype(bool)
    keys = self.copy_key(self.embed(copy_ids) + self.copy_wpe[:copy_ids.shape[1]])
    return {"copy_ids": copy_ids, "copy_mask": mask, "copy_keys": keys}

  def _logits(self, x: jax.Array, source: dict[str, jax.Array] | None = None) -> jax.Array:
    """Final states [N, L, D] -> logits [N, L, V], or with a copy `source` the log of the mixture."""
    x = self.ln_f(x).astype(jnp.float32)
    logits = self.embed.attend(x) if self.tie_embeddings else self.out(x)
    if source:
      ids, mask = source["copy_ids"], source["copy_mask"]
      scores = jnp.einsum("nld,ncd->nlc", self.copy_query(x), source["copy_keys"].astype(jnp.float32))
      scores = jnp.where(mask[:, None, :], scores / jnp.sqrt(jnp.float32(self.dim)), -1e9)
      # A row with nothing to copy generates only.
      gate = jax.nn.sigmoid(self.copy_gate(x)) * mask.any(-1)[:, None, None]
      batch, length = scores.shape[:2]
      copied = jnp.zeros_like(logits).at[jnp.arange(batch)[:, None, None], jnp.arange(length)[None, :, None],
                                          ids[:, None, :]].add(jax.nn.softmax(scores, axis=-1))
      probs = (1.0 - gate) * jax.nn.softmax(logits, axis=-1) + gate * copied
      logits = jnp.log(jnp.maximum(probs, jnp.finfo(jnp.float32).tiny))
    return nn.with_logical_constraint(logits, ("batch", "length", "vocab"))

  def __call__(self, tokens: jax.Array, memory: jax.Array, memory_mask: jax.Array | None = None, *,
               copy_ids: jax.Array | None = None, copy_mask: jax.Array | None = None,
               deterministic: bool = True) -> tuple[jax.Array, dict[str, Any]]:
    """Teacher forcing: position t reads tokens <= t and predicts token t + 1.

    Args:
      tokens: [N, L] int decoder inputs (starting with BOS), L <= max_len.
      memory: [N, M, Dm] conditioning vectors (M = 1 for a single state).
      memory_mask: [N, M], True where the memory is valid; None = all valid.
      copy_ids: [N, C] tokens to copy from (required with copy_positions > 0, ignored otherwise).
      copy_mask: [N, C], True where copy_ids is a real token; None = all.
      deterministic: False enables dropout (needs a "dropout" rng).

    Returns:
      `(logits [N, L, V] float32, aux)`; aux has `hidden` [N, L, D], the final states before LayerNorm.
      With copying, the logits are log-probabilities of the mixture.
    """
    length = tokens.shape[1]
    if length > self.max_len:
      raise ValueError(f"{length} tokens exceed the decoder's max_len {self.max_len}")
    if memory_mask is None:
      memory_mask = jnp.ones(memory.shape[:2], bool)
    x = self.embed(tokens).astype(self.dtype) + self.wpe[:length].astype(self.dtype)
    x = nn.with_logical_constraint(self.embed_dropout(x, deterministic=deterministic),
                                   ("batch", "length", "embed"))
    memory = memory.astype(self.dtype)
    for block in self.blocks:
      x = block(x, memory, memory_mask.astype(bool), deterministic=deterministic)
    return self._logits(x, self.copy_source(copy_ids, copy_mask)), {"hidden": x}

  def init_cache(self, memory: jax.Array, memory_mask: jax.Array | None = None, *, length: int | None = None,
                 use_cache: bool = True, copy_ids: jax.Array | None = None,
                 copy_mask: jax.Array | None = None) -> Cache:
    """The decoding state for `step` (use_cache=True) or `step_uncached` (use_cache=False).

    Args:
      memory: [N, M, Dm] conditioning vectors.
      memory_mask: [N, M] bool; None = all valid.
      copy_ids, copy_mask: the tokens to copy from (see `__call__`).
      length: cache positions (the longest decode), at most max_len; default max_len.
      use_cache: allocate per-layer key/value caches (False keeps only the memory).

    Returns:
      The cache pytree described in the module docstring.
    """
    length = self.max_len if length is None else length
    if length > self.max_len:
      raise ValueError(f"cache length {length} exceeds the decoder's max_len {self.max_len}")
    if memory_mask is None:
      memory_mask = jnp.ones(memory.shape[:2], bool)
    cache = {"memory": memory.astype(self.dtype), "memory_mask": memory_mask.astype(bool),
             **self.copy_source(copy_ids, copy_mask)}
    if use_cache:
      cache["layers"] = tuple(block.init_cache(cache["memory"], length) for block in self.blocks)
    return cache

  def step(self, tokens: jax.Array, cache: Cache, index: jax.Array) -> tuple[jax.Array, Cache]:
    """Feeds tokens[:, index] at position `index` and returns the next token's distribution.

    Args:
      tokens: [N, T] decoder inputs so far (only column `index` is read).
      cache: from `init_cache(use_cache=True)`, holding positions < index.
      index: scalar int position (may be traced).

    Returns:
      `(log_probs [N, V] float32, cache)`.
    """
    token = lax.dynamic_index_in_dim(tokens, index, axis=1, keepdims=True)  # [N, 1]
    pos = lax.dynamic_index_in_dim(self.wpe, index, axis=0, keepdims=True)  # [1, D]
    x = self.embed(token).astype(self.dtype) + pos[None].astype(self.dtype)
    layers = []
    for block, layer_cache in zip(self.blocks, cache["layers"]):
      x, layer_cache = block.step(x, layer_cache, cache["memory_mask"], index)
      layers.append(layer_cache)
    log_probs = jax.nn.log_softmax(self._logits(x, self._source(cache))[:, 0], axis=-1)
    return log_probs, {**cache, "layers": tuple(layers)}

  @staticmethod
  def _source(cache: Cache) -> dict[str, jax.Array]:
    return {k: cache[k] for k in ("copy_ids", "copy_mask", "copy_keys") if k in cache}

  def step_uncached(self, tokens: jax.Array, cache: Cache, index: jax.Array) -> tuple[jax.Array, Cache]:
    """As `step`, but reruns the full forward pass over `tokens` (causal, so columns > index do not matter)."""
    logits, _ = self(tokens, cache["memory"], cache["memory_mask"], copy_ids=cache.get("copy_ids"),
                     copy_mask=cache.get("copy_mask"), deterministic=True)
    logits = lax.dynamic_index_in_dim(logits, index, axis=1, keepdims=False)
    return jax.nn.log_softmax(logits, axis=-1), cache
