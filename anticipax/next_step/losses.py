"""Method 2's pure losses: word cross-entropy of next-step sentences and the cross-modal contrastive loss.

Shared losses (distillation KL, InfoNCE) live in `anticipax/losses.py`; these follow its conventions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from anticipax import losses


def next_step_ce(logits: jax.Array, targets: jax.Array, token_mask: jax.Array, *,
                 label_smoothing: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Word cross-entropy of teacher-forced next-step sentences, averaged over real tokens.

  loss = sum_{b,s,l} w_{bsl} CE(z_{bsl}, y~_{bsl}) / sum w, with w = token_mask (1 for the words and the
  EOS of real steps of real recipes, 0 for padding) and y~ the (optionally smoothed) one-hot target.

  Args:
    logits: [B, S, L, V] decoder logits; position l predicts targets[..., l].
    targets: [B, S, L] int word ids.
    token_mask: [B, S, L] weights.
    label_smoothing: eps.

  Returns:
    (loss, {"token_accuracy": fraction of weighted tokens predicted exactly by the argmax}).
  """
  w = token_mask.astype(jnp.float32)
  one_hot = optax.smooth_labels(jax.nn.one_hot(targets, logits.shape[-1]), label_smoothing)
  ce = optax.softmax_cross_entropy(logits.astype(jnp.float32), one_hot)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  return losses.masked_mean(ce, w), {"token_accuracy": losses.masked_mean(correct, w)}


def cross_modal_contrastive(student: jax.Array, teacher: jax.Array, step_mask: jax.Array, *,
                            temperature: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """CCD (Yang et al. 2022): InfoNCE between the student's and the teacher's per-step representations.

  Every real step of every recipe in the batch is an anchor; its positive is the other modality's
  representation of the same step of the same recipe, its negatives the other steps of that recipe and
  every step of the other recipes. With u = student [B, S, D] and v = teacher [B, S, D] flattened to
  N = B * S rows and m = step_mask flattened:
    loss = (L_{u->v} + L_{v->u}) / 2 of `info_nce(u, v, m, temperature)`,
  where both sides are already projected (each by its own trainable head) and the teacher side is the
  frozen teacher's state through the student's trainable teacher head, so its gradient flows.

  Args:
    student: [B, S, D] projected student states.
    teacher: [B, S, D] projected teacher states (of the same steps).
    step_mask: [B, S]; 0 for padded steps, steps without a teacher entry and padded recipes.
    temperature: tau > 0.

  Returns:
    (loss, {"contrastive_accuracy": ...}) as `info_nce`.
  """
  dim = student.shape[-1]
  return losses.info_nce(student.reshape(-1, dim), teacher.reshape(-1, dim), step_mask.reshape(-1),
                  temperature=temperature, symmetric=True, stop_teacher_gradient=False)
