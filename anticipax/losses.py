"""Pure loss functions: `(inputs...) -> (loss, aux)`.

Every loss takes an optional per-example `mask` (1 = real example, 0 = padding) and averages over the
real examples only, so padded evaluation batches and sharded batches give the same numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """sum(values * weights) / sum(weights): the mean over the weighted (real) entries (0 if none)."""
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def _ones_like_batch(x: jax.Array) -> jax.Array:
  return jnp.ones(x.shape[:1], jnp.float32)


def next_action_ce(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, *,
                   label_smoothing: float = 0.0,
                   class_weights: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the next-action logits.

  loss = sum_i w_i * CE(softmax(z_i), y~_i) / sum_i w_i, with y~ = (1-eps) onehot(y) + eps/C and
  w_i = m_i * c_{y_i} (c = class weights, 1 if not given; normalised as PyTorch's weighted CE).
  Examples whose label is < 0 are ignored as well.

  Args:
    logits: [B, C].
    labels: [B] int class ids.
    mask: [B] optional example weights.
    label_smoothing: eps.
    class_weights: optional [C] per-class weights (e.g. "balanced": N / (C_present * n_c)).

  Returns:
    (loss, {"accuracy": unweighted top-1 accuracy over the same examples}).
  """
  mask = _ones_like_batch(logits) if mask is None else mask.astype(jnp.float32)
  valid = mask * (labels >= 0)
  weights = valid if class_weights is None else valid * class_weights[jnp.maximum(labels, 0)]
  num_classes = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(jnp.maximum(labels, 0), num_classes), label_smoothing)
  ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return masked_mean(ce, weights), {"accuracy": masked_mean(correct, valid)}


