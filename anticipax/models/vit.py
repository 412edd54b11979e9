"""Vision Transformer (Dosovitskiy et al., ICLR 2021), linen: AVT's frame backbone.

Class-token ViT with learned absolute position embeddings and pre-LayerNorm blocks, laid out to load the
original JAX `.npz` checkpoints and HF `ViTModel` safetensors (`anticipax.models.vit_import.load_vit`).
`ViT` encodes images [B, H, W, C]; `ViTBackbone` encodes AVT clips [B, T, H, W, C] frame by frame.

Parameter tree of `ViT` (`ViTBackbone` nests it under `vit`):
  embedding/{kernel [p*p*C, D], bias}   patch projection over flattened (row, column, channel) patches
  cls [D], pos_embedding [1 + N, D]      class token; row 0 of the position table belongs to it
  encoderblock_{i}/{ln_1, attn/{query,key,value,out}, ln_2, mlp/{fc,proj}}
  encoder_norm

Logical axes: the layers' names (embed, heads, kv, mlp, length) plus `patch` for the flattened patch
pixels, the input of the patch projection. `patch` is not in the configs' rules, so it is replicated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from anticipax.models.layers import Dtype, Mlp, SelfAttention, default_kernel_init, dense, get_activation, layer_norm

# variant -> (width, depth, heads, MLP width), as big_vision's `decode_variant` (Zhai et al. 2021, Table 2).
VARIANTS = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),
    "L": (1024, 24, 16, 4096),
    "H": (1280, 32, 16, 5120),
}


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Architecture of a class-token ViT (defaults: ViT-B/16 at 224 pixels, as the original JAX code).

  Attributes:
    image_size: input (height, width); an int means square. Fixes the number of position embeddings.
    patch_size: side of the square patches; must divide both image sides.
    num_channels: input channels.
    hidden_size: model width D.
    num_layers: transformer blocks.
    num_heads: attention heads (D must divide by it).
    mlp_dim: MLP width.
    dropout: embedding, residual and MLP dropout.
    attention_dropout: dropout on attention probabilities.
    layer_norm_eps: epsilon of every LayerNorm (1e-6 in the JAX and timm code; HF configs say 1e-12).
    activation: MLP activation by its HF name. The original JAX code (and so its .npz checkpoints) uses
      flax's default tanh GELU ("gelu_pytorch_tanh"); HF and timm use the exact form ("gelu").
    remat: rematerialise each block in the backward pass (`nn.remat`), trading FLOPs for activation memory.
    remat_policy: name of a `jax.checkpoint_policies` member saying what remat may keep, e.g.
      "nothing_saveable" (least memory) or "dots_with_no_batch_dims_saveable" (keeps matmul outputs).
    dtype: computation dtype; parameters stay float32.
  """

  image_size: int | tuple[int, int] = 224
  patch_size: int = 16
  num_channels: int = 3
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  dropout: float = 0.0
  attention_dropout: float = 0.0
  layer_norm_eps: float = 1e-6
  activation: str = "gelu_pytorch_tanh"
  remat: bool = False
  remat_policy: str = "nothing_saveable"
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    size = self.image_size
    size = tuple(int(s) for s in size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    object.__setattr__(self, "image_size", size)  # frozen: normalise once, keep the config hashable
    if len(size) != 2 or any(s % self.patch_size for s in size):
      raise ValueError(f"image_size {size} must be (height, width), both divisible by patch_size {self.patch_size}")
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
    get_activation(self.activation)  # fail at construction, not at the first forward pass
    if self.remat:
      get_remat_policy(self.remat_policy)

  @property
  def grid(self) -> tuple[int, int]:
    """Patches per column and per row: (height, width) // patch_size."""
    return self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size

  @property
  def num_patches(self) -> int:
    return self.grid[0] * self.grid[1]

  @classmethod
  def from_hf_dict(cls, d: Mapping[str, Any], **overrides) -> ViTConfig:
    """Reads an HF `config.json` dict of a ViT (`model_type` "vit").

    Args:
      d: the parsed config.json.
      **overrides: fields to set afterwards (e.g. `image_size=256`, `dtype=jnp.bfloat16`, `remat=True`).

    Returns:
      The config.

    Raises:
      ValueError: not a ViT, or a variant this module does not implement (no q/k/v biases).
    """
    if d.get("model_type", "vit") != "vit":
      raise ValueError(f"model_type {d.get('model_type')!r} is not a ViT ('vit')")
    if not d.get("qkv_bias", True):
      raise ValueError("ViTs without query/key/value biases (qkv_bias=false) are not supported")
    kw = dict(image_size=d.get("image_size", 224), patch_size=d.get("patch_size", 16),
              num_channels=d.get("num_channels", 3), hidden_size=d["hidden_size"],
              num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
              mlp_dim=d["intermediate_size"], dropout=d.get("hidden_dropout_prob", 0.0),
              attention_dropout=d.get("attention_probs_dropout_prob", 0.0),
              layer_norm_eps=d.get("layer_norm_eps", 1e-12), activation=d.get("hidden_act", "gelu"))
    return cls(**{**kw, **overrides})


def vit_config(name: str, **overrides) -> ViTConfig:
  """A named architecture: "{Ti,S,B,L,H}/{patch}" (e.g. "B/16", AVT's backbone) or "tiny" (tests).

  Args:
    name: the variant and patch size, or "tiny" (image 32, patch 8, width 64, 2 layers, 4 heads, MLP 128,
      exact GELU and eps 1e-12: the architecture of tests/models/golden/tiny_vit).
    **overrides: any other `ViTConfig` field (image_size, dropout, remat, dtype, ...).

  Returns:
    The config.
  """
  if name == "tiny":
    kw = dict(image_size=32, patch_size=8, hidden_size=64, num_layers=2, num_heads=4, mlp_dim=128,
              activation="gelu", layer_norm_eps=1e-12)
  else:
    variant, _, patch = name.partition("/")
    if variant not in VARIANTS or not patch.isdigit():
      raise ValueError(f"unknown ViT {name!r}; expected 'tiny' or '<variant>/<patch>' with variant in "
                       f"{sorted(VARIANTS)}, e.g. 'B/16'")
    width, depth, heads, mlp = VARIANTS[variant]
    kw = dict(patch_size=int(patch), hidden_size=width, num_layers=depth, num_heads=heads, mlp_dim=mlp)
  return ViTConfig(**{**kw, **overrides})


def get_remat_policy(name: str):
  """The `jax.checkpoint_policies` member called `name`; ValueError listing the known ones otherwise."""
  policy = getattr(jax.checkpoint_policies, name, None)
  if policy is None or name.startswith("_"):
    known = sorted(n for n in dir(jax.checkpoint_policies) if not n.startswith("_"))
    raise ValueError(f"unknown remat_policy {name!r}; known: {known}")
  return policy


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """[B, H, W, C] -> [B, (H/p) * (W/p), p * p * C]: row-major patches, each flattened (row, column, channel).

  This is a stride-p convolution's input, so a conv kernel [p, p, C, D] reshaped to [p * p * C, D] acts on
  it as the convolution does.
  """
  b, h, w, c = images.shape
  p = patch_size
  x = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (h // p) * (w // p), p * p * c)


class ViTBlock(nn.Module):
  """Pre-LayerNorm block: x += drop(attn(LN(x))); x += drop(mlp(LN(x))).

  Attributes:
    config: the architecture.
  """

  config: ViTConfig

  @nn.compact
  def __call__(self, x: jax.Array, deterministic: bool) -> jax.Array:
    """x [B, L, D] -> [B, L, D]; `deterministic` is positional so `nn.remat` can mark it static."""
    c = self.config
    h = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="ln_1")(x)
    h = SelfAttention(c.num_heads, c.attention_dropout, dtype=c.dtype, name="attn")(h, deterministic=deterministic)
    x = x + nn.Dropout(c.dropout)(h, deterministic=deterministic)
    h = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="ln_2")(x)
    # Mlp applies its own output dropout.
    x = x + Mlp(c.mlp_dim, c.dropout, dtype=c.dtype, activation=c.activation, name="mlp")(
        h, deterministic=deterministic)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class ViT(nn.Module):
  """Class-token ViT encoder (no classification head: its checkpoint tensors are ignored on import).

  Attributes:
    config: the architecture.
  """

  config: ViTConfig

  @nn.compact
  def __call__(self, images: jax.Array, *, deterministic: bool = True) -> tuple[jax.Array, dict[str, Any]]:
    """Encodes images.

    Args:
      images: [B, H, W, C], already normalised, (H, W) == config.image_size.
      deterministic: disables dropout (else needs a "dropout" rng).

    Returns:
      `(cls [B, D], aux)` in the compute dtype: the class token after the final LayerNorm (HF's
      `last_hidden_state[:, 0]`); aux["tokens"] [B, 1 + N, D] holds every token after that LayerNorm.
    """
    c = self.config
    if images.ndim != 4 or images.shape[1:] != (*c.image_size, c.num_channels):
      raise ValueError(f"expected images [B, {c.image_size[0]}, {c.image_size[1]}, {c.num_channels}], got "
                       f"{images.shape}; position embeddings are resampled when loading, not per call")
    x = patchify(images.astype(c.dtype), c.patch_size)
    x = dense(c.hidden_size, ("patch", "embed"), dtype=c.dtype, name="embedding")(x)
    cls = self.param("cls", nn.with_logical_partitioning(nn.initializers.zeros_init(), ("embed",)),
                     (c.hidden_size,))
    pos = self.param("pos_embedding", nn.with_logical_partitioning(default_kernel_init, ("length", "embed")),
                     (1 + c.num_patches, c.hidden_size))
    cls = jnp.broadcast_to(cls.astype(c.dtype), (x.shape[0], 1, c.hidden_size))
    x = jnp.concatenate([cls, x], axis=1) + pos.astype(c.dtype)
    x = nn.Dropout(c.dropout)(x, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))

    block = ViTBlock
    if c.remat:  # argnum 0 is the module itself, 2 is `deterministic`
      block = nn.remat(ViTBlock, static_argnums=(2,), policy=get_remat_policy(c.remat_policy))
    for i in range(c.num_layers):
      x = block(c, name=f"encoderblock_{i}")(x, deterministic)
    x = layer_norm(dtype=c.dtype, epsilon=c.layer_norm_eps, name="encoder_norm")(x)
    return x[:, 0], {"tokens": x}


class ViTBackbone(nn.Module):
  """AVT's frame backbone: the ViT class token of every frame, frames folded into the batch.

  Attributes:
    config: the architecture (its image_size is the frame size).
  """

  config: ViTConfig

  @nn.compact
  def __call__(self, frames: jax.Array, *, deterministic: bool = True) -> jax.Array:
    """frames [B, T, H, W, C] (float, already normalised) -> features [B, T, D] in the compute dtype."""
    if frames.ndim != 5:
      raise ValueError(f"expected frames [B, T, H, W, C], got {frames.shape}")
    b, t = frames.shape[:2]
    cls, _ = ViT(self.config, name="vit")(frames.reshape(b * t, *frames.shape[2:]), deterministic=deterministic)
    return nn.with_logical_constraint(cls.reshape(b, t, -1), ("batch", "length", "features"))
