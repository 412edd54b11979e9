"""`next_step.losses.cross_modal_contrastive` (CCD, method 2) against a hand computation in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax import losses
from anticipax.next_step import losses as step_losses

TAU = 0.1
B, S, D = 3, 4, 5
# Steps 3 of recipe 0, 2-3 of recipe 1 and all of recipe 2 (a padded recipe) are masked.
MASK = np.array([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]], np.float32)


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  student = rng.standard_normal((B, S, D)).astype(np.float32)
  teacher = (0.5 * student + rng.standard_normal((B, S, D))).astype(np.float32)  # correlated pairs
  return student, teacher


def _hand(student, teacher, mask, tau):
  """Flatten, keep the valid rows, l2-normalise, logits / tau, CE both directions, averaged."""
  valid = mask.reshape(-1) > 0
  u = student.reshape(-1, student.shape[-1])[valid].astype(np.float64)
  v = teacher.reshape(-1, teacher.shape[-1])[valid].astype(np.float64)
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  v /= np.linalg.norm(v, axis=1, keepdims=True)
  logits = u @ v.T / tau

  def direction(l):
    lse = np.log(np.sum(np.exp(l - l.max(1, keepdims=True)), 1)) + l.max(1)
    return np.mean(lse - np.diag(l)), np.mean(np.argmax(l, 1) == np.arange(len(l)))

  (st, acc_st), (ts, acc_ts) = direction(logits), direction(logits.T)
  return (st + ts) / 2, (acc_st + acc_ts) / 2


def test_matches_hand_computation_with_masked_steps():
  student, teacher = _inputs()
  want, want_acc = _hand(student, teacher, MASK, TAU)
  loss, aux = step_losses.cross_modal_contrastive(student, teacher, MASK, temperature=TAU)
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(aux["contrastive_accuracy"]), want_acc, rtol=1e-6)
  # Masked steps are neither anchors nor negatives: unchanged whatever they hold (NaN included).
  junk_s, junk_t = student.copy(), teacher.copy()
  junk_s[MASK == 0], junk_t[MASK == 0] = 1e3, np.nan
  loss_junk, _ = step_losses.cross_modal_contrastive(junk_s, junk_t, MASK, temperature=TAU)
  np.testing.assert_allclose(float(loss_junk), float(loss), rtol=1e-6)
  # ...whereas unmasking them changes the loss (they would then be negatives).
  full, _ = step_losses.cross_modal_contrastive(student, teacher, np.ones_like(MASK), temperature=TAU)
  np.testing.assert_allclose(float(full), _hand(student, teacher, np.ones_like(MASK), TAU)[0], rtol=1e-5)
  assert float(full) != pytest.approx(float(loss))


def test_other_steps_of_the_same_recipe_are_negatives():
  # Two steps of one recipe whose student states are swapped relative to the teacher's: with steps of
  # the same recipe as negatives, every anchor prefers the wrong step (accuracy 0, loss > log 2).
  e0, e1 = np.eye(2, dtype=np.float32)
  student = np.stack([e0, e1])[None]
  teacher = np.stack([e1, e0])[None]
  loss, aux = step_losses.cross_modal_contrastive(student, teacher, np.ones((1, 2), np.float32), temperature=TAU)
  np.testing.assert_allclose(float(loss), np.log1p(np.exp(1 / TAU)), rtol=1e-5)  # lse(0, 10) - 0
  assert float(aux["contrastive_accuracy"]) == 0.0


def _reference_jnp(student, teacher, mask, tau):
  """The same formula in jnp (for gradients), written independently of `info_nce`."""
  valid = np.flatnonzero(mask.reshape(-1) > 0)
  u = student.reshape(-1, student.shape[-1])[valid]
  v = teacher.reshape(-1, teacher.shape[-1])[valid]
  u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
  v = v / jnp.linalg.norm(v, axis=1, keepdims=True)
  logits = u @ v.T / tau
  st = jnp.mean(jax.nn.logsumexp(logits, 1) - jnp.diag(logits))
  ts = jnp.mean(jax.nn.logsumexp(logits, 0) - jnp.diag(logits))
  return (st + ts) / 2


def test_gradients_reach_student_and_teacher_side():
  student, teacher = _inputs(1)
  loss_fn = lambda s, t: step_losses.cross_modal_contrastive(s, t, MASK, temperature=TAU)[0]
  grad_s, grad_t = jax.grad(loss_fn, argnums=(0, 1))(jnp.asarray(student), jnp.asarray(teacher))
  want_s, want_t = jax.grad(lambda s, t: _reference_jnp(s, t, MASK, TAU), argnums=(0, 1))(
      jnp.asarray(student), jnp.asarray(teacher))
  np.testing.assert_allclose(grad_s, want_s, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(grad_t, want_t, rtol=1e-4, atol=1e-6)
  valid = MASK > 0
  # The teacher side is a trainable projection of frozen states: its gradient must flow.
  assert np.all(np.linalg.norm(grad_t[valid], axis=-1) > 0)
  assert np.all(np.linalg.norm(grad_s[valid], axis=-1) > 0)
  # Masked steps get no gradient on either side.
  assert np.all(grad_s[~valid] == 0) and np.all(grad_t[~valid] == 0)
  # Unlike info_nce's default, which stops the teacher's gradient.
  flat = lambda x: jnp.asarray(x).reshape(-1, D)
  nce_t = jax.grad(lambda t: losses.info_nce(flat(student), t, MASK.reshape(-1), temperature=TAU)[0])(
      flat(teacher))
  assert np.all(nce_t == 0)


def test_fully_masked_batch_gives_zero_and_finite_gradients():
  student, teacher = _inputs(2)
  zeros = np.zeros_like(MASK)
  loss_fn = lambda s, t: step_losses.cross_modal_contrastive(s, t, zeros, temperature=TAU)[0]
  assert float(loss_fn(student, teacher)) == 0.0
  grads = jax.grad(loss_fn, argnums=(0, 1))(jnp.asarray(student), jnp.asarray(teacher))
  assert all(np.all(np.isfinite(g)) and np.all(g == 0) for g in grads)
