"""Import of pretrained ViTs into `anticipax.models.vit.ViT` (numpy only, no torch, no TensorFlow).

Two sources:
- `.npz` files of google-research/vision_transformer (e.g. `ViT-B_16.npz`, the AugReg `B_16-i21k-...npz`)
  and of big_vision: flattened flax names such as `Transformer/encoderblock_0/MlpBlock_3/Dense_0/kernel`.
  Both naming generations are read (vision_transformer's `MultiHeadDotProductAttention_1`, `LayerNorm_2`,
  `MlpBlock_3`; big_vision's `_0`, `LayerNorm_1`, `_0`), as are an `opt/target/` or `params/` prefix,
  blocks stacked by `nn.scan` (`Transformer/encoderblock/...`, leading axis = layer) and big_vision's
  position table without a class-token row (its class token gets no position embedding: our row 0 is 0).
- Hugging Face `ViTModel` / `ViTForImageClassification` directories (config.json + *.safetensors).
Classification heads (`head`, `pre_logits`, `classifier`) and HF's pooler are ignored.

The name map is data: `_TOP` and `_BLOCK` give, for each of our modules, its HF module and its .npz
module names (first preferred), `_CONVERT` how each kind of module's tensors are laid out in ours.
`models.convert.to_params` (shared with the BERT importer) applies the map, checks every tensor against
`jax.eval_shape(model.init)` and reports all problems in one ValueError.

Position embeddings are resampled when the target grid (image_size / patch_size) differs from the
checkpoint's, each source by its own code's rule (`resample` overrides):
- "bilinear" (.npz default): `scipy.ndimage.zoom(grid, order=1)` as big_vision's `resample_posemb` and
  vision_transformer's `interpolate_posembed`: linear, corner pixels aligned.
- "bicubic" (HF default): `torch.nn.functional.interpolate(mode="bicubic", align_corners=False)` as HF's
  `interpolate_pos_encoding` and timm's `resample_abs_pos_embed` (cubic a = -0.75, half-pixel centres,
  edges clamped). timm antialiases when the grid shrinks; this does not, as HF.
The class-token row is never resampled.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from anticipax import paths
from anticipax.models import convert
from anticipax.models.hf_import import resolve_model_dir
from anticipax.models.vit import ViT, ViTConfig

RESAMPLE_METHODS = ("bilinear", "bicubic")
_IGNORED = {  # checkpoint tensors deliberately not loaded
    "npz": (r"^head/", r"^pre_logits/"),
    "hf": (r"^pooler\.", r"^classifier\.", r"^embeddings\.mask_token$"),
}
_PREFIXES = {"npz": ("opt/target/", "params/"), "hf": ("vit.",)}
_SCANNED = re.compile(r"^Transformer/encoderblock/(.*)$")

_TOP = {  # our module -> (kind, HF module, .npz modules)
    "embedding": ("patch", "embeddings.patch_embeddings.projection", ["embedding"]),
    "cls": ("cls", "embeddings.cls_token", ["cls"]),
    "pos_embedding": ("posemb", "embeddings.position_embeddings",
                      ["Transformer/posembed_input/pos_embedding", "Transformer/pos_embedding", "pos_embedding"]),
    "encoder_norm": ("norm", "layernorm", ["Transformer/encoder_norm"]),
}
_MHA = ["MultiHeadDotProductAttention_1/", "MultiHeadDotProductAttention_0/"]
_MLP = ["MlpBlock_3/", "MlpBlock_0/"]
_BLOCK = {  # our module under encoderblock_{i}/ -> (kind, HF module under encoder.layer.{i}., .npz modules)
    "ln_1": ("norm", "layernorm_before", ["LayerNorm_0"]),
    "attn/query": ("qkv", "attention.attention.query", [m + "query" for m in _MHA]),
    "attn/key": ("qkv", "attention.attention.key", [m + "key" for m in _MHA]),
    "attn/value": ("qkv", "attention.attention.value", [m + "value" for m in _MHA]),
    "attn/out": ("out", "attention.output.dense", [m + "out" for m in _MHA]),
    "ln_2": ("norm", "layernorm_after", ["LayerNorm_2", "LayerNorm_1"]),
    "mlp/fc": ("linear", "intermediate.dense", [m + "Dense_0" for m in _MLP]),
    "mlp/proj": ("linear", "output.dense", [m + "Dense_1" for m in _MLP]),
}


@dataclasses.dataclass(frozen=True)
class _Target:
  """What conversions need to know about the model being loaded."""

  config: ViTConfig
  resample: str


def _unbatch(x: np.ndarray, ndim: int) -> np.ndarray:
  """Drops leading unit axes down to `ndim` ([1, 1, D] -> [D]); other shapes are left to be reported."""
  while x.ndim > ndim and x.shape[0] == 1:
    x = x[0]
  return x


def _posemb(x: np.ndarray, t: _Target) -> np.ndarray:
  """[1, (1 +) n * n, D] -> [1 + N, D] on the target grid; a table without a class-token row gets a zero row."""
  x = _unbatch(x, 2)
  if x.ndim != 2:
    return x
  side = math.isqrt(x.shape[0])
  if side * side == x.shape[0]:  # big_vision adds positions before prepending the class token
    x = np.concatenate([np.zeros_like(x[:1]), x])
  elif math.isqrt(x.shape[0] - 1) ** 2 != x.shape[0] - 1:
    return x  # not a square grid: reported as mis-shaped
  return resample_pos_embedding(x, t.config.grid, method=t.resample)


def _hf_patch(w: np.ndarray, t: _Target) -> np.ndarray:
  """Conv weight [D, C, p, p] -> [p * p * C, D], the order `vit.patchify` flattens patches in."""
  return w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]) if w.ndim == 4 else w


def _npz_patch(k: np.ndarray, t: _Target) -> np.ndarray:
  """Conv kernel [p, p, C, D] -> [p * p * C, D]."""
  return k.reshape(-1, k.shape[-1]) if k.ndim == 4 else k


def _same(x, t):
  return x


# kind -> {our leaf: {format: (tensor suffix, conversion(tensor, target))}}; leaf "" is the module itself.
_CONVERT: dict[str, dict[str, dict[str, tuple[str, Callable[[np.ndarray, _Target], np.ndarray]]]]] = {
    "patch": {"kernel": {"hf": ("weight", _hf_patch), "npz": ("kernel", _npz_patch)},
              "bias": {"hf": ("bias", _same), "npz": ("bias", _same)}},
    "cls": {"": {"hf": ("", lambda x, t: _unbatch(x, 1)), "npz": ("", lambda x, t: _unbatch(x, 1))}},
    "posemb": {"": {"hf": ("", _posemb), "npz": ("", _posemb)}},
    "norm": {"scale": {"hf": ("weight", _same), "npz": ("scale", _same)},
             "bias": {"hf": ("bias", _same), "npz": ("bias", _same)}},
    "linear": {"kernel": {"hf": ("weight", lambda w, t: w.T), "npz": ("kernel", _same)},
               "bias": {"hf": ("bias", _same), "npz": ("bias", _same)}},
    "qkv": {"kernel": {"hf": ("weight", lambda w, t: convert.split_heads(w.T, -1, t.config.num_heads)),
                       "npz": ("kernel", _same)},
            "bias": {"hf": ("bias", lambda b, t: convert.split_heads(b, 0, t.config.num_heads)),
                     "npz": ("bias", _same)}},
    "out": {"kernel": {"hf": ("weight", lambda w, t: convert.split_heads(w.T, 0, t.config.num_heads)),
                       "npz": ("kernel", _same)},
            "bias": {"hf": ("bias", _same), "npz": ("bias", _same)}},
}


def _interpolation_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
  """[n_out, n_in] weights of 1-D resampling; rows sum to 1, and n_in == n_out gives the identity."""
  i = np.arange(n_out, dtype=np.float64)
  m = np.zeros((n_out, n_in))
  rows = np.arange(n_out)
  if method == "bicubic":  # torch's upsample_bicubic2d: half-pixel centres, Keys cubic a = -0.75
    src = (i + 0.5) * (n_in / n_out) - 0.5
    x0 = np.floor(src)
    t = src - x0
    a = -0.75

    def near(x):  # |x| <= 1
      return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
      return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    for offset, w in zip((-1, 0, 1, 2), (far(t + 1), near(t), near(1 - t), far(2 - t))):
      np.add.at(m, (rows, np.clip(x0 + offset, 0, n_in - 1).astype(int)), w)
  elif method == "bilinear":  # scipy.ndimage.zoom(order=1): the first and last samples sit on the corners
    src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(1)
    x0 = np.clip(np.floor(src), 0, n_in - 1)
    t = src - x0
    np.add.at(m, (rows, x0.astype(int)), 1 - t)
    np.add.at(m, (rows, np.minimum(x0 + 1, n_in - 1).astype(int)), t)
  else:
    raise ValueError(f"unknown resample method {method!r}; known: {RESAMPLE_METHODS}")
  return m


def resample_pos_embedding(posemb: np.ndarray, grid: tuple[int, int], *, method: str = "bicubic",
                           old_grid: tuple[int, int] | None = None, num_prefix_tokens: int = 1) -> np.ndarray:
  """Resamples a position table to another patch grid ("high-res fine-tuning"); prefix rows are kept.

  Args:
    posemb: [num_prefix_tokens + h * w, D]: prefix-token rows (the class token's), then the grid row-major.
    grid: the target (height, width) in patches.
    method: "bicubic" (torch / HF / timm) or "bilinear" (big_vision / vision_transformer); see the module doc.
    old_grid: the table's (height, width); None means square.
    num_prefix_tokens: leading rows that are not on the grid.

  Returns:
    [num_prefix_tokens + grid[0] * grid[1], D], same dtype.
  """
  prefix, table = posemb[:num_prefix_tokens], posemb[num_prefix_tokens:]
  if old_grid is None:
    side = math.isqrt(table.shape[0])
    if side * side != table.shape[0]:
      raise ValueError(f"{table.shape[0]} position embeddings are not a square grid; pass old_grid")
    old_grid = (side, side)
  if old_grid[0] * old_grid[1] != table.shape[0]:
    raise ValueError(f"old_grid {old_grid} does not hold {table.shape[0]} position embeddings")
  rows = _interpolation_matrix(old_grid[0], grid[0], method)
  cols = _interpolation_matrix(old_grid[1], grid[1], method)
  table = table.reshape(*old_grid, -1).astype(np.float64)
  table = np.einsum("ah,hwd,bw->abd", rows, table, cols).reshape(grid[0] * grid[1], -1)
  return np.concatenate([prefix, table.astype(posemb.dtype)])


def expected_shapes(config: ViTConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Param path -> shape of `ViT(config)`, from an abstract init (no FLOPs, no memory)."""
  return convert.abstract_shapes(ViT(config), jnp.zeros((1, *config.image_size, config.num_channels), config.dtype))


def _name_map(config: ViTConfig, fmt: str) -> dict[tuple[str, ...], tuple[list[str], Callable]]:
  """Our param path -> (checkpoint tensor names, first preferred; conversion), for every param."""
  modules = [((ours,), kind, [hf] if fmt == "hf" else npz) for ours, (kind, hf, npz) in _TOP.items()]
  for i in range(config.num_layers):
    for ours, (kind, hf, npz) in _BLOCK.items():
      names = [f"encoder.layer.{i}.{hf}"] if fmt == "hf" else [f"Transformer/encoderblock_{i}/{m}" for m in npz]
      modules.append((("encoderblock_" + str(i), *ours.split("/")), kind, names))
  sep = "." if fmt == "hf" else "/"
  out = {}
  for path, kind, names in modules:
    for leaf, formats in _CONVERT[kind].items():
      suffix, fn = formats[fmt]
      out[(*path, leaf) if leaf else path] = ([f"{n}{sep}{suffix}" if suffix else n for n in names], fn)
  return out


def _normalize(tensors: dict[str, Any], fmt: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Strips wrapper prefixes and unstacks scanned blocks; returns (tensors, our name -> name in the file)."""
  out, original = {}, {}
  for name, value in tensors.items():
    short = name
    for prefix in _PREFIXES[fmt]:
      if short.startswith(prefix):
        short = short[len(prefix):]
        break
    scanned = _SCANNED.match(short) if fmt == "npz" else None
    if scanned:  # nn.scan over blocks: the leading axis is the layer
      for i, layer in enumerate(np.asarray(value)):
        key = f"Transformer/encoderblock_{i}/{scanned.group(1)}"
        out[key], original[key] = layer, f"{name}[{i}]"
    else:
      out[short], original[short] = np.asarray(value), name
  return out, original


def convert_checkpoint(tensors: dict[str, Any], config: ViTConfig, fmt: str, *,
                       resample: str | None = None) -> dict[str, Any]:
  """Maps checkpoint tensors (numpy) onto the param tree of `ViT(config)`.

  Args:
    tensors: tensor name -> array: flattened .npz names (fmt "npz") or an HF state dict (fmt "hf").
    config: the target architecture; its grid decides how position embeddings are resampled.
    fmt: "npz" or "hf".
    resample: "bilinear" or "bicubic"; None uses the source's own rule (npz: bilinear, HF: bicubic).

  Returns:
    The nested param dict (the contents of the "params" collection), numpy arrays.

  Raises:
    ValueError: listing every missing, unexpected or mis-shaped tensor.
  """
  if fmt not in _PREFIXES:
    raise ValueError(f"unknown checkpoint format {fmt!r}; known: {sorted(_PREFIXES)}")
  resample = resample or ("bilinear" if fmt == "npz" else "bicubic")
  if resample not in RESAMPLE_METHODS:
    raise ValueError(f"unknown resample method {resample!r}; known: {RESAMPLE_METHODS}")
  tensors, original = _normalize(tensors, fmt)
  # An unused alias of another layout (e.g. both attention namings present) is reported as unexpected.
  return convert.to_params(tensors, _name_map(config, fmt), expected_shapes(config), what=f"{fmt} ViT checkpoint",
                           context=_Target(config, resample), original=original, ignored=_IGNORED[fmt])


def npz_config(tensors: dict[str, Any], **overrides) -> ViTConfig:
  """The architecture of an .npz checkpoint, read off its tensor shapes (image size: the stored grid).

  Activation and LayerNorm epsilon are not stored; `ViTConfig`'s defaults are those of the JAX code.

  Args:
    tensors: the .npz contents.
    **overrides: `ViTConfig` fields to set (e.g. image_size to load at another resolution).

  Raises:
    ValueError: a tensor the architecture is read from is absent.
  """
  t, _ = _normalize(tensors, "npz")

  def first(names):
    return next((t[n] for n in names if n in t), None)

  kernel = t.get("embedding/kernel")
  pos = first(_TOP["pos_embedding"][2])
  query = first([f"Transformer/encoderblock_0/{m}query/kernel" for m in _MHA])
  fc = first([f"Transformer/encoderblock_0/{m}Dense_0/kernel" for m in _MLP])
  layers = {int(m.group(1)) for n in t if (m := re.match(r"Transformer/encoderblock_(\d+)/", n))}
  found = {"embedding/kernel [p, p, C, D]": (kernel, 4), "pos_embedding [1, L, D]": (pos, 3),
           "encoderblock_0 query kernel [D, heads, head_dim]": (query, 3),
           "encoderblock_0 MLP Dense_0 kernel [D, mlp]": (fc, 2)}
  if missing := [n for n, (v, ndim) in found.items() if v is None or v.ndim != ndim]:
    raise ValueError(f"cannot read the ViT architecture from the .npz: no {'; no '.join(missing)}")
  rows = _unbatch(pos, 2).shape[0]
  side = math.isqrt(rows) if math.isqrt(rows) ** 2 == rows else math.isqrt(rows - 1)
  kw = dict(image_size=side * kernel.shape[0], patch_size=kernel.shape[0], num_channels=kernel.shape[2],
            hidden_size=kernel.shape[3], num_layers=len(layers), num_heads=query.shape[1], mlp_dim=fc.shape[1])
  return ViTConfig(**{**kw, **overrides})


def load_vit(path: str, config: ViTConfig | None = None, *, resample: str | None = None,
             param_dtype: Any = jnp.float32, **overrides) -> tuple[ViTConfig, dict[str, Any]]:
  """Loads a pretrained ViT: an .npz file, or an HF model directory (or Hub id).

  Args:
    path: `*.npz` (vision_transformer / big_vision), or a directory with config.json + *.safetensors.
    config: the architecture to load into (e.g. `vit_config("B/16", image_size=...)`); None reads it from
      the checkpoint (HF: config.json; .npz: tensor shapes, JAX activation and epsilon).
    resample: position-embedding resampling when the grids differ: None uses the source's rule (npz:
      "bilinear", HF: "bicubic"); see the module doc.
    param_dtype: dtype of the returned parameters.
    **overrides: `ViTConfig` fields replaced in the config (e.g. image_size=256, remat=True, dtype=...).

  Returns:
    `(config, params)`; use as `ViT(config).apply({"params": params}, images)`, or under `vit` in the
    params of `ViTBackbone(config)`.

  Raises:
    FileNotFoundError: no such file, or a directory without config.json / *.safetensors.
    ValueError: the checkpoint's tensors do not match the model (all problems listed).
  """
  path = os.fspath(path) if paths.is_remote(path) else os.path.expanduser(os.fspath(path))
  if path.endswith(".npz"):  # local or gs://
    if not paths.path(path).is_file():
      raise FileNotFoundError(path)
    with paths.path(path).open("rb") as f, np.load(f) as npz:
      tensors = dict(npz)
    fmt = "npz"
    if config is None:
      config = npz_config(tensors)
  else:
    hf_config, tensors = convert.read_hf_dir(resolve_model_dir(path))
    fmt = "hf"
    if config is None:
      config = ViTConfig.from_hf_dict(hf_config)
  config = dataclasses.replace(config, **overrides) if overrides else config
  try:
    params = convert_checkpoint(tensors, config, fmt, resample=resample)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  return config, jax.tree.map(lambda x: jnp.asarray(x, param_dtype), params)
