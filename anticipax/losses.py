"""Pure loss functions: `(inputs...) -> (loss, aux)`.

Every loss takes an optional per-example `mask` (1 = real example, 0 = padding) and averages over the
real examples only, so padded evaluation batches and sharded batches give the same numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _masked_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-8)


def _ones_like_batch(x: jax.Array) -> jax.Array:
  return jnp.ones(x.shape[:1], jnp.float32)


def next_action_ce(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None, *,
                   label_smoothing: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Cross-entropy of the next-action logits.

  loss = sum_i m_i * CE(softmax(z_i), y~_i) / sum_i m_i, with y~ = (1-eps) onehot(y) + eps/C.
  Examples whose label is < 0 are ignored as well.

  Args:
    logits: [B, C].
    labels: [B] int class ids.
    mask: [B] optional example weights.
    label_smoothing: eps.

  Returns:
    (loss, {"accuracy": top-1 accuracy over the same examples}).
  """
  mask = _ones_like_batch(logits) if mask is None else mask.astype(jnp.float32)
  weights = mask * (labels >= 0)
  num_classes = logits.shape[-1]
  targets = optax.smooth_labels(jax.nn.one_hot(jnp.maximum(labels, 0), num_classes), label_smoothing)
  ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), targets)
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  return _masked_mean(ce, weights), {"accuracy": _masked_mean(correct, weights)}


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
  return _masked_mean(per_example, mask), {}


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
  return _masked_mean(ce, weights), {}
