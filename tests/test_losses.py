"""Tests for anticipax.losses against hand computations.

Logits are logs of small positive integers, so softmax(log n)_c = n_c / sum(n) and every
cross-entropy below is a log of a simple fraction, written out with math.log.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax import losses

L = math.log

# next_action_ce: 3 examples x 3 classes.
#   ex0: n = [1, 2, 1] -> p = [1/4, 1/2, 1/4], label 1 -> CE = log 2, argmax 1 (correct)
#   ex1: n = [3, 1, 1] -> p = [3/5, 1/5, 1/5], label 2 -> CE = log 5, argmax 0 (wrong)
#   ex2: n = [1, 1, 1] -> p = 1/3 each,        label 0 -> CE = log 3, argmax 0 (ties -> first, correct)
NEXT_LOGITS = jnp.log(jnp.array([[1., 2., 1.], [3., 1., 1.], [1., 1., 1.]]))
NEXT_LABELS = jnp.array([1, 2, 0])


def test_next_action_ce_matches_hand_values():
  loss, aux = losses.next_action_ce(NEXT_LOGITS, NEXT_LABELS)
  np.testing.assert_allclose(loss, (L(2) + L(5) + L(3)) / 3, rtol=1e-6)
  np.testing.assert_allclose(aux["accuracy"], 2 / 3, rtol=1e-6)


def test_next_action_ce_mask_averages_over_real_examples_only():
  loss, aux = losses.next_action_ce(NEXT_LOGITS, NEXT_LABELS, jnp.array([1, 1, 0]))
  np.testing.assert_allclose(loss, (L(2) + L(5)) / 2, rtol=1e-6)
  np.testing.assert_allclose(aux["accuracy"], 1 / 2, rtol=1e-6)


def test_next_action_ce_ignores_label_minus_one():
  loss, aux = losses.next_action_ce(NEXT_LOGITS, jnp.array([1, -1, 0]))
  np.testing.assert_allclose(loss, (L(2) + L(3)) / 2, rtol=1e-6)
  np.testing.assert_allclose(aux["accuracy"], 1.0, rtol=1e-6)


def test_next_action_ce_label_smoothing():
  eps, c = 0.3, 3
  on, off = 1 - eps + eps / c, eps / c  # 0.8, 0.1
  # CE = -sum_c t_c log p_c with the smoothed target t.
  ce0 = -(off * L(1 / 4) + on * L(2 / 4) + off * L(1 / 4))
  ce1 = -(off * L(3 / 5) + off * L(1 / 5) + on * L(1 / 5))
  ce2 = -(on * L(1 / 3) + off * L(1 / 3) + off * L(1 / 3))  # = log 3: uniform p ignores smoothing
  loss, aux = losses.next_action_ce(NEXT_LOGITS, NEXT_LABELS, label_smoothing=eps)
  np.testing.assert_allclose(loss, (ce0 + ce1 + ce2) / 3, rtol=1e-6)
  np.testing.assert_allclose(aux["accuracy"], 2 / 3, rtol=1e-6)  # accuracy does not smooth


# future_feature_mse: B=2, T=3, D=2. The prediction at t regresses features[:, t+1], so features[:, 0]
# is never a target and pred[:, -1] is never used: both hold values that would dominate if misused.
PRED = jnp.array([[[1., 2.], [3., 4.], [100., 100.]],
                  [[0., 0.], [0., 0.], [-100., 7.]]])
FEATS = jnp.array([[[50., 50.], [1., 1.], [3., 3.]],
                   [[9., 9.], [2., 0.], [0., 4.]]])
# ex0: t=0: (1-1)^2 + (2-1)^2 = 1; t=1: (3-3)^2 + (4-3)^2 = 1 -> mean over 2x2 = 2/4 = 0.5
# ex1: t=0: (0-2)^2 + (0-0)^2 = 4; t=1: (0-0)^2 + (0-4)^2 = 16 -> 20/4 = 5
MSE0, MSE1 = 0.5, 5.0


@pytest.mark.parametrize("mask, expected", [
    (None, (MSE0 + MSE1) / 2),
    ([1, 1], (MSE0 + MSE1) / 2),
    ([1, 0], MSE0),
    ([0, 1], MSE1),
])
def test_future_feature_mse_shifts_by_one_frame(mask, expected):
  mask = None if mask is None else jnp.array(mask, jnp.float32)
  loss, _ = losses.future_feature_mse(PRED, FEATS, mask)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_future_feature_mse_gradient_reaches_predictions_not_features():
  grad_feats = jax.grad(lambda f: losses.future_feature_mse(PRED, f)[0])(FEATS)
  np.testing.assert_array_equal(grad_feats, np.zeros(FEATS.shape))
  # d loss / d p_{i,t,d} = 2 (p - f_{t+1}) / (B * (T-1) * D) = (p - f_{t+1}) / 4 for t < T-1; 0 at t = T-1.
  grad_pred = jax.grad(lambda p: losses.future_feature_mse(p, FEATS)[0])(PRED)
  expected = np.array([[[0., 1 / 4], [0., 1 / 4], [0., 0.]],
                       [[-2 / 4, 0.], [0., -4 / 4], [0., 0.]]])
  np.testing.assert_allclose(grad_pred, expected, rtol=1e-6)


# past_action_ce: B=2, T=3, C=3. Position t's logits are scored against past_actions[:, t+1].
#   ex0: actions [2, 1, -1]: t=0 -> label 1, n = [1, 2, 1] -> CE = log 2; t=1 -> label -1, ignored.
#   ex1: actions [0, 0, 2]:  t=0 -> label 0, n = [3, 1, 1] -> CE = log(5/3);
#                            t=1 -> label 2, n = [1, 1, 1] -> CE = log 3.
# The last position (and ex0's ignored position) holds logits that would give a large CE if scored.
PAST_LOGITS = jnp.array([
    [jnp.log(jnp.array([1., 2., 1.])), [0., 0., 40.], [40., -40., 0.]],
    [jnp.log(jnp.array([3., 1., 1.])), [0., 0., 0.], [40., -40., 0.]],
])
PAST_ACTIONS = jnp.array([[2, 1, -1], [0, 0, 2]])


@pytest.mark.parametrize("mask, expected", [
    (None, (L(2) + L(5 / 3) + L(3)) / 3),  # averaged over the 3 scored (example, frame) pairs
    ([1, 0], L(2)),
    ([0, 1], (L(5 / 3) + L(3)) / 2),
])
def test_past_action_ce_matches_hand_values(mask, expected):
  mask = None if mask is None else jnp.array(mask, jnp.float32)
  loss, _ = losses.past_action_ce(PAST_LOGITS, PAST_ACTIONS, mask)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_fully_masked_batch_gives_zero_loss_and_no_nan():
  zero2, zero3 = jnp.zeros(2), jnp.zeros(3)
  next_loss, next_aux = losses.next_action_ce(NEXT_LOGITS, NEXT_LABELS, zero3)
  feat_loss, _ = losses.future_feature_mse(PRED, FEATS, zero2)
  past_loss, _ = losses.past_action_ce(PAST_LOGITS, PAST_ACTIONS, zero2)
  # Every label ignored is the same as every example masked.
  ignored_loss, _ = losses.next_action_ce(NEXT_LOGITS, -jnp.ones(3, jnp.int32))
  no_past_loss, _ = losses.past_action_ce(PAST_LOGITS, -jnp.ones((2, 3), jnp.int32))
  for value in (next_loss, next_aux["accuracy"], feat_loss, past_loss, ignored_loss, no_past_loss):
    assert float(value) == 0.0
  # ... and the gradient of a fully masked batch is finite (zero), so it cannot poison an update.
  grad = jax.grad(lambda z: losses.next_action_ce(z, NEXT_LABELS, zero3)[0])(NEXT_LOGITS)
  np.testing.assert_array_equal(grad, np.zeros(grad.shape))


def test_single_frame_clip_has_no_future_feature_target_and_no_nan():
  loss, _ = losses.future_feature_mse(jnp.ones((2, 1, 3)), jnp.ones((2, 1, 3)))
  assert float(loss) == 0.0
