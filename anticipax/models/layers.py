"""Small linen building blocks with logical axis names on every parameter."""

from __future__ import annotations

import math
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


def _flat_init(init, num_in: int):
  """`init` drawn at the 2D shape (prod(in dims), prod(out dims)) and reshaped, as nn.DenseGeneral does:
  the same values as DenseGeneral for the same key, so checkpoints and seeds carry over."""

  def wrapped(rng, shape, dtype=jnp.float32):
    return init(rng, (math.prod(shape[:num_in]), math.prod(shape[num_in:])), dtype).reshape(shape)

  return wrapped


class HeadsDense(nn.Module):
  """A projection to or from attention heads, computed as one 2D matmul.

  `split=True`: x [..., D] -> [..., heads, head_dim] (kernel [D, heads, head_dim], logical
  ("embed", "heads", "kv")); `split=False`: x [..., heads, head_dim] -> [..., features] (kernel
  [heads, head_dim, features]). Parameter names, shapes and initial values are those of the
  nn.DenseGeneral it replaces. The difference is speed: DenseGeneral's 3-D dot makes XLA transpose the
  [D, heads, head_dim] weight gradients (a copy of each kernel per step), the 2D form does not.
  """

  features: int
  num_heads: int
  split: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.split:
      dim, head_dim = x.shape[-1], self.features // self.num_heads
      shape, names, out = (dim, self.num_heads, head_dim), ("embed", "heads", "kv"), (self.num_heads, head_dim)
      batch, num_in = x.shape[:-1], 1
    else:
      shape, names = (*x.shape[-2:], self.features), ("heads", "kv", "embed")
      out, batch, num_in = (self.features,), x.shape[:-2], 2
    kernel = self.param("kernel", nn.with_logical_partitioning(_flat_init(default_kernel_init, num_in), names),
                        shape, jnp.float32)
    bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros_init(), names[num_in:]),
                      out, jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    k_in = math.prod(shape[:num_in])
    y = jnp.dot(x.reshape(-1, k_in), kernel.reshape(k_in, -1)) + bias.reshape(-1)
    return y.reshape(*batch, *out)


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

    def proj(name):
      return HeadsDense(dim, self.num_heads, dtype=self.dtype, name=name)(x)

    q, k, v = proj("query"), proj("key"), proj("value")
    q = nn.with_logical_constraint(q, ("batch", "length", "heads", "kv"))
    if self.causal:
      causal = nn.make_causal_mask(jnp.ones(x.shape[:2], bool))
      mask = causal if mask is None else nn.combine_masks(mask, causal)
    dropout_rng = None if deterministic or self.dropout == 0.0 else self.make_rng("dropout")
    y = nn.dot_product_attention(q, k, v, mask=mask, dropout_rng=dropout_rng, dropout_rate=self.dropout,
                                 deterministic=deterministic, dtype=self.dtype)
    y = nn.with_logical_constraint(y, ("batch", "length", "heads", "kv"))
    return HeadsDense(dim, self.num_heads, split=False, dtype=self.dtype, name="out")(y)


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


class Gpt2Block(nn.Module):
  """Pre-LayerNorm transformer block with causal self-attention and a 4x GELU MLP (GPT-2).

  `causal=False` with a padding `mask` makes it the bidirectional encoder block the step encoders use.
  """

  num_heads: int
  mlp_ratio: int = 4
  dropout: float = 0.0
  dtype: Dtype = jnp.float32
  causal: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None, *, deterministic: bool) -> jax.Array:
    h = layer_norm(dtype=self.dtype, name="ln_1")(x)
    h = SelfAttention(self.num_heads, self.dropout, causal=self.causal, dtype=self.dtype, name="attn")(
        h, mask, deterministic=deterministic)
    x = x + nn.Dropout(self.dropout)(h, deterministic=deterministic)
    h = layer_norm(dtype=self.dtype, name="ln_2")(x)
    x = x + Mlp(self.mlp_ratio * x.shape[-1], self.dropout, dtype=self.dtype, name="mlp")(
        h, deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


def causal_transformer(module: nn.Module, x: jax.Array, *, num_layers: int, num_heads: int, max_len: int,
                       mlp_ratio: int = 4, dropout: float = 0.0, dtype: Dtype = jnp.float32,
                       deterministic: bool) -> jax.Array:
  """The causal core AVT-h and method 2's temporal model share: learned positions, dropout, `num_layers`
  GPT-2 blocks and a final LayerNorm, x [B, P, D] -> [B, P, D] with state p depending on positions <= p.

  Called from a module's `nn.compact` method: its parameters (`wpe`, `h_<i>`, `ln_f`) live in that module's
  scope, so both modules keep the parameter names their checkpoints were written with.
  """
  length, width = x.shape[1], x.shape[-1]
  if length > max_len:
    raise ValueError(f"{length} positions exceed {type(module).__name__}'s max_len {max_len}")
  pos = module.param("wpe", nn.with_logical_partitioning(default_kernel_init, ("length", "embed")),
                     (max_len, width))
  x = nn.Dropout(dropout)(x.astype(dtype) + pos[:length].astype(dtype), deterministic=deterministic)
  x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
  for i in range(num_layers):
    x = Gpt2Block(num_heads, mlp_ratio, dropout, dtype, name=f"h_{i}")(x, deterministic=deterministic)
  return layer_norm(dtype=dtype, name="ln_f")(x)
