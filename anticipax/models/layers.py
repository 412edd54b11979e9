"""Small linen building blocks with logical axis names on every parameter."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
default_kernel_init = nn.initializers.normal(stddev=0.02)  # GPT-2 / BERT initialisation

# Activations by the names HF configs use. BERT's "gelu" is the exact erf form; GPT-2's "gelu_new" and
# "gelu_pytorch_tanh" are the tanh approximation. Checkpoints only match their reference with the right one.
ACTIVATIONS = {
    "gelu": lambda x: nn.gelu(x, approximate=False),
    "gelu_new": lambda x: nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: nn.gelu(x, approximate=True),
    "relu": nn.relu,
}


def get_activation(name: str):
  """The activation function HF calls `name` (see ACTIVATIONS); raises ValueError for unknown names."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}") from None


def dense(features: int, names: tuple[str, str], *, use_bias: bool = True, dtype: Dtype = jnp.float32,
          name: str | None = None, kernel_init=default_kernel_init) -> nn.Dense:
  """nn.Dense whose kernel is named `names` (in, out) and whose bias is named `names[1]`."""
  return nn.Dense(
      features, use_bias=use_bias, dtype=dtype, name=name,
      kernel_init=nn.with_logical_partitioning(kernel_init, names),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), names[1:]))


def layer_norm(axis_name: str = "embed", *, dtype: Dtype = jnp.float32, epsilon: float = 1e-5,
               name: str | None = None) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=epsilon, dtype=dtype, name=name,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones_init(), (axis_name,)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), (axis_name,)))


class SelfAttention(nn.Module):
  """Multi-head self-attention with separate q/k/v projections (heads sharded on `heads`)."""

  num_heads: int
  dropout: float = 0.0
  causal: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, deterministic: bool) -> jax.Array:
    """x: [B, T, D]; mask: optional [B, 1, T, T] or broadcastable boolean (True = attend)."""
    dim = x.shape[-1]
    if dim % self.num_heads:
      raise ValueError(f"width {dim} is not divisible by num_heads {self.num_heads}")
    head_dim = dim // self.num_heads

    def proj(name):
      return nn.DenseGeneral(
          (self.num_heads, head_dim), dtype=self.dtype, name=name,
          kernel_init=nn.with_logical_partitioning(default_kernel_init, ("embed", "heads", "kv")),
          bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("heads", "kv")))(x)

    q, k, v = proj("query"), proj("key"), proj("value")
    q = nn.with_logical_constraint(q, ("batch", "length", "heads", "kv"))
    if self.causal:
      causal = nn.make_causal_mask(jnp.ones(x.shape[:2], bool))
      mask = causal if mask is None else nn.combine_masks(mask, causal)
    dropout_rng = None if deterministic or self.dropout == 0.0 else self.make_rng("dropout")
    y = nn.dot_product_attention(q, k, v, mask=mask, dropout_rng=dropout_rng, dropout_rate=self.dropout,
                                 deterministic=deterministic, dtype=self.dtype)
    y = nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))
    return nn.DenseGeneral(
        dim, axis=(-2, -1), dtype=self.dtype, name="out",
        kernel_init=nn.with_logical_partitioning(default_kernel_init, ("heads", "kv", "embed")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)))(y)


class Mlp(nn.Module):
  """Two-layer MLP of width `hidden`; GELU (tanh form, as GPT-2) unless `activation` names another."""

  hidden: int
  dropout: float = 0.0
  dtype: Dtype = jnp.float32
  activation: str = "gelu_new"

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    dim = x.shape[-1]
    h = dense(self.hidden, ("embed", "mlp"), dtype=self.dtype, name="fc")(x)
    h = nn.with_logical_constraint(get_activation(self.activation)(h), ("batch", "length", "mlp"))
    h = dense(dim, ("mlp", "embed"), dtype=self.dtype, name="proj")(h)
    return nn.Dropout(self.dropout)(h, deterministic=deterministic)
