"""Tests for anticipax.metrics against hand-computed values."""

import math

import numpy as np
import pytest

from anticipax import metrics

# 5 examples x 4 classes. Ranks of the label (ties -> lower class id first):
#   r0: label 1 has the top score                          -> rank 0
#   r1: label 2 is beaten by 0.4 and 0.3                    -> rank 2
#   r2: label 1 ties class 0 at 0.2 (0 first), 0.5 above    -> rank 2
#   r3: all equal, label 3 comes after classes 0, 1, 2      -> rank 3
#   r4: label 0 has the top score                           -> rank 0
SCORES = np.array([
    [0.1, 0.5, 0.3, 0.1],
    [0.4, 0.3, 0.2, 0.1],
    [0.2, 0.2, 0.5, 0.1],
    [0.25, 0.25, 0.25, 0.25],
    [0.7, 0.1, 0.1, 0.1],
])
LABELS = np.array([1, 2, 1, 3, 0])


@pytest.mark.parametrize("k, expected", [
    (1, [True, False, False, False, True]),
    (2, [True, False, False, False, True]),
    (3, [True, True, True, False, True]),
    (4, [True, True, True, True, True]),
    (9, [True, True, True, True, True]),
])
def test_topk_correct(k, expected):
  np.testing.assert_array_equal(metrics.topk_correct(SCORES, LABELS, k), expected)


def test_ties_break_towards_lower_class_id():
  flat = np.zeros((4, 4))
  # Label c has rank c in an all-equal row.
  np.testing.assert_array_equal(
      metrics.topk_correct(flat, np.array([0, 1, 2, 3]), k=2), [True, True, False, False])


@pytest.mark.parametrize("k, expected", [(1, 2 / 5), (3, 4 / 5), (4, 1.0)])
def test_topk_accuracy(k, expected):
  acc = metrics.topk_accuracy(SCORES, LABELS, k)
  assert isinstance(acc, float)
  assert acc == pytest.approx(expected)


def test_class_mean_differs_from_accuracy_when_imbalanced():
  scores = np.tile([0.9, 0.05, 0.03, 0.02], (6, 1))
  labels = np.array([0, 0, 0, 0, 0, 1])
  # Five hits of class 0, one miss of class 1: 5/6 overall, (1 + 0) / 2 per class.
  # Classes 2 and 3 never occur, so they are not averaged in (that would give 0.25).
  assert metrics.topk_accuracy(scores, labels, k=1) == pytest.approx(5 / 6)
  assert metrics.class_mean_accuracy(scores, labels) == pytest.approx(0.5)
  assert metrics.class_mean_topk_recall(scores, labels, k=1) == pytest.approx(0.5)
  # Class 1 is second, so top-2 recall is 1 for both classes.
  assert metrics.class_mean_topk_recall(scores, labels, k=2) == pytest.approx(1.0)


def test_class_mean_topk_recall_on_shared_case():
  # Top-1 hits per class: c0 1/1, c1 1/2 (r0 yes, r2 no), c2 0/1, c3 0/1.
  assert metrics.class_mean_accuracy(SCORES, LABELS) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
  # Top-3 hits per class: c0 1, c1 2/2, c2 1, c3 0.
  assert metrics.class_mean_topk_recall(SCORES, LABELS, k=3) == pytest.approx(3 / 4)


@pytest.mark.parametrize("classes, expected", [
    ([1, 3], (1 + 0) / 2),  # top-3 recalls of c1 and c3
    ([0, 5], 1.0),          # 5 never occurs: only c0 counts
    ([2], 1.0),
])
def test_class_mean_topk_recall_restricted_to_classes(classes, expected):
  recall = metrics.class_mean_topk_recall(SCORES, LABELS, k=3, classes=classes)
  assert recall == pytest.approx(expected)


@pytest.mark.parametrize("classes", [[], [7]])
def test_class_mean_topk_recall_is_nan_without_qualifying_class(classes):
  assert math.isnan(metrics.class_mean_topk_recall(SCORES, LABELS, k=3, classes=classes))


