"""Tests for anticipax.optimizers: schedule values, weight-decay mask, Nesterov SGD, clipping."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from anticipax.next_action.avt import build_avt
from anticipax import optimizers
from configs import egtea
from configs import ek55


def _cfg(**kw):
  return ml_collections.ConfigDict(kw)


def _constant(lr):
  return optimizers.create_schedule(_cfg(peak_lr=lr, warmup_steps=0, decay="constant"), total_steps=100)


# Warmup 10 steps to 1e-3, cosine to 1e-4 (end_factor 0.1) at step 110 = total_steps.
PEAK, END, WARMUP, TOTAL = 1e-3, 1e-4, 10, 110


def _cosine_at(step):
  frac = (step - WARMUP) / (TOTAL - WARMUP)
  return END + (PEAK - END) * 0.5 * (1 + math.cos(math.pi * frac))


@pytest.mark.parametrize("step, expected", [
    (0, 0.0),                          # warmup starts from zero
    (5, PEAK * 5 / 10),                # halfway up the linear ramp
    (WARMUP, PEAK),                    # peak when warmup ends
    (60, (PEAK + END) / 2),            # halfway through the cosine: cos(pi/2) = 0
    (85, _cosine_at(85)),              # 3/4 through: END + (PEAK-END)(1 + cos(3pi/4))/2
    (TOTAL, END),                      # the schedule ends at total_steps, warmup included
    (10 * TOTAL, END),                 # and stays there
])
def test_warmup_cosine_schedule(step, expected):
  schedule = optimizers.create_schedule(
      _cfg(peak_lr=PEAK, warmup_steps=WARMUP, decay="cosine", end_factor=END / PEAK), TOTAL)
  np.testing.assert_allclose(schedule(step), expected, rtol=1e-5, atol=1e-12)


def test_schedule_without_warmup_starts_at_peak():
  schedule = optimizers.create_schedule(_cfg(peak_lr=PEAK, warmup_steps=0, end_factor=0.0), 100)
  np.testing.assert_allclose(schedule(0), PEAK, rtol=1e-6)
  np.testing.assert_allclose(schedule(50), PEAK / 2, rtol=1e-5)
  np.testing.assert_allclose(schedule(100), 0.0, atol=1e-12)


def test_constant_schedule_with_warmup():
  schedule = optimizers.create_schedule(_cfg(peak_lr=PEAK, warmup_steps=WARMUP, decay="constant"), TOTAL)
  for step, expected in [(0, 0.0), (5, PEAK / 2), (WARMUP, PEAK), (10 * TOTAL, PEAK)]:
    np.testing.assert_allclose(schedule(step), expected, rtol=1e-6, atol=1e-12)


def test_egtea_schedule_is_a_cosine_from_the_first_step_to_zero():
  c = egtea.get_config()  # AVT expts/11: no warmup, cosine over the 15 epochs
  schedule = optimizers.create_schedule(c.schedule, c.train.steps)
  np.testing.assert_allclose(schedule(0), 1e-3, rtol=1e-6)
  np.testing.assert_allclose(schedule(c.train.steps // 2), 5e-4, rtol=1e-3)
  np.testing.assert_allclose(schedule(c.train.steps), 0.0, atol=1e-12)


def test_ek55_schedule_warms_up_for_5_epochs():
  c = ek55.get_config()  # AVT expts/08: 5 warmup epochs, then cosine to the 20th
  schedule = optimizers.create_schedule(c.schedule, c.train.steps)
  steps_per_epoch = 23493 // 32
  np.testing.assert_allclose(schedule(0), 0.0, atol=1e-15)
  np.testing.assert_allclose(schedule(5 * steps_per_epoch), 5e-6, rtol=1e-6)
  np.testing.assert_allclose(schedule(c.train.steps), 0.0, atol=1e-15)


# A real (tiny) AVT parameter tree, with random values of the model's own shapes.
_AVT = build_avt(ml_collections.ConfigDict({
    "backbone": {"dim": 8}, "head": {"inter_dim": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
    "dropout": 0.0}), num_classes=5)


def _avt_params():
  abstract = jax.eval_shape(lambda r, x: _AVT.init(r, x)["params"], jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 4, 6), jnp.float32))
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: rng.normal(0.0, 1.0, s.shape).astype(np.float32), nn.unbox(abstract))


def _step_with_zero_gradients(opt_cfg, lr, params):
  tx = optimizers.create_optimizer(opt_cfg, _constant(lr))
  zeros = jax.tree.map(jnp.zeros_like, params)

  @jax.jit
  def step(p):
    updates, _ = tx.update(zeros, tx.init(p), p)
    return optax.apply_updates(p, updates)

  return step(params)


def _leaves_by_path(tree):
  return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _is_attention_qkv_bias(path):
  return "['attn']" in path and path.endswith("['bias']") and "['out']" not in path


LR, WD, MOMENTUM = 0.1, 0.01, 0.9


# With zero gradients the only update is weight decay: AdamW's m = v = 0, so p <- p - lr * wd * p;
# SGD adds wd * p to the gradient before Nesterov momentum, so p <- p - lr * (1 + momentum) * wd * p.
@pytest.mark.parametrize("opt_cfg, shrink", [
    (_cfg(name="adamw", weight_decay=WD), LR * WD),
    (_cfg(name="sgd", momentum=MOMENTUM, weight_decay=WD), LR * (1 + MOMENTUM) * WD),
])
def test_weight_decay_shrinks_matrices_and_skips_biases_and_layernorm(opt_cfg, shrink):
  params = _avt_params()
  before, after = _leaves_by_path(params), _leaves_by_path(_step_with_zero_gradients(opt_cfg, LR, params))
  decayed = [p for p in before if p.endswith(("['kernel']", "['wpe']"))]
  kept = [p for p in before if p.endswith(("['bias']", "['scale']")) and not _is_attention_qkv_bias(p)]
  assert len(decayed) + len(kept) + 3 == len(before)  # + the attention q/k/v biases, tested below
  assert any("ln_" in p for p in kept) and any("['scale']" in p for p in kept)
  for path in decayed:
    np.testing.assert_allclose(before[path] - after[path], shrink * before[path], rtol=1e-3, atol=1e-7,
                               err_msg=path)
  for path in kept:
    np.testing.assert_array_equal(after[path], before[path], err_msg=path)


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_weight_decay_skips_attention_biases(name):
  params = _avt_params()
  before = _leaves_by_path(params)
  after = _leaves_by_path(_step_with_zero_gradients(_cfg(name=name, weight_decay=WD), LR, params))
  qkv = [p for p in before if _is_attention_qkv_bias(p)]
  assert len(qkv) == 3 and all(before[p].ndim == 2 for p in qkv)
  for path in qkv:
    np.testing.assert_array_equal(after[path], before[path], err_msg=path)


def test_adam_adds_l2_to_the_gradient_like_pytorch_adam():
  # torch.optim.Adam(weight_decay=wd): g <- g + wd p, then Adam. With zero gradients the first step sees
  # g = wd p, so m_hat = g and v_hat = g^2: the update is -lr g / (|g| + eps) = -lr sign(p) (|g| >> eps).
  params = _avt_params()
  after = _leaves_by_path(_step_with_zero_gradients(_cfg(name="adam", weight_decay=WD), LR, params))
  before = _leaves_by_path(params)
  kernel = next(p for p in before if p.endswith("['kernel']"))
  np.testing.assert_allclose(before[kernel] - after[kernel], LR * np.sign(before[kernel]), rtol=1e-3, atol=1e-6)
  bias = next(p for p in before if p.endswith("['bias']") and not _is_attention_qkv_bias(p))
  np.testing.assert_array_equal(after[bias], before[bias])


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_decay_all_decays_biases_and_layernorm_too(name):
  params = _avt_params()
  before = _leaves_by_path(params)
  after = _leaves_by_path(_step_with_zero_gradients(_cfg(name=name, weight_decay=WD, decay_all=True), LR, params))
  for path in before:  # every parameter moves, towards zero (Adam's first step is lr sign(p): it may overshoot)
    assert np.all(np.sign(before[path] - after[path]) == np.sign(before[path])), path


def test_sgd_uses_nesterov_momentum():
  tx = optimizers.create_optimizer(_cfg(name="sgd", momentum=MOMENTUM, weight_decay=0.0), _constant(LR))
  params = {"w": jnp.array([1.0, -2.0])}
  g1, g2 = np.array([1.0, 2.0]), np.array([0.5, -1.0])
  state = tx.init(params)
  u1, state = tx.update({"w": jnp.asarray(g1)}, state, params)
  u2, _ = tx.update({"w": jnp.asarray(g2)}, state, params)
  # Nesterov: v_t = m v_{t-1} + g_t, update_t = -lr (g_t + m v_t). (Heavy ball would give -lr v_t:
  # -lr g1 on the first step.)
  v1 = g1
  v2 = MOMENTUM * v1 + g2
  np.testing.assert_allclose(u1["w"], -LR * (g1 + MOMENTUM * v1), rtol=1e-6)
  np.testing.assert_allclose(u2["w"], -LR * (g2 + MOMENTUM * v2), rtol=1e-6)


GRADS_NORM_5 = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]])}  # global norm sqrt(9 + 16) = 5


@pytest.mark.parametrize("grad_clip, scale, expected_norm", [
    (1.0, 1.0, 1.0),    # norm 5 clipped to 1: the update is -g / 5
    (1.0, 0.1, 0.5),    # norm 0.5 is under the cap: unchanged
    (0.0, 1.0, 5.0),    # 0 = off
])
def test_gradient_clipping_caps_the_global_norm(grad_clip, scale, expected_norm):
  # Momentum 0 and lr 1, so the update is exactly minus the (clipped) gradient.
  tx = optimizers.create_optimizer(_cfg(name="sgd", momentum=0.0, weight_decay=0.0, grad_clip=grad_clip),
                                   _constant(1.0))
  grads = jax.tree.map(lambda g: jnp.asarray(g * scale), GRADS_NORM_5)
  updates, _ = tx.update(grads, tx.init(grads), grads)
  np.testing.assert_allclose(optax.global_norm(updates), expected_norm, rtol=1e-6)
  for key, g in grads.items():  # the direction is kept
    np.testing.assert_allclose(updates[key], -g * expected_norm / (5.0 * scale), rtol=1e-6)


def test_unknown_optimizer_name_raises():
  with pytest.raises(ValueError, match=r"config\.optimizer\.name.*'lamb'"):
    optimizers.create_optimizer(_cfg(name="lamb"), _constant(1e-3))