def future_feature_mse(pred_features: jax.Array, features: jax.Array,
                       mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """AVT's feature-prediction loss: the prediction at position t regresses the observed feature at t+1.

  loss = sum_i m_i * mean_{t<T-1, d} (p_{i,t,d} - stop_grad(f_{i,t+1,d}))^2 / sum_i m_i.
  The target is not differentiated: regressing towards a moving target would let a learned backbone
  collapse its features.

  Args:
    pred_features: [B, T, D] head outputs.
    features: [B, T, D] observed frame features.
    mask: [B] optional example weights.
  """
  mask = _ones_like_batch(pred_features) if mask is None else mask.astype(jnp.float32)
  if pred_features.shape[1] < 2:  # a one-frame clip has no observed next frame to regress
    return jnp.zeros((), jnp.float32), {}
  err = jnp.square(pred_features[:, :-1] - jax.lax.stop_gradient(features[:, 1:]))
  per_example = jnp.mean(err, axis=(1, 2))
  return masked_mean(per_example, mask), {}


def past_action_ce(past_logits: jax.Array, past_actions: jax.Array,
                   mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Classification of the observed frames: position t's logits classify frame t+1.

  The label of frame t+1 is the action in progress at that frame (`past_actions[:, t+1]`); frames with
  no action in progress (label -1) are ignored. The last position predicts the unseen next action and
  is left to `next_action_ce`.

  loss = sum_{i,t} w_{i,t} CE(z_{i,t}, a_{i,t+1}) / sum_{i,t} w_{i,t}, w = m_i * [a_{i,t+1} >= 0].

  Args:
    past_logits: [B, T, C].
    past_actions: [B, T] int, -1 where no action is in progress.
    mask: [B] optional example weights.
  """
  mask = _ones_like_batch(past_logits) if mask is None else mask.astype(jnp.float32)
  labels = past_actions[:, 1:]
  logits = past_logits[:, :-1].astype(jnp.float32)
  weights = mask[:, None] * (labels >= 0)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
  return masked_mean(ce, weights), {}


def distillation_kl(student_logits: jax.Array, teacher_logits: jax.Array, mask: jax.Array | None = None, *,
                    temperature: float, top_k: int = 0,
                    reduction: str = "sum") -> tuple[jax.Array, dict[str, jax.Array]]:
  """Hinton distillation: KL from the teacher's softened distribution to the student's.

  With p_i = softmax(stop_grad(t_i) / T) and q_i = softmax(s_i / T):
  loss = T^2 * sum_i m_i KL(p_i || q_i) / sum_i m_i,  KL(p || q) = sum_c p_c (log p_c - log q_c).
  The T^2 keeps the gradient scale independent of T. Examples without a teacher output get m_i = 0: they
  are left out, never pulled towards a uniform target.

  top_k > 0 distills only the teacher's k most likely classes (the idea of the paper's released code):
  with S_i the indices of the k largest t_i (ties: lowest index first), p_i and q_i above become
  softmax(t_i[S_i] / T) and softmax(s_i[S_i] / T), both renormalized over S_i alone.

  reduction="mean" divides each example's KL by the number of classes it runs over (C, or k with top_k):
  loss = T^2 * sum_i m_i KL(p_i || q_i) / (C' sum_i m_i). That is what the seed paper's released code
  computes (`KLDivLoss(reduction='none')` times T^2, then `torch.mean` over the whole [B, C'] array), so
  its distillation weights apply unchanged; "sum" (Hinton's per-example KL) is C' times larger.

  Args:
    student_logits: [B, C].
    teacher_logits: [B, C]; not differentiated. Rows with m_i = 0 are ignored (they may hold anything).
    mask: [B] optional example weights; 0 where an example has no teacher output.
    temperature: T > 0.
    top_k: 0 for all C classes, else 1 <= k <= C.
    reduction: "sum" over classes (KL per example) or "mean" over them (see above).

  Returns:
    (loss, {"teacher_agreement": fraction of weighted examples whose student argmax equals the teacher
    argmax over all C classes}).
  """
  num_classes = student_logits.shape[-1]
  if not 0 <= top_k <= num_classes:
    raise ValueError(f"top_k must be in [0, {num_classes}], got {top_k}")
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
  mask = _ones_like_batch(student_logits) if mask is None else mask.astype(jnp.float32)
  # Zero the rows that do not count, so that a NaN there cannot reach the loss or the student's gradient.
  teacher = jnp.where(mask[:, None] > 0, jax.lax.stop_gradient(teacher_logits).astype(jnp.float32), 0.0)
  t = teacher / temperature
  s = student_logits.astype(jnp.float32) / temperature
  if top_k:
    _, top = jax.lax.top_k(t, top_k)
    t, s = jnp.take_along_axis(t, top, -1), jnp.take_along_axis(s, top, -1)
  log_p, log_q = jax.nn.log_softmax(t), jax.nn.log_softmax(s)
  kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
  if reduction == "mean":
    kl = kl / log_p.shape[-1]
  agree = (jnp.argmax(student_logits, -1) == jnp.argmax(teacher, -1)).astype(jnp.float32)
  return temperature**2 * masked_mean(kl, mask), {"teacher_agreement": masked_mean(agree, mask)}


def ensemble_logits(teacher_logits: list[jax.Array] | tuple[jax.Array, ...]) -> jax.Array:
  """Multi-teacher ensemble: the mean of the teachers' logits, z = (1/K) sum_k z_k.

  Averaging logits (a geometric mean of the distributions, renormalized) rather than probabilities keeps
  the result usable at any distillation temperature.

  Args:
    teacher_logits: K >= 1 arrays of one shape, e.g. [B, C].

  Returns:
    float32 array of that shape.
  """
  if not teacher_logits:
    raise ValueError("ensemble_logits needs at least one teacher")
  shapes = {tuple(z.shape) for z in teacher_logits}
  if len(shapes) != 1:
    raise ValueError(f"teacher logits differ in shape: {sorted(shapes)}")
  return jnp.mean(jnp.stack([jnp.asarray(z, jnp.float32) for z in teacher_logits]), axis=0)


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), -1, keepdims=True), eps))


def info_nce(student: jax.Array, teacher: jax.Array, mask: jax.Array | None = None, *, temperature: float,
             symmetric: bool = True, stop_teacher_gradient: bool = True) -> tuple[jax.Array, dict[str, jax.Array]]:
  """InfoNCE between student and teacher features: example i's teacher is its positive, the others negatives.

  With u_i = s_i / |s_i|, v_j = stop_grad(t_j) / |t_j| and l_ij = u_i . v_j / tau, over valid j (m_j > 0):
  L_s->t = sum_i m_i [logsumexp_{j valid} l_ij - l_ii] / sum_i m_i,
  L_t->s = the same on l^T (teacher anchors, student candidates),
  loss = (L_s->t + L_t->s) / 2 if symmetric else L_s->t.
  Masked-out examples are neither anchors nor negatives; a fully masked batch gives 0.

  Args:
    student: [B, D] student features.
    teacher: [B, D] teacher features of the same examples; not differentiated.
    mask: [B] optional; 0 for padding or examples without teacher features.
    temperature: tau > 0.
    symmetric: also score the teacher -> student direction.
    stop_teacher_gradient: False when `teacher` comes out of a trainable head (e.g. a projection of the
      frozen teacher's features trained with the student), whose gradient must flow.

  Returns:
    (loss, {"contrastive_accuracy": fraction of valid anchors whose highest-scoring candidate is their
    positive, averaged over the directions in the loss}).
  """
  mask = _ones_like_batch(student) if mask is None else mask.astype(jnp.float32)
  valid = mask > 0
  u = _l2_normalize(student.astype(jnp.float32))
  teacher = jax.lax.stop_gradient(teacher) if stop_teacher_gradient else teacher
  v = _l2_normalize(jnp.where(valid[:, None], teacher.astype(jnp.float32), 0.0))
  logits = u @ v.T / temperature
  # A large finite value rather than -inf: a fully masked row stays finite (no inf - inf = NaN).
  logits = jnp.where(valid[None, :] & valid[:, None], logits, -1e9)
  positives = jnp.arange(logits.shape[0])

  def one_direction(l):
    ce = jax.nn.logsumexp(l, axis=-1) - jnp.diagonal(l)
    correct = (jnp.argmax(l, -1) == positives).astype(jnp.float32)
    return masked_mean(ce, mask), masked_mean(correct, mask)

  loss, accuracy = one_direction(logits)
  if symmetric:
    loss_ts, accuracy_ts = one_direction(logits.T)
    loss, accuracy = (loss + loss_ts) / 2, (accuracy + accuracy_ts) / 2
  return loss, {"contrastive_accuracy": accuracy}