def test_negative_labels_are_ignored():
  labels = np.array([1, -1, 1, 3, 0])  # r1 (the only class-2 example) dropped
  # Top-1 hits among r0, r2, r3, r4: r0 and r4 -> 2/4.
  assert metrics.topk_accuracy(SCORES, labels, k=1) == pytest.approx(0.5)
  np.testing.assert_array_equal(
      metrics.topk_correct(SCORES, labels, k=4), [True, False, True, True, True])
  # Per class: c0 1, c1 1/2, c3 0; class 2 no longer occurs.
  assert metrics.class_mean_accuracy(SCORES, labels) == pytest.approx(0.5)
  all_ignored = np.full(5, -1)
  assert math.isnan(metrics.topk_accuracy(SCORES, all_ignored))
  assert math.isnan(metrics.class_mean_accuracy(SCORES, all_ignored))


def test_class_mean_topk_recall_matches_per_class_loop():
  rng = np.random.default_rng(0)
  n, c = 300, 12
  scores = rng.integers(0, 4, size=(n, c)).astype(np.float32)  # many ties
  labels = rng.integers(-1, c - 3, size=n)  # some ignored, classes 9..11 absent
  for k in (1, 3, 5):
    for classes in (None, [0, 2, 4, 10, 11]):
      recalls = []
      for cls in range(c):
        rows = np.flatnonzero(labels == cls)
        if rows.size == 0 or (classes is not None and cls not in classes):
          continue
        top = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
        recalls.append(np.mean([cls in t for t in top]))
      got = metrics.class_mean_topk_recall(scores, labels, k=k, classes=classes)
      assert got == pytest.approx(np.mean(recalls))


def test_softmax():
  np.testing.assert_allclose(metrics.softmax(np.array([0.0, np.log(3.0)])), [0.25, 0.75])
  # exp(1000) overflows without the max shift.
  np.testing.assert_allclose(metrics.softmax(np.array([[1000.0, 1000.0]])), [[0.5, 0.5]])
  np.testing.assert_allclose(
      metrics.softmax(np.array([[0.0], [np.log(3.0)]]), axis=0), [[0.25], [0.75]])


# action -> (verb, noun): a0 (0,0), a1 (0,1), a2 (1,1), a3 (2,0), a4 (2,2).
ACTIONS = np.array([[0, 0], [0, 1], [1, 1], [2, 0], [2, 2]])


