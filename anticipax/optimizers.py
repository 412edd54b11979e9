"""Optimizer and learning-rate schedule from `config.optimizer` / `config.schedule` (optax)."""

from __future__ import annotations

import jax
import optax


_NO_DECAY = ("bias", "scale")  # biases (any rank, e.g. per-head [heads, head_dim]) and LayerNorm scales


def decay_mask(params):
  """Weight decay applies to kernels and embeddings, never to biases or LayerNorm parameters."""

  def decays(path, _):
    names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    return names[-1] not in _NO_DECAY

  return jax.tree_util.tree_map_with_path(decays, params)


def create_schedule(cfg, total_steps: int) -> optax.Schedule:
  """Linear warmup to `schedule.peak_lr`, then cosine decay to `peak_lr * schedule.end_factor`."""
  warmup = int(cfg.get("warmup_steps", 0))
  if cfg.get("decay", "cosine") == "constant":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.peak_lr, max(warmup, 1)), optax.constant_schedule(cfg.peak_lr)],
        [max(warmup, 1)]) if warmup else optax.constant_schedule(cfg.peak_lr)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else cfg.peak_lr, peak_value=cfg.peak_lr, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=cfg.peak_lr * cfg.get("end_factor", 0.0))


def create_optimizer(opt_cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
  """`optimizer.name` in {adamw, adam, sgd}; `grad_clip` (global norm, 0 = off) and weight decay.

  AdamW decays decoupled from the gradient. Adam and SGD (Nesterov momentum) add `wd * p` to the gradient
  first, as PyTorch's `Adam` and `SGD` do (coupled L2, what AVT trained with). Biases and LayerNorm are
  not decayed (`decay_mask`) unless `optimizer.decay_all` (AVT decays every parameter alike).
  """
  name = opt_cfg.name.lower()
  wd = float(opt_cfg.get("weight_decay", 0.0))
  mask = None if opt_cfg.get("decay_all", False) else decay_mask
  b1, b2, eps = opt_cfg.get("b1", 0.9), opt_cfg.get("b2", 0.999), opt_cfg.get("eps", 1e-8)
  coupled_l2 = optax.add_decayed_weights(wd, mask=mask) if wd else optax.identity()
  if name == "adamw":
    tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=wd, mask=mask)
  elif name == "adam":
    tx = optax.chain(coupled_l2, optax.adam(schedule, b1=b1, b2=b2, eps=eps))
  elif name == "sgd":
    tx = optax.chain(coupled_l2, optax.sgd(schedule, momentum=opt_cfg.get("momentum", 0.9), nesterov=True))
  else:
    raise ValueError(f"config.optimizer.name: unknown optimizer {opt_cfg.name!r} (adamw, adam, sgd)")
  clip = float(opt_cfg.get("grad_clip", 0.0))
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx
