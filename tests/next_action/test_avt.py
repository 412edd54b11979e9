"""Tests for anticipax.next_action.avt: published sizes, output contract, causality, dropout, axis names."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from anticipax.next_action.avt import build_avt
from tests.axis_names import assert_every_parameter_has_ruled_axis_names
from configs import egtea
from configs import ek55

TSN_RGB_DIM = 1024  # RULSTM's TSN rgb features, the input of AVT-h in the paper's feature experiments


def _abstract_params(model, num_frames, in_dim):
  """Parameter shapes via jax.eval_shape: nothing is allocated, even for the 600M-parameter EK55 head."""
  frames = jax.ShapeDtypeStruct((1, num_frames, in_dim), jnp.float32)
  return jax.eval_shape(lambda r, x: model.init(r, x, train=False), jax.random.key(0), frames)["params"]


def _count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def _expected_counts(in_dim, dim, inter, layers, max_len, classes):
  """(AVT-h, whole model) parameter counts, by formula; dim None = identity backbone (D = in_dim)."""
  backbone = 0 if dim is None else in_dim * dim + dim  # Dense(in -> D) + bias
  dim = in_dim if dim is None else dim
  encoder = dim * inter                 # D -> inter, no bias
  wpe = max_len * inter                 # learned positions
  # GPT-2 block at width d: ln_1, ln_2 (2 x 2d); q, k, v, out (4 x (d^2 + d)); fc (d x 4d + 4d);
  # proj (4d x d + d)  ->  12 d^2 + 13 d.
  block = 12 * inter**2 + 13 * inter
  ln_f = 2 * inter
  decoder = inter * dim                 # inter -> D, no bias
  classifier = dim * classes + classes  # Dense(D -> C) + bias
  head = encoder + wpe + layers * block + ln_f + decoder
  return head, backbone + head + classifier


@pytest.mark.parametrize("config_module, head_count, total_count", [
    # EGTEA: TSN features straight in (identity backbone, D = 1024), inter=2048, 2 layers, max_len 64,
    #   106 classes. encoder 2,097,152; wpe 131,072; block 50,358,272 (x2 = 100,716,544); ln_f 4,096;
    #   decoder 2,097,152; classifier 108,650 -> AVT-h 105,046,016; total 105,154,666.
    (egtea, 105_046_016, 105_154_666),
    # EK55: as EGTEA but 12 layers (x12 = 604,299,264) and 2513 classes (classifier 2,575,825)
    #   -> AVT-h 608,628,736; total 611,204,561.
    (ek55, 608_628_736, 611_204_561),
])
def test_parameter_counts_of_published_heads(config_module, head_count, total_count):
  cfg, classes = config_module.get_config().model, config_module.NUM_CLASSES
  assert cfg.backbone.kind == "identity"
  params = _abstract_params(build_avt(cfg, num_classes=classes), num_frames=10, in_dim=TSN_RGB_DIM)
  assert "backbone" not in params
  expected_head, expected_total = _expected_counts(
      TSN_RGB_DIM, None, cfg.head.inter_dim, cfg.head.num_layers, cfg.head.max_len, classes)
  assert _count(params["head"]) == expected_head == head_count
  assert _count(params) == expected_total == total_count


# A tiny AVT for the behavioural tests below: one model, one parameter set, applied through two jitted
# functions (eval / train), so the whole file compiles two programs.
B, T, IN_DIM, DIM, CLASSES, VERBS, NOUNS = 2, 6, 12, 16, 5, 3, 7


def _tiny_cfg(dropout=0.5, max_len=8, verb_noun_heads=True):
  return ml_collections.ConfigDict({
      "dtype": "float32",
      "backbone": {"dim": DIM},
      "head": {"inter_dim": 32, "num_layers": 2, "num_heads": 4, "dropout": dropout, "max_len": max_len},
      "dropout": dropout,
      "verb_noun_heads": verb_noun_heads,
  })


def _frames(seed, num_frames=T):
  return jax.random.normal(jax.random.key(seed), (B, num_frames, IN_DIM))


MODEL = build_avt(_tiny_cfg(), num_classes=CLASSES, num_verbs=VERBS, num_nouns=NOUNS)
_apply_eval = jax.jit(lambda params, x: MODEL.apply({"params": params}, x, train=False))
_apply_train = jax.jit(lambda params, x, rng: MODEL.apply({"params": params}, x, train=True,
                                                          rngs={"dropout": rng}))


@pytest.fixture(scope="module")
def params():
  # Random values of the model's own parameter shapes (numpy: no init program to compile); random biases
  # and LayerNorm parameters too, so no term of the computation is trivially zero.
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: rng.normal(0.0, 0.3, s.shape).astype(np.float32),
                      nn.unbox(_abstract_params(MODEL, num_frames=T, in_dim=IN_DIM)))


def test_output_and_aux_shapes(params):
  outputs, aux = _apply_eval(params, _frames(1))
  assert outputs["logits"].shape == (B, CLASSES)
  assert outputs["verb_logits"].shape == (B, VERBS)
  assert outputs["noun_logits"].shape == (B, NOUNS)
  assert aux["past_logits"].shape == (B, T, CLASSES)
  assert aux["pred_features"].shape == (B, T, DIM)
  assert aux["features"].shape == (B, T, DIM)
  # The next-action logits are the classifier's reading of the last position.
  np.testing.assert_array_equal(outputs["logits"], aux["past_logits"][:, -1])


@pytest.mark.parametrize("t", [0, 2, T - 2])
def test_head_is_causal(params, t):
  """Changing frames t+1.. leaves every head output at positions <= t unchanged (eval mode)."""
  frames = _frames(1)
  changed = frames.at[:, t + 1:].set(_frames(2)[:, t + 1:])
  (_, aux), (_, aux2) = _apply_eval(params, frames), _apply_eval(params, changed)
  for key in ("past_logits", "pred_features", "features"):
    np.testing.assert_allclose(aux[key][:, :t + 1], aux2[key][:, :t + 1], atol=1e-6, err_msg=key)
    # The change is visible from t+1 on, so the comparison above is not vacuous.
    assert not np.allclose(aux[key][:, t + 1:], aux2[key][:, t + 1:], atol=1e-3), key


def test_dropout_only_in_training(params):
  frames = _frames(1)
  train_a, _ = _apply_train(params, frames, jax.random.key(1))
  train_b, _ = _apply_train(params, frames, jax.random.key(2))
  train_a2, _ = _apply_train(params, frames, jax.random.key(1))
  eval_a, _ = _apply_eval(params, frames)
  eval_b, _ = _apply_eval(params, frames)
  assert not np.allclose(train_a["logits"], train_b["logits"], atol=1e-4)
  np.testing.assert_array_equal(train_a["logits"], train_a2["logits"])  # same rng, same mask
  np.testing.assert_array_equal(eval_a["logits"], eval_b["logits"])
  assert not np.allclose(train_a["logits"], eval_a["logits"], atol=1e-4)


def test_every_parameter_has_logical_axis_names_with_a_sharding_rule():
  cfg = egtea.get_config()
  model = build_avt(cfg.model, num_classes=egtea.NUM_CLASSES)
  params = _abstract_params(model, num_frames=cfg.data.num_frames, in_dim=TSN_RGB_DIM)
  assert_every_parameter_has_ruled_axis_names(params)


@pytest.mark.parametrize("verb_noun_heads", [True, False])
def test_verb_noun_heads_follow_the_config_switch(verb_noun_heads):
  model = build_avt(_tiny_cfg(verb_noun_heads=verb_noun_heads), num_classes=CLASSES,
                    num_verbs=VERBS, num_nouns=NOUNS)
  variables = jax.eval_shape(lambda r, x: model.init(r, x, train=False), jax.random.key(0), _frames(0))
  outputs, _ = jax.eval_shape(lambda v, x: model.apply(v, x), variables, _frames(0))
  params = variables["params"]
  if verb_noun_heads:
    assert outputs["verb_logits"].shape == (B, VERBS)
    assert outputs["noun_logits"].shape == (B, NOUNS)
    assert params["verb_classifier"]["kernel"].value.shape == (DIM, VERBS)
    assert params["noun_classifier"]["kernel"].value.shape == (DIM, NOUNS)
  else:  # the switch wins over the class counts: no extra heads and no extra parameters
    assert set(outputs) == {"logits"}
    assert "verb_classifier" not in params and "noun_classifier" not in params


def test_too_many_frames_for_max_len_raises():
  model = build_avt(_tiny_cfg(max_len=T), num_classes=CLASSES)
  params = _abstract_params(model, num_frames=T, in_dim=IN_DIM)  # T == max_len is fine
  assert params["head"]["wpe"].value.shape == (T, 32)
  with pytest.raises(ValueError, match="max_len"):
    _abstract_params(model, num_frames=T + 1, in_dim=IN_DIM)