def test_marginalize_sums_actions_sharing_a_verb_or_noun():
  probs = np.array([[0.1, 0.2, 0.3, 0.15, 0.25],
                    [0.5, 0.0, 0.0, 0.5, 0.0]])
  # verbs: v0 = a0 + a1, v1 = a2, v2 = a3 + a4; v3 has no action.
  np.testing.assert_allclose(
      metrics.marginalize(probs, ACTIONS[:, 0], 4), [[0.3, 0.3, 0.4, 0.0], [0.5, 0.0, 0.5, 0.0]])
  # nouns: n0 = a0 + a3, n1 = a1 + a2, n2 = a4.
  np.testing.assert_allclose(
      metrics.marginalize(probs, ACTIONS[:, 1], 3), [[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("verbs, nouns, expected", [
    ([1], [2], [2, 4]),  # a2 by its verb, a4 by its noun
    ([0], [], [0, 1]),
    ([], [0], [0, 3]),
    ([2], [0], [0, 3, 4]),  # a3 has both; counted once
    ([], [], []),
])
def test_many_shot_actions_is_verb_or_noun(verbs, nouns, expected):
  np.testing.assert_array_equal(metrics.many_shot_actions(ACTIONS, verbs, nouns), expected)


def test_anticipation_metrics_end_to_end():
  probs = np.array([
      [0.05, 0.2, 0.35, 0.15, 0.25],  # label a2: rank 0. verbs (.25,.35,.4) nouns (.2,.55,.25)
      [0.6, 0.1, 0.1, 0.1, 0.1],      # label a3: rank 3. verbs (.7,.1,.2)   nouns (.7,.2,.1)
      [0.1, 0.1, 0.1, 0.1, 0.6],      # label a4: rank 0. verbs (.2,.1,.7)   nouns (.2,.2,.6)
      [0.2, 0.2, 0.2, 0.2, 0.2],      # ignored
  ])
  labels = {"action": np.array([2, 3, 4, -1])}  # verbs/nouns derived: v [1,2,2], n [1,0,2]
  out = metrics.anticipation_metrics(
      np.log(probs), labels, actions=ACTIONS,
      many_shot={"action": [2, 3], "verb": [0]})
  expected = {
      "action/top1": 2 / 3, "action/top5": 1.0,
      "action/mean_top1": 2 / 3,  # a2 1, a3 0, a4 1
      "action/mean_top5_recall": 1.0, "action/many_shot_mean_top5_recall": 1.0,
      "verb/top1": 1 / 3,  # v1 is 2nd in r0, v2 2nd in r1, 1st in r2
      "verb/top5": 1.0,
      "verb/mean_top1": (0 + 0.5) / 2,  # v1 0/1, v2 1/2
      "verb/mean_top5_recall": 1.0,
      "verb/many_shot_mean_top5_recall": float("nan"),  # v0 never occurs
      "noun/top1": 1.0, "noun/top5": 1.0, "noun/mean_top1": 1.0, "noun/mean_top5_recall": 1.0,
  }
  assert out.keys() == expected.keys()
  for key, value in expected.items():
    assert isinstance(out[key], float), key
    np.testing.assert_allclose(out[key], value, err_msg=key)

  # A dedicated verb head and explicit verb labels replace the marginals.
  verb_logits = np.array([[0.0, 1.0, 0.0]] * 4)
  labels = {"action": np.array([2, 3, 4, -1]), "verb": np.array([1, 1, 0, -1])}
  out = metrics.anticipation_metrics(
      np.log(probs), labels, actions=ACTIONS, verb_logits=verb_logits)
  assert out["verb/top1"] == pytest.approx(2 / 3)
  assert out["verb/mean_top1"] == pytest.approx((1 + 0) / 2)


def test_anticipation_metrics_without_actions_reports_action_only():
  out = metrics.anticipation_metrics(SCORES, {"action": LABELS})
  assert sorted(out) == [
      "action/mean_top1", "action/mean_top5_recall", "action/top1", "action/top5"]
  assert out["action/top1"] == pytest.approx(0.4)


@pytest.mark.parametrize("fn, match", [
    (lambda: metrics.topk_accuracy(SCORES[0], LABELS), r"scores must be \[N, C\]"),
    (lambda: metrics.topk_accuracy(SCORES, LABELS[:3]), r"labels must be \[N\]"),
    (lambda: metrics.topk_accuracy(SCORES, np.array([0, 4, 1, 2, 0])),
     "label 4 at index 1 is out of range for 4 classes"),
    (lambda: metrics.topk_accuracy(SCORES, LABELS.astype(float)), "must be integers"),
    (lambda: metrics.topk_accuracy(np.full((5, 4), np.nan), LABELS), "NaN"),
    (lambda: metrics.topk_accuracy(SCORES, LABELS, k=0), "k must be >= 1"),
    (lambda: metrics.marginalize(np.ones((2, 5)), np.array([0, 1, 5, 0, 1]), 3),
     r"action_to_part\[2\] = 5 is out of range for 3 parts"),
    (lambda: metrics.marginalize(np.ones((2, 5)), ACTIONS[:4, 0], 3), "shapes"),
    (lambda: metrics.many_shot_actions(ACTIONS[:, 0], [0], [0]), r"actions must be \[A, 2\]"),
    (lambda: metrics.anticipation_metrics(SCORES, {"verb": LABELS}), "must contain 'action'"),
    (lambda: metrics.anticipation_metrics(SCORES, {"action": LABELS}, actions=ACTIONS),
     "actions maps 5 actions but action_logits has 4"),
    (lambda: metrics.anticipation_metrics(SCORES, {"action": LABELS, "verb": LABELS}),
     "neither verb_logits nor actions"),
])
def test_errors(fn, match):
  with pytest.raises(ValueError, match=match):
    fn()
