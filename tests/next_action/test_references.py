"""The teacher's reference predictors (class prior, bigram) on hand-counted histories."""

import numpy as np

from anticipax.data.pipeline import DatasetInfo, Splits
from anticipax.next_action import references as baselines


def _examples(rows):
  """(history, action) pairs -> example dicts; verb = action // 2, noun = action % 2."""
  return [{"history": np.asarray(h, np.int32), "action": a, "verb": a // 2, "noun": a % 2} for h, a in rows]


# 4 actions (verb, noun) = (a // 2, a % 2). Training transitions after the last history action:
#   after 0: 1, 1, 2   -> bigram says 1
#   after 1: 3         -> 3
#   after 2: 0, 3      -> tie between 0 and 3: broken by the prior (3 is more frequent overall)
#   empty history: 3   -> (counts only towards the prior)
# Class counts: 0:1, 1:2, 2:1, 3:3 -> prior order 3, 1, then 0 and 2 (equal: lower id first).
TRAIN = _examples([([5, 0], 1), ([0], 1), ([0], 2), ([1], 3), ([2], 0), ([7, 2], 3), ([], 3)])
EVAL = _examples([([0], 1), ([1], 2), ([2], 3), ([3], 0), ([], 3)])
INFO = DatasetInfo(num_classes=4, num_verbs=2, num_nouns=2, actions=np.array([[0, 0], [0, 1], [1, 0], [1, 1]]),
                   feature_dim=1, num_frames=1)


def test_counts_and_predictions_match_hand_counts():
  model = baselines.HistoryBaselines(TRAIN, 4)
  np.testing.assert_allclose(model.prior, [1 / 7, 2 / 7, 1 / 7, 3 / 7])
  assert model.transitions[0].tolist() == [0, 2, 1, 0] and model.transitions[2].tolist() == [1, 0, 0, 1]
  last = np.array([0, 1, 2, 3, -1])
  assert np.argmax(model.bigram_logits(last), -1).tolist() == [1, 3, 3, 3, 3]
  # Previous action 3 was never seen before a next action: the prior decides (3); empty history too.
  prior_rank = np.argsort(-model.prior_logits(1)[0], kind="stable").tolist()
  assert prior_rank == [3, 1, 0, 2]
  # The bigram's top-5 is filled by the prior after the observed successors: after 0 -> 1, 2, then 3, 0.
  assert np.argsort(-model.bigram_logits(np.array([0]))[0], kind="stable").tolist() == [1, 2, 3, 0]


def test_evaluate_scores_both_predictors_with_the_dataset_metrics():
  result = baselines.evaluate(Splits(TRAIN, EVAL, INFO))
  # Bigram predicts 1, 3, 3, 3, 3 for labels 1, 2, 3, 0, 3: hits on examples 0, 2, 4 -> top-1 3/5.
  assert result["bigram"]["action/top1"] == 3 / 5
  # Class-mean top-1 over the classes present in eval (0, 1, 2, 3): recalls 0, 1, 0, 1 -> 0.5.
  assert result["bigram"]["action/mean_top1"] == 0.5
  # The prior always says 3: right on the two examples labelled 3.
  assert result["prior"]["action/top1"] == 2 / 5 and result["prior"]["action/mean_top1"] == 0.25
