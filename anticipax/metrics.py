"""Numpy metrics for action anticipation, used in evaluation and tests.

Conventions: ``scores`` are ``[N, C]`` (logits or probabilities; only the order within a
row matters), ``labels`` are ``[N]`` integers and labels ``< 0`` are ignored (padding,
missing annotation). Ties rank the lower class id first, as ``np.argsort(-scores[i],
kind="stable")`` does. Results are fractions in ``[0, 1]`` (percent is the caller's job),
``nan`` when there is nothing to average. Class-mean recall follows RULSTM (Furnari &
Farinella, 2019), the definition used by the EPIC-Kitchens anticipation challenge.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np


def _as_float(x: Any) -> np.ndarray:
  """Returns `x` as float32, or float64 if it already is (bf16 is too coarse)."""
  x = np.asarray(x)
  return x if x.dtype == np.float64 else x.astype(np.float32)


def _check_scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
  scores, labels = np.asarray(scores), np.asarray(labels)
  if scores.ndim != 2:
    raise ValueError(f"scores must be [N, C], got shape {scores.shape}.")
  if labels.shape != scores.shape[:1]:
    raise ValueError(f"labels must be [N] to match scores {scores.shape}, got {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
  if np.isnan(scores).any():
    raise ValueError("scores contain NaN.")
  bad = np.flatnonzero(labels >= scores.shape[1])
  if bad.size:
    raise ValueError(f"label {labels[bad[0]]} at index {bad[0]} is out of range for "
                     f"{scores.shape[1]} classes.")
  return scores, labels


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
  """Per-example top-k hit: is the label among the k highest scores?

  The rank of the label is the number of classes ranked before it,
  ``rank_i = #{c : s_ic > s_iy} + #{c < y : s_ic = s_iy}`` with ``y = labels[i]``,
  i.e. its position in ``argsort(-scores[i], kind="stable")``; the hit is
  ``rank_i < k``. Any ``k >= C`` is a hit for every valid row.

  Args:
    scores: ``[N, C]`` scores.
    labels: ``[N]`` integer labels.
    k: number of top classes, ``>= 1``.

  Returns:
    ``[N]`` bool array, ``False`` where the label is ``< 0``.
  """
  scores, labels = _check_scores_labels(scores, labels)
  if k < 1:
    raise ValueError(f"k must be >= 1, got {k}.")
  valid, y = labels >= 0, np.maximum(labels, 0)
  s_y = np.take_along_axis(scores, y[:, None], axis=1)
  before = (scores > s_y) | ((scores == s_y) & (np.arange(scores.shape[1]) < y[:, None]))
  return valid & (before.sum(axis=1) < k)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
  """Fraction of valid examples whose label is among the top-k scores.

  ``acc@k = (1 / |V|) * sum_{i in V} [rank_i < k]`` with ``V = {i : labels[i] >= 0}``
  and ``rank_i`` as in `topk_correct`.

  Returns:
    Accuracy in ``[0, 1]``, ``nan`` if no label is valid.
  """
  correct = topk_correct(scores, labels, k)
  valid = np.asarray(labels) >= 0
  return float(correct[valid].mean()) if valid.any() else float("nan")


def class_mean_topk_recall(scores: np.ndarray, labels: np.ndarray, k: int = 5,
                           classes: Any = None) -> float:
  """Top-k recall averaged over classes (RULSTM / EPIC-Kitchens definition).

  ``recall_c = #{i : y_i = c, rank_i < k} / #{i : y_i = c}`` and the result is
  ``(1 / |K|) * sum_{c in K} recall_c``, where ``K`` is the set of classes present
  among the valid labels, intersected with `classes` if given: a class absent
  from `labels` has no recall and is not counted. ``k=1`` gives class-mean
  top-1 accuracy.

  Args:
    scores: ``[N, C]`` scores.
    labels: ``[N]`` integer labels.
    k: number of top classes.
    classes: optional class ids to restrict the mean to (e.g. many-shot ones).

  Returns:
    Mean recall in ``[0, 1]``, ``nan`` if no class qualifies.
  """
  correct = topk_correct(scores, labels, k)
  labels = np.asarray(labels)
  valid = labels >= 0
  present = np.unique(labels[valid])
  if classes is not None:
    present = np.intersect1d(present, np.asarray(classes))
  if present.size == 0:
    return float("nan")
  hits = np.bincount(labels[valid], weights=correct[valid], minlength=present.max() + 1)
  counts = np.bincount(labels[valid], minlength=present.max() + 1)
  return float(np.mean(hits[present] / counts[present]))


def class_mean_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
  """Class-mean top-1 accuracy, ``class_mean_topk_recall(scores, labels, k=1)``."""
  return class_mean_topk_recall(scores, labels, k=1)


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
  """Numerically stable ``exp(x - max x) / sum exp(x - max x)`` along `axis`."""
  x = _as_float(logits)
  x = np.exp(x - np.max(x, axis=axis, keepdims=True))
  return x / np.sum(x, axis=axis, keepdims=True)


def marginalize(action_probs: np.ndarray, action_to_part: np.ndarray,
                num_parts: int) -> np.ndarray:
  """Action probabilities -> verb (or noun) probabilities.

  ``p(v | x) = sum_{a : part(a) = v} p(a | x)``.

  Args:
    action_probs: ``[N, A]`` probabilities over actions.
    action_to_part: ``[A]`` integer map from action id to verb (or noun) id.
    num_parts: number of verbs (or nouns); parts no action maps to get 0.

  Returns:
    ``[N, num_parts]`` probabilities.
  """
  probs, part = _as_float(action_probs), np.asarray(action_to_part)
  if probs.ndim != 2 or part.shape != probs.shape[1:]:
    raise ValueError(f"action_probs must be [N, A] and action_to_part [A]; got shapes "
                     f"{probs.shape} and {part.shape}.")
  if not np.issubdtype(part.dtype, np.integer):
    raise ValueError(f"action_to_part must be integers, got dtype {part.dtype}.")
  bad = np.flatnonzero((part < 0) | (part >= num_parts))
  if bad.size:
    raise ValueError(f"action_to_part[{bad[0]}] = {part[bad[0]]} is out of range for "
                     f"{num_parts} parts.")
  one_hot = (part[:, None] == np.arange(num_parts)).astype(probs.dtype)
  return probs @ one_hot


def _check_actions(actions: Any) -> np.ndarray:
  actions = np.asarray(actions)
  if actions.ndim != 2 or actions.shape[1] != 2:
    raise ValueError(f"actions must be [A, 2] (verb, noun), got shape {actions.shape}.")
  return actions


def many_shot_actions(actions: np.ndarray, many_shot_verbs: Any,
                      many_shot_nouns: Any) -> np.ndarray:
  """Ids of many-shot actions: those whose verb OR noun is many-shot (EPIC-55, RULSTM).

  Args:
    actions: ``[A, 2]`` map from action id to ``(verb, noun)``.
    many_shot_verbs: many-shot verb ids.
    many_shot_nouns: many-shot noun ids.

  Returns:
    Sorted ``[M]`` array of action ids.
  """
  actions = _check_actions(actions)
  return np.flatnonzero(np.isin(actions[:, 0], many_shot_verbs)
                        | np.isin(actions[:, 1], many_shot_nouns))


def anticipation_metrics(
    action_logits: np.ndarray, labels: Mapping[str, np.ndarray], actions: np.ndarray | None = None,
    num_verbs: int | None = None, num_nouns: int | None = None,
    many_shot: Mapping[str, Any] | None = None,
    verb_logits: np.ndarray | None = None, noun_logits: np.ndarray | None = None,
    example_subsets: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> dict[str, float]:
  """Action, verb and noun metrics as reported for EPIC-Kitchens anticipation.

  For each part (``action``, ``verb``, ``noun``) with scores: ``{part}/top1``,
  ``{part}/top5`` (`topk_accuracy`), ``{part}/mean_top1`` (`class_mean_accuracy`),
  ``{part}/mean_top5_recall`` and, if ``many_shot[part]`` is given,
  ``{part}/many_shot_mean_top5_recall`` (`class_mean_topk_recall` over those classes).

  Verb scores are `verb_logits` when given; otherwise, if `actions` is given,
  they are ``marginalize(softmax(action_logits), actions[:, 0], num_verbs)``;
  otherwise verb metrics are skipped. Nouns likewise with ``actions[:, 1]``.
  Verb labels are ``labels["verb"]``, or ``actions[labels["action"], 0]`` when
  absent (nouns likewise). Action metrics rank `action_logits` directly.

  Args:
    action_logits: ``[N, A]`` action logits.
    labels: ``[N]`` integer arrays under ``"action"`` and optionally ``"verb"``, ``"noun"``.
    actions: optional ``[A, 2]`` map from action id to ``(verb, noun)``.
    num_verbs: verb count for marginalization; default ``actions[:, 0].max() + 1``.
    num_nouns: likewise for nouns.
    many_shot: optional ``{part: class ids}``; `many_shot_actions` gives the action ids.
    verb_logits: optional ``[N, V]`` scores from a dedicated verb head.
    noun_logits: likewise for nouns.
    example_subsets: optional ``{name: {part: bool [N]}}``, e.g. EK100's unseen participants or tail
      segments; adds ``{part}/{name}_mean_top5_recall`` over the selected rows only (RULSTM).

  Returns:
    Flat dict of Python floats in ``[0, 1]`` (``nan`` where nothing qualifies);
    multiply by 100 for the percentages papers report.
  """
  action_logits = np.asarray(action_logits)
  if "action" not in labels:
    raise ValueError(f"labels must contain 'action'; got keys {sorted(labels)}.")
  scores, part_labels = {"action": action_logits}, {"action": np.asarray(labels["action"])}
  if actions is not None:
    actions = _check_actions(actions)
    if actions.shape[0] != action_logits.shape[-1]:
      raise ValueError(f"actions maps {actions.shape[0]} actions but action_logits "
                       f"has {action_logits.shape[-1]}.")
    _check_scores_labels(action_logits, part_labels["action"])  # before indexing below
    # Only the verb/noun marginals need probabilities; actions rank on logits.
    probs = softmax(action_logits) if verb_logits is None or noun_logits is None else None
  heads = {"verb": (verb_logits, num_verbs), "noun": (noun_logits, num_nouns)}
  for j, (part, (logits, num)) in enumerate(heads.items()):
    if logits is not None:
      scores[part] = np.asarray(logits)
    elif actions is not None:
      num = int(actions[:, j].max()) + 1 if num is None else num
      scores[part] = marginalize(probs, actions[:, j], num)
    elif part in labels:
      raise ValueError(f"labels has '{part}' but neither {part}_logits nor actions is given.")
    else:  # no verb (noun) scores: skip the part
      continue
    if part in labels:
      part_labels[part] = np.asarray(labels[part])
    elif actions is not None:
      a = part_labels["action"]
      part_labels[part] = np.where(a >= 0, actions[np.maximum(a, 0), j], -1)
    else:
      raise ValueError(f"labels needs '{part}': no actions map to derive it from.")

  out = {}
  for part, s in scores.items():
    y = part_labels[part]
    out[f"{part}/top1"] = topk_accuracy(s, y, k=1)
    out[f"{part}/top5"] = topk_accuracy(s, y, k=5)
    out[f"{part}/mean_top1"] = class_mean_accuracy(s, y)
    out[f"{part}/mean_top5_recall"] = class_mean_topk_recall(s, y, k=5)
    if many_shot is not None and part in many_shot:
      out[f"{part}/many_shot_mean_top5_recall"] = class_mean_topk_recall(
          s, y, k=5, classes=many_shot[part])
    for name, masks in (example_subsets or {}).items():
      if part in masks:
        rows = np.asarray(masks[part], bool)
        if rows.shape != y.shape:
          raise ValueError(f"example subset {name!r}/{part} has shape {rows.shape}, labels {y.shape}.")
        out[f"{part}/{name}_mean_top5_recall"] = class_mean_topk_recall(s[rows], y[rows], k=5)
  return out
