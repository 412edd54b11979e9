"""ViT backbone against HF PyTorch goldens (made by tools/make_vit_golden.py), and both importers."""

import collections
import dataclasses
import functools
import math
import os
import re
import shutil

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from safetensors.numpy import load_file, save_file

from anticipax.models import vit_import
from anticipax.models.vit import ViT, ViTBackbone, ViTConfig, vit_config

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "tiny_vit")
CASES = ("native", "up", "down")  # 32x32 as stored, 48x40 and 24x24 with resampled position embeddings
TOL = 1e-4  # max abs diff vs PyTorch float32; measures ~1e-6


@pytest.fixture(scope="module")
def golden():
  with np.load(os.path.join(GOLDEN, "golden.npz")) as f:
    return dict(f)


@pytest.fixture(scope="module")
def tiny():
  return vit_import.load_vit(GOLDEN)


@functools.cache
def _jitted_apply(config):
  return jax.jit(ViT(config).apply)


def _apply(config, params, images):
  return _jitted_apply(config)({"params": params}, images)


def _max_diff(a, b):
  return float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())


@pytest.mark.parametrize("case", CASES)
def test_matches_pytorch(golden, case):
  pixels, expected = golden[f"{case}_pixels"], golden[f"{case}_last_hidden_state"]
  config, params = vit_import.load_vit(GOLDEN, image_size=pixels.shape[1:3])
  cls, aux = _apply(config, params, pixels)
  assert cls.shape == (2, 64) and aux["tokens"].shape == expected.shape
  assert _max_diff(aux["tokens"], expected) <= TOL
  assert _max_diff(cls, expected[:, 0]) <= TOL
  if case != "native":  # HF's bicubic interpolate_pos_encoding, applied once at load time here
    assert _max_diff(params["pos_embedding"], golden[f"{case}_pos_embedding"]) <= 1e-6


def test_config_parsed_and_tolerance_tells_gelu_forms_apart(golden, tiny):
  config, params = tiny
  assert config == vit_config("tiny")
  cls, _ = _apply(dataclasses.replace(config, activation="gelu_pytorch_tanh"), params, golden["native_pixels"])
  assert _max_diff(cls, golden["native_last_hidden_state"][:, 0]) > 3 * TOL  # measures ~5e-4


def _vit_jax_npz(params, config: ViTConfig) -> dict[str, np.ndarray]:
  """Our params in google-research/vision_transformer's names (as timm's `_load_weights` reads them)."""
  p, c = jax.tree.map(np.asarray, params), config
  out = {"embedding/kernel": p["embedding"]["kernel"].reshape(c.patch_size, c.patch_size, c.num_channels, -1),
         "embedding/bias": p["embedding"]["bias"], "cls": p["cls"][None, None],
         "Transformer/posembed_input/pos_embedding": p["pos_embedding"][None],
         "Transformer/encoder_norm/scale": p["encoder_norm"]["scale"],
         "Transformer/encoder_norm/bias": p["encoder_norm"]["bias"],
         # Classifier tensors, ignored on import.
         "pre_logits/kernel": np.ones((c.hidden_size, 8), np.float32), "pre_logits/bias": np.ones(8, np.float32),
         "head/kernel": np.ones((8, 5), np.float32), "head/bias": np.ones(5, np.float32)}
  theirs = {"ln_1": "LayerNorm_0", "ln_2": "LayerNorm_2", "attn": "MultiHeadDotProductAttention_1",
            "mlp/fc": "MlpBlock_3/Dense_0", "mlp/proj": "MlpBlock_3/Dense_1"}
  for i in range(c.num_layers):
    for path, value in traverse_util.flatten_dict(p[f"encoderblock_{i}"], sep="/").items():
      for ours, name in theirs.items():
        path = re.sub(f"^{ours}/", f"{name}/", path)
      out[f"Transformer/encoderblock_{i}/{path}"] = value
  return out


