"""Tests for the distillation losses of anticipax.losses against hand computations.

As in test_losses.py, logits are T * log(small integers), so softmax(z / T) is a simple fraction and every
KL below is a sum of logs written out with math.log.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax import losses

L, E = math.log, math.exp
T = 2.0

# distillation_kl, T = 2, 3 examples x 3 classes; p = softmax(t / T), q = softmax(s / T).
#   ex0: p = [1/4, 1/2, 1/4], q = [1/4, 1/4, 1/2] -> KL = 1/2 log 2 + 1/4 log(1/2) = 1/4 log 2;
#        argmax teacher 1, student 2 (disagree).
#   ex1: p = [1/2, 1/4, 1/4], q = [1/3, 1/3, 1/3] -> KL = 1/2 log(3/2) + 2 * 1/4 log(3/4); both argmax 0.
#   ex2: p = q = [1/6, 2/6, 3/6]                  -> KL = 0; both argmax 2.
TEACHER = T * jnp.log(jnp.array([[1., 2., 1.], [2., 1., 1.], [1., 2., 3.]]))
STUDENT = T * jnp.log(jnp.array([[1., 1., 2.], [1., 1., 1.], [1., 2., 3.]]))
KL0, KL1, KL2 = L(2) / 4, L(3 / 2) / 2 + L(3 / 4) / 2, 0.0


def test_distillation_kl_matches_hand_values_with_t_squared():
  loss, aux = losses.distillation_kl(STUDENT, TEACHER, temperature=T)
  np.testing.assert_allclose(loss, T**2 * (KL0 + KL1 + KL2) / 3, rtol=1e-6)
  np.testing.assert_allclose(aux["teacher_agreement"], 2 / 3, rtol=1e-6)


def test_distillation_kl_masks_examples_without_teacher():
  # ex1 has no teacher entry: whatever its row holds (here NaN) must not matter.
  teacher = TEACHER.at[1].set(jnp.nan)
  mask = jnp.array([1., 0., 1.])
  loss, aux = losses.distillation_kl(STUDENT, teacher, mask, temperature=T)
  np.testing.assert_allclose(loss, T**2 * (KL0 + KL2) / 2, rtol=1e-6)
  np.testing.assert_allclose(aux["teacher_agreement"], 1 / 2, rtol=1e-6)
  grad = jax.grad(lambda s: losses.distillation_kl(s, teacher, mask, temperature=T)[0])(STUDENT)
  assert np.all(np.isfinite(grad))
  np.testing.assert_array_equal(grad[1], np.zeros(3))  # no pull towards a uniform target


def test_distillation_kl_top_k_renormalizes_over_teacher_top_classes():
  # 1 example x 4 classes. Teacher n = [6, 1, 2, 1]: its top-2 classes are {0, 2}, where
  # p = [6, 2] / 8 = [3/4, 1/4]. Student n = [1, 5, 1, 3]: over {0, 2}, q = [1/2, 1/2]; the student's mass
  # on classes 1 and 3 does not count.
  teacher = T * jnp.log(jnp.array([[6., 1., 2., 1.]]))
  student = T * jnp.log(jnp.array([[1., 5., 1., 3.]]))
  loss, aux = losses.distillation_kl(student, teacher, temperature=T, top_k=2)
  np.testing.assert_allclose(loss, T**2 * (3 / 4 * L(3 / 2) + 1 / 4 * L(1 / 2)), rtol=1e-6)
  np.testing.assert_allclose(aux["teacher_agreement"], 0.0)  # argmax over all classes: 1 vs 0
  # Over all 4 classes: p = [6, 1, 2, 1] / 10, q = [1, 5, 1, 3] / 10.
  full, _ = losses.distillation_kl(student, teacher, temperature=T)
  np.testing.assert_allclose(full, T**2 * (.6 * L(6) + .1 * L(1 / 5) + .2 * L(2) + .1 * L(1 / 3)), rtol=1e-6)
  same, _ = losses.distillation_kl(student, teacher, temperature=T, top_k=4)
  np.testing.assert_allclose(same, full, rtol=1e-6)
  with pytest.raises(ValueError, match="top_k"):
    losses.distillation_kl(student, teacher, temperature=T, top_k=5)


def test_distillation_kl_gradient_reaches_student_only():
  teacher_grad = jax.grad(lambda t: losses.distillation_kl(STUDENT, t, temperature=T)[0])(TEACHER)
  np.testing.assert_array_equal(teacher_grad, np.zeros(TEACHER.shape))
  # d/ds [T^2 KL(p || softmax(s / T))] = T (q - p); averaged over the 3 examples.
  student_grad = jax.grad(lambda s: losses.distillation_kl(s, TEACHER, temperature=T)[0])(STUDENT)
  expected = T / 3 * np.array([[0., -1 / 4, 1 / 4], [-1 / 6, 1 / 12, 1 / 12], [0., 0., 0.]])
  np.testing.assert_allclose(student_grad, expected, atol=1e-6)


def test_ensemble_logits_is_the_mean():
  a, b = jnp.array([[1., 2.], [3., 4.]]), jnp.array([[3., 2.], [1., -4.]])
  np.testing.assert_allclose(losses.ensemble_logits([a]), a)
  np.testing.assert_allclose(losses.ensemble_logits([a, b]), [[2., 2.], [2., 0.]])
  with pytest.raises(ValueError):
    losses.ensemble_logits([])
  with pytest.raises(ValueError, match="shape"):
    losses.ensemble_logits([a, b[:1]])


# info_nce, tau = 1/2. After L2 normalization: u = student rows, v = teacher rows,
#   u0 = (1, 0), u1 = (.6, .8), u2 = (0, 1);  v0 = (1, 0), v1 = (0, 1), v2 = (.8, .6).
# Cosines u_i . v_j:
#   [[1,  0,  .8 ],
#    [.6, .8, .96],
#    [0,  1,  .6 ]]
TAU = 0.5
NCE_STUDENT = jnp.array([[2., 0.], [3., 4.], [0., .5]])
NCE_TEACHER = jnp.array([[3., 0.], [0., 7.], [4., 3.]])
COS = [[1., 0., .8], [.6, .8, .96], [0., 1., .6]]


def _ce(row, positive):
  return L(sum(E(x / TAU) for x in row)) - row[positive] / TAU


def test_info_nce_matches_hand_values():
  st = [_ce(COS[i], i) for i in range(3)]
  ts = [_ce([COS[j][i] for j in range(3)], i) for i in range(3)]  # teacher i against students j
  loss, aux = losses.info_nce(NCE_STUDENT, NCE_TEACHER, temperature=TAU, symmetric=False)
  np.testing.assert_allclose(loss, sum(st) / 3, rtol=1e-5)
  # Row argmaxes: 0 (right), 2 (wrong: .96 > .8), 1 (wrong: 1 > .6).
  np.testing.assert_allclose(aux["contrastive_accuracy"], 1 / 3, rtol=1e-6)
  loss, aux = losses.info_nce(NCE_STUDENT, NCE_TEACHER, temperature=TAU)
  np.testing.assert_allclose(loss, (sum(st) / 3 + sum(ts) / 3) / 2, rtol=1e-5)
  # Column argmaxes: 0 (right), 2 (wrong), 1 (wrong: .96 > .6).
  np.testing.assert_allclose(aux["contrastive_accuracy"], 1 / 3, rtol=1e-6)


def test_info_nce_masked_example_is_neither_anchor_nor_negative():
  # Example 2 masked: only the 2 x 2 block [[1, 0], [.6, .8]] remains (it would otherwise be the hardest
  # negative of anchor 1). Its teacher row holds NaN, which must not leak in.
  mask = jnp.array([1., 1., 0.])
  teacher = NCE_TEACHER.at[2].set(jnp.nan)
  block = [[1., 0.], [.6, .8]]
  st = (_ce(block[0], 0) + _ce(block[1], 1)) / 2
  ts = (_ce([1., .6], 0) + _ce([0., .8], 1)) / 2
  loss, aux = losses.info_nce(NCE_STUDENT, teacher, mask, temperature=TAU, symmetric=False)
  np.testing.assert_allclose(loss, st, rtol=1e-5)
  np.testing.assert_allclose(aux["contrastive_accuracy"], 1.0)
  loss, aux = losses.info_nce(NCE_STUDENT, teacher, mask, temperature=TAU)
  np.testing.assert_allclose(loss, (st + ts) / 2, rtol=1e-5)
  assert st != pytest.approx(ts)  # the two directions really differ
  np.testing.assert_allclose(aux["contrastive_accuracy"], 1.0)


def test_info_nce_gradient_reaches_student_only():
  mask = jnp.array([1., 1., 0.])
  teacher_grad = jax.grad(lambda t: losses.info_nce(NCE_STUDENT, t, mask, temperature=TAU)[0])(NCE_TEACHER)
  np.testing.assert_array_equal(teacher_grad, np.zeros(NCE_TEACHER.shape))
  student_grad = jax.grad(lambda s: losses.info_nce(s, NCE_TEACHER, mask, temperature=TAU)[0])(NCE_STUDENT)
  assert np.all(np.isfinite(student_grad)) and np.abs(student_grad[:2]).sum() > 0
  np.testing.assert_array_equal(student_grad[2], np.zeros(2))


@pytest.mark.parametrize("symmetric", [False, True])
def test_fully_masked_distillation_gives_zero_and_no_nan(symmetric):
  zeros = jnp.zeros(3)
  nce = lambda s: losses.info_nce(s, NCE_TEACHER, zeros, temperature=TAU, symmetric=symmetric)
  (loss, aux), grad = jax.value_and_grad(nce, has_aux=True)(NCE_STUDENT)
  assert float(loss) == 0.0 and float(aux["contrastive_accuracy"]) == 0.0
  np.testing.assert_array_equal(grad, np.zeros(NCE_STUDENT.shape))
  kl = lambda s: losses.distillation_kl(s, TEACHER * jnp.nan, zeros, temperature=T, top_k=2)
  (loss, aux), grad = jax.value_and_grad(kl, has_aux=True)(STUDENT)
  assert float(loss) == 0.0 and float(aux["teacher_agreement"]) == 0.0
  np.testing.assert_array_equal(grad, np.zeros(STUDENT.shape))


def _released_kl_loss(student, teacher, *, temperature, weight, top_k=0):
  """The seed paper's released student loss, in numpy (student/AVT-main/loss_fn/kld_lm.py + func/train.py).

  KLDivLoss(reduction='none', log_target=True)(log_softmax(s / T), log_softmax(t / T)) * T**2 is the [B, C]
  array exp(lt) * (lt - ls); the train loop takes torch.mean over all of it and multiplies by the weight.
  The top-k variant gathers the teacher's k largest logits and the student's logits at those indices and
  takes both log-softmaxes over those k entries only.
  """
  def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))

  if top_k:
    idx = np.argsort(-teacher, axis=-1)[:, :top_k]
    student, teacher = np.take_along_axis(student, idx, -1), np.take_along_axis(teacher, idx, -1)
  ls, lt = log_softmax(student / temperature), log_softmax(teacher / temperature)
  return weight * np.mean(np.exp(lt) * (lt - ls) * temperature**2)


@pytest.mark.parametrize("config_name", ["egtea", "ek55"])
def test_configured_distillation_equals_the_released_code(config_name):
  import importlib  # pylint: disable=g-import-not-at-top
  d = importlib.import_module(f"configs.{config_name}").get_config().distill
  rng = np.random.default_rng(0)
  num_classes = {"egtea": 106, "ek55": 2513}[config_name]
  student = rng.normal(0, 3, (8, num_classes)).astype(np.float64)
  teacher = rng.normal(0, 3, (8, num_classes)).astype(np.float64)
  expected = _released_kl_loss(student, teacher, temperature=d.temperature, weight=d.weight, top_k=d.top_k)
  loss, _ = losses.distillation_kl(jnp.asarray(student, jnp.float32), jnp.asarray(teacher, jnp.float32),
                                   temperature=d.temperature, top_k=d.top_k, reduction=d.reduction)
  np.testing.assert_allclose(d.weight * float(loss), expected, rtol=1e-4)
  # Summing over classes instead (Hinton's per-example KL) would be C' = C or k times stronger.
  summed, _ = losses.distillation_kl(jnp.asarray(student, jnp.float32), jnp.asarray(teacher, jnp.float32),
                                     temperature=d.temperature, top_k=d.top_k, reduction="sum")
  np.testing.assert_allclose(float(summed), float(loss) * (d.top_k or num_classes), rtol=1e-5)


@pytest.mark.parametrize("top_k", [0, 5])
def test_mean_reduction_equals_the_released_formula_on_random_logits(top_k):
  rng = np.random.default_rng(top_k)
  student, teacher = rng.normal(0, 2, (16, 40)), rng.normal(0, 2, (16, 40))
  for temperature in (1.0, 4.0):
    loss, _ = losses.distillation_kl(jnp.asarray(student, jnp.float32), jnp.asarray(teacher, jnp.float32),
                                     temperature=temperature, top_k=top_k, reduction="mean")
    expected = _released_kl_loss(student, teacher, temperature=temperature, weight=1.0, top_k=top_k)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
