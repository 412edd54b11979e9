"""Trivial next-action predictors fitted on the training histories, to put a text teacher in context.

A teacher that reads the previous actions is only worth distilling if it knows more than what the
label statistics already say. Two references, fitted on the same training examples the teacher sees
(the history of previous actions and the next action):

- prior:  always the training class frequencies, p(a) = n_a / N;
- bigram: the most frequent next action after the previous one,
          p(a | b) = (n_{b,a} + alpha p(a)) / (n_b + alpha), b = the last action of the history
          (the prior when the history is empty). The small alpha only breaks ties (and fills the top-5)
          by class frequency; among equal counts the lower class id wins, as in every top-k here.

Both give log-probabilities, scored by the dataset's own metrics (`tasks.anticipation.anticipation_metrics`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_ALPHA = 1e-3
_FLOOR = 1e-12  # log(0) guard: classes never seen get a finite, lowest score


def _read(source: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """(`keys` as int arrays, last history action or -1) over every example, each read once."""
  values: dict[str, list[int]] = {k: [] for k in keys}
  last = []
  for i in range(len(source)):
    example = source[i]
    history = np.asarray(example["history"]).reshape(-1)
    last.append(int(history[-1]) if len(history) else -1)
    for k in keys:
      values[k].append(int(example[k]))
  return {k: np.asarray(v, np.int64) for k, v in values.items()}, np.asarray(last, np.int64)


class HistoryBaselines:
  """Class prior and bigram transition counts of a training split."""

  def __init__(self, train: Sequence[Mapping[str, Any]], num_classes: int):
    values, last = _read(train, ("action",))
    labels = values["action"]
    keep = labels >= 0
    labels, last = labels[keep], last[keep]
    self.num_classes = num_classes
    self.counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    self.prior = self.counts / max(self.counts.sum(), 1.0)
    self.transitions = np.zeros((num_classes, num_classes), np.float64)
    seen = last >= 0
    np.add.at(self.transitions, (last[seen], labels[seen]), 1.0)

  def prior_logits(self, num_examples: int) -> np.ndarray:
    """[N, C] log p(a), the same row for every example."""
    return np.broadcast_to(np.log(self.prior + _FLOOR), (num_examples, self.num_classes)).astype(np.float32)

  def bigram_logits(self, last: np.ndarray) -> np.ndarray:
    """[N, C] log p(a | previous action); rows with no previous action (-1) get the prior."""
    rows = self.transitions[np.maximum(last, 0)]
    probs = (rows + _ALPHA * self.prior) / (rows.sum(-1, keepdims=True) + _ALPHA)
    probs = np.where((last >= 0)[:, None], probs, self.prior)
    return np.log(probs + _FLOOR).astype(np.float32)


def evaluate(splits) -> dict[str, dict[str, float]]:
  """Scores the prior and the bigram predictor on `splits.eval` with the dataset's metrics.

  Args:
    splits: `pipeline.Splits` of an anticipation dataset (examples carry `history`, `action`, `verb`,
      `noun` and the dataset's evaluation-subset flags).

  Returns:
    {"prior": metrics, "bigram": metrics}, fractions in [0, 1] as the trainer reports them.
  """
  from anticipax.next_action.task import anticipation_metrics  # pylint: disable=g-import-not-at-top
  info = splits.info
  model = HistoryBaselines(splits.train, info.num_classes)
  labels, last = _read(splits.eval, ("action", "verb", "noun", *info.eval_flags))
  return {"prior": anticipation_metrics(info, {"logits": model.prior_logits(len(last)), **labels}),
          "bigram": anticipation_metrics(info, {"logits": model.bigram_logits(last), **labels})}