def _big_vision_npz(vit_jax: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The same in big_vision's layout: `params/` prefix, `_0` names, blocks stacked by nn.scan, and positions
  added before the class token is prepended (so the class token absorbs its position row)."""
  vit_jax = dict(vit_jax)
  pe = vit_jax.pop("Transformer/posembed_input/pos_embedding")
  out = {"params/cls": vit_jax.pop("cls") + pe[:, :1], "params/pos_embedding": pe[:, 1:]}
  stacked = collections.defaultdict(dict)
  for name, value in vit_jax.items():
    if m := re.match(r"Transformer/encoderblock_(\d+)/(.*)", name):
      rest = m.group(2)
      for old, new in (("MultiHeadDotProductAttention_1", "MultiHeadDotProductAttention_0"),
                       ("LayerNorm_2", "LayerNorm_1"), ("MlpBlock_3", "MlpBlock_0")):
        rest = rest.replace(old, new)
      stacked[rest][int(m.group(1))] = value
    else:
      out["params/" + name] = value
  for rest, layers in stacked.items():
    out[f"params/Transformer/encoderblock/{rest}"] = np.stack([layers[i] for i in sorted(layers)])
  return out


@pytest.mark.parametrize("layout", ["vision_transformer", "big_vision"])
def test_npz_round_trip(tmp_path, golden, tiny, layout):
  config, params = tiny
  tensors = _vit_jax_npz(params, config)
  if layout == "big_vision":
    tensors = _big_vision_npz(tensors)
    assert "params/Transformer/encoderblock/LayerNorm_1/scale" in tensors
  path = str(tmp_path / "ViT-tiny.npz")
  np.savez(path, **tensors)
  # The architecture is read off the shapes; activation and epsilon (not stored) default to the JAX code's.
  inferred, _ = vit_import.load_vit(path)
  assert (inferred.image_size, inferred.patch_size, inferred.hidden_size, inferred.num_layers,
          inferred.num_heads, inferred.mlp_dim) == ((32, 32), 8, 64, 2, 4, 128)
  assert (inferred.activation, inferred.layer_norm_eps) == ("gelu_pytorch_tanh", 1e-6)

  loaded_config, loaded = vit_import.load_vit(path, vit_config("tiny"))
  cls, aux = _apply(loaded_config, loaded, golden["native_pixels"])
  assert _max_diff(aux["tokens"], golden["native_last_hidden_state"]) <= TOL
  if layout == "vision_transformer":
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
  else:
    np.testing.assert_array_equal(loaded["pos_embedding"][0], 0.0)  # the class token had no position row
    np.testing.assert_allclose(loaded["cls"], params["cls"] + params["pos_embedding"][0], rtol=1e-6)


def test_grid_2x2_checkpoint_loads_into_4x4_model(tmp_path, tiny):
  small = vit_config("tiny", image_size=16)  # a 2x2 grid
  pos = np.random.default_rng(1).normal(size=(1 + 4, 64)).astype(np.float32)
  params = {**jax.tree.map(np.asarray, tiny[1]), "pos_embedding": pos}  # only positions depend on the grid
  path = str(tmp_path / "grid2.npz")
  np.savez(path, **_vit_jax_npz(params, small))
  old = np.asarray(params["pos_embedding"])

  config, loaded = vit_import.load_vit(path, vit_config("tiny"))  # 32 pixels: a 4x4 grid
  pos = np.asarray(loaded["pos_embedding"])
  assert config.grid == (4, 4) and pos.shape == (17, 64)
  np.testing.assert_array_equal(pos[0], old[0])  # the class token's row is not resampled
  # big_vision / vision_transformer resample with scipy.ndimage.zoom(order=1).
  zoomed = scipy.ndimage.zoom(old[1:].reshape(2, 2, 64), (2, 2, 1), order=1)
  np.testing.assert_allclose(pos[1:], zoomed.reshape(16, 64), atol=1e-6)
  np.testing.assert_array_equal(pos[[1, 4, 13, 16]], old[1:])  # corners aligned: the old grid's corners stay
  _, bicubic = vit_import.load_vit(path, vit_config("tiny"), resample="bicubic")
  assert bicubic["pos_embedding"].shape == (17, 64) and _max_diff(bicubic["pos_embedding"], pos) > 1e-3
  _, same = vit_import.load_vit(path, small)  # no resampling when the grids agree
  jax.tree.map(np.testing.assert_array_equal, same, params)


@pytest.mark.parametrize("method", vit_import.RESAMPLE_METHODS)
def test_resampling_identity_and_constants(method):
  rng = np.random.default_rng(0)
  pos = rng.normal(size=(1 + 16, 8)).astype(np.float32)
  np.testing.assert_array_equal(vit_import.resample_pos_embedding(pos, (4, 4), method=method), pos)
  constant = np.concatenate([pos[:1], np.tile(rng.normal(size=(1, 8)), (16, 1))]).astype(np.float32)
  for grid in ((6, 5), (3, 3), (7, 7), (1, 2)):
    out = vit_import.resample_pos_embedding(constant, grid, method=method)
    assert out.shape == (1 + grid[0] * grid[1], 8)
    np.testing.assert_array_equal(out[0], constant[0])
    np.testing.assert_allclose(out[1:], np.broadcast_to(constant[1], out[1:].shape), rtol=1e-6, atol=1e-6)
  if method == "bilinear":
    zoomed = scipy.ndimage.zoom(pos[1:].reshape(4, 4, 8), (6 / 4, 5 / 4, 1), order=1)
    np.testing.assert_allclose(vit_import.resample_pos_embedding(pos, (6, 5), method=method)[1:],
                               zoomed.reshape(30, 8), atol=1e-6)


def _broken_copy(tmp_path):
  """tiny_vit with one tensor removed, one renamed, two mis-shaped and ignorable head tensors added."""
  dst = tmp_path / "broken"
  dst.mkdir()
  shutil.copy(os.path.join(GOLDEN, "config.json"), dst / "config.json")
  t = load_file(os.path.join(GOLDEN, "model.safetensors"))
  del t["encoder.layer.1.output.dense.bias"]
  t["encoder.layer.0.attention.attention.qeury.weight"] = t.pop("encoder.layer.0.attention.attention.query.weight")
  t["encoder.layer.1.intermediate.dense.weight"] = np.zeros((120, 64), np.float32)
  t["embeddings.position_embeddings"] = np.zeros((1, 12, 64), np.float32)  # 11 patches: not a square grid
  t["classifier.weight"], t["classifier.bias"] = np.zeros((5, 64), np.float32), np.zeros(5, np.float32)
  save_file(t, str(dst / "model.safetensors"))
  return str(dst)


def test_importer_lists_every_problem(tmp_path):
  with pytest.raises(ValueError) as e:
    vit_import.load_vit(_broken_copy(tmp_path))
  msg = str(e.value)
  assert "(5 problems)" in msg
  assert "missing: encoder.layer.1.output.dense.bias -> encoderblock_1/mlp/proj/bias: expected (64,)" in msg
  assert "missing: encoder.layer.0.attention.attention.query.weight -> encoderblock_0/attn/query/kernel" in msg
  assert "unexpected: encoder.layer.0.attention.attention.qeury.weight (64, 64)" in msg
  assert ("mis-shaped: encoder.layer.1.intermediate.dense.weight -> encoderblock_1/mlp/fc/kernel: "
          "expected (64, 128) vs got (64, 120)") in msg
  assert "mis-shaped: embeddings.position_embeddings -> pos_embedding: expected (17, 64) vs got (12, 64)" in msg
  assert "pooler" not in msg and "classifier" not in msg  # documented ignores


def test_npz_importer_names_tensors_as_stored(tmp_path, tiny):
  config, params = tiny
  tensors = _big_vision_npz(_vit_jax_npz(params, config))
  del tensors["params/Transformer/encoder_norm/bias"], tensors["params/embedding/kernel"]
  tensors["params/Transformer/encoderblock/MlpBlock_0/Dense_1/kernel"] = np.zeros((2, 128, 60), np.float32)
  path = str(tmp_path / "broken.npz")
  np.savez(path, **tensors)
  with pytest.raises(ValueError) as e:
    vit_import.load_vit(path, config)
  msg = str(e.value)
  assert path in msg and "(4 problems)" in msg
  assert "missing: Transformer/encoder_norm/bias -> encoder_norm/bias: expected (64,)" in msg
  assert "missing: embedding/kernel -> embedding/kernel: expected (192, 64)" in msg
  for i in range(2):
    assert (f"mis-shaped: params/Transformer/encoderblock/MlpBlock_0/Dense_1/kernel[{i}] -> "
            f"encoderblock_{i}/mlp/proj/kernel: expected (128, 64) vs got (128, 60)") in msg
  with pytest.raises(ValueError, match="cannot read the ViT architecture from the .npz: no embedding/kernel"):
    vit_import.load_vit(path)  # without a config, the shapes must say what the model is


def test_backbone_folds_frames_into_the_batch(golden, tiny):
  config, params = tiny
  rng = np.random.default_rng(0)
  frames = rng.normal(size=(2, 3, 32, 32, 3)).astype(np.float32)
  frames[0, :2] = golden["native_pixels"]
  feats = jax.jit(ViTBackbone(config).apply)({"params": {"vit": params}}, frames)
  assert feats.shape == (2, 3, 64)
  per_frame = np.stack([_apply(config, params, frames[:, t])[0] for t in range(3)], axis=1)
  np.testing.assert_allclose(feats, per_frame, atol=1e-5)
  assert _max_diff(feats[0, :2], golden["native_last_hidden_state"][:, 0]) <= TOL


# XLA's own optimisation level (tests/conftest.py compiles everything else with cheap LLVM passes): that
# remat leaves the forward pass bit-identical holds for the machine code a run compiles.
FULL_OPTIMIZATION = {"xla_backend_optimization_level": 3, "xla_llvm_disable_expensive_passes": False}


@pytest.mark.slow  # four programs at XLA's full optimisation
def test_remat_and_bf16(golden, tiny):
  config, params = tiny
  pixels = golden["native_pixels"]

  def value_and_grad(c):
    return jax.jit(jax.value_and_grad(lambda p: jnp.sum(ViT(c).apply({"params": p}, pixels)[0] ** 2)),
                   compiler_options=FULL_OPTIMIZATION)(params)

  def apply(c):
    return jax.jit(ViT(c).apply, compiler_options=FULL_OPTIMIZATION)({"params": params}, pixels)

  value, grads = value_and_grad(config)
  remat_value, remat_grads = value_and_grad(vit_config("tiny", remat=True))
  assert remat_value == value
  # The backward pass recomputes the blocks; XLA may fuse the recomputation differently (~1e-6).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), remat_grads, grads)
  remat = vit_config("tiny", remat=True, remat_policy="dots_with_no_batch_dims_saveable")
  np.testing.assert_array_equal(apply(remat)[0], apply(config)[0])
  with pytest.raises(ValueError, match="unknown remat_policy 'everything'"):
    vit_config("tiny", remat=True, remat_policy="everything")

  bf16 = vit_config("tiny", dtype=jnp.bfloat16)
  abstract = jax.eval_shape(lambda: nn.unbox(ViT(bf16).init(jax.random.key(0), pixels)["params"]))
  assert {x.dtype for x in jax.tree.leaves(abstract)} == {jnp.dtype(jnp.float32)}  # float32 params
  cls, aux = _apply(bf16, params, pixels)
  assert cls.dtype == jnp.bfloat16 and aux["tokens"].dtype == jnp.bfloat16
  assert _max_diff(cls, golden["native_last_hidden_state"][:, 0]) < 0.15  # LayerNorm outputs of scale ~1


def test_every_param_has_logical_names():
  config = vit_config("tiny")
  abstract = jax.eval_shape(lambda: ViT(config).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  flat = traverse_util.flatten_dict(abstract["params"])
  for path, leaf in flat.items():
    assert isinstance(leaf, nn.Partitioned), path
    assert len(leaf.names) == leaf.value.ndim and all(isinstance(n, str) for n in leaf.names), (path, leaf.names)
  names = {"/".join(p): leaf.names for p, leaf in flat.items()}
  assert names["embedding/kernel"] == ("patch", "embed")
  assert names["cls"] == ("embed",) and names["pos_embedding"] == ("length", "embed")
  assert names["encoderblock_0/attn/query/kernel"] == ("embed", "heads", "kv")
  assert names["encoderblock_1/mlp/fc/kernel"] == ("embed", "mlp")


def test_shards_under_project_rules(tiny):
  """The logical names map onto the (data, fsdp, tensor) mesh with the configs' rules; `patch` replicates."""
  from anticipax import sharding  # pylint: disable=g-import-not-at-top
  from configs import common  # pylint: disable=g-import-not-at-top
  rules = sharding.rules_from_config(common.base_config().logical_axis_rules)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  config, params = tiny
  model, frames = ViTBackbone(config), jnp.zeros((4, 2, 32, 32, 3))
  with mesh, nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), frames))
    shardings = nn.unbox(sharding.logical_shardings(abstract, mesh, rules))["params"]["vit"]
    placed = jax.device_put(params, shardings)
    feats = jax.jit(model.apply)({"params": {"vit": placed}}, frames)
  P = jax.sharding.PartitionSpec  # pylint: disable=invalid-name
  assert placed["embedding"]["kernel"].sharding.spec == P(None, "fsdp")
  assert placed["encoderblock_0"]["attn"]["query"]["kernel"].sharding.spec == P("fsdp", "tensor", None)
  assert feats.shape == (4, 2, 64)


def test_named_configs():
  b16 = vit_config("B/16")
  assert (b16.hidden_size, b16.num_layers, b16.num_heads, b16.mlp_dim, b16.grid) == (768, 12, 12, 3072, (14, 14))
  shapes = vit_import.expected_shapes(b16)
  # patch 16*16*3*768 + 768; cls 768; positions 197*768; 12 blocks of 7,087,872; final LayerNorm 1,536.
  assert sum(math.prod(s) for s in shapes.values()) == 85_798_656
  assert vit_config("S/32", image_size=(256, 320)).grid == (8, 10)
  with pytest.raises(ValueError, match="unknown ViT 'B16'"):
    vit_config("B16")
  with pytest.raises(ValueError, match="divisible by patch_size"):
    vit_config("B/16", image_size=200)
  with pytest.raises(ValueError, match="not a ViT"):
    ViTConfig.from_hf_dict({"model_type": "deit", "hidden_size": 64})
  with pytest.raises(ValueError, match=r"expected images \[B, 32, 32, 3\]"):
    ViT(vit_config("tiny")).init(jax.random.key(0), jnp.zeros((1, 48, 48, 3)))
