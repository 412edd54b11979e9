"""Tests for anticipax.export: the two EPIC-Kitchens anticipation challenge formats, field by field.

Written from the public format descriptions (DATA_FORMATS.md section 4; the EK100 evaluator's checks:
version "0.2", challenge, sls_pt / sls_tl / sls_td integers in 0..5, every verb and noun scored, exactly
100 actions keyed "verb,noun"); the official evaluator is not a dependency.
"""

import json

import numpy as np
import pytest

from anticipax import export

NUM_VERBS, NUM_NOUNS = 4, 5
ACTIONS = np.array([(v, n) for v in range(NUM_VERBS) for n in range(NUM_NOUNS)])  # 20 actions
LEVELS = {"sls_pt": 1, "sls_tl": 4, "sls_td": 3}


def _submission(levels=None, uids=("12", "7"), top_actions=10):
  logits = np.random.default_rng(0).normal(size=(len(uids), len(ACTIONS)))
  return export.epic_submission(list(uids), logits, ACTIONS, num_verbs=NUM_VERBS, num_nouns=NUM_NOUNS,
                                top_actions=top_actions, supervision_levels=levels)


def _check_results(results, uids, top_actions):
  assert list(results) == list(uids)
  for r in results.values():
    assert set(r) == {"verb", "noun", "action"}
    assert set(r["verb"]) == {str(v) for v in range(NUM_VERBS)}
    assert set(r["noun"]) == {str(n) for n in range(NUM_NOUNS)}
    assert len(r["action"]) == top_actions
    for key in r["action"]:
      verb, noun = (int(x) for x in key.split(","))
      assert 0 <= verb < NUM_VERBS and 0 <= noun < NUM_NOUNS
    scores = [*r["verb"].values(), *r["noun"].values(), *r["action"].values()]
    assert all(type(x) is float and 0.0 <= x <= 1.0 for x in scores)
    assert sum(r["verb"].values()) == pytest.approx(1.0) and sum(r["noun"].values()) == pytest.approx(1.0)
    ranked = list(r["action"].values())
    assert ranked == sorted(ranked, reverse=True)  # the most probable actions, best first


def test_ek55_submission_is_version_0_1_without_supervision_levels():
  sub = json.loads(json.dumps(_submission()))  # survives JSON as written
  assert set(sub) == {"version", "challenge", "results"}
  assert sub["version"] == "0.1" and sub["challenge"] == "action_anticipation"
  _check_results(sub["results"], ["12", "7"], 10)


def test_ek100_submission_is_version_0_2_with_the_three_supervision_levels():
  sub = json.loads(json.dumps(_submission(LEVELS, uids=("P01_11_0", "P01_11_1"), top_actions=100)))
  assert set(sub) == {"version", "challenge", "sls_pt", "sls_tl", "sls_td", "results"}
  assert sub["version"] == "0.2" and sub["challenge"] == "action_anticipation"
  assert (sub["sls_pt"], sub["sls_tl"], sub["sls_td"]) == (1, 4, 3)
  assert all(type(sub[k]) is int for k in export.SUPERVISION_LEVELS)
  # Fewer actions than the challenge's 100 exist here: every one is listed.
  _check_results(sub["results"], ["P01_11_0", "P01_11_1"], len(ACTIONS))


@pytest.mark.parametrize("levels, message", [
    ({"sls_pt": 1, "sls_tl": 4}, "expected exactly sls_pt, sls_tl, sls_td, got sls_pt, sls_tl"),
    ({**LEVELS, "sls_xx": 0}, "expected exactly"),
    ({}, "got none"),
    ({**LEVELS, "sls_td": 6}, r"supervision_levels.sls_td: 6 is not an integer level 0..5"),
    ({**LEVELS, "sls_pt": -1}, r"sls_pt: -1 is not"),
    ({**LEVELS, "sls_tl": "4"}, r"sls_tl: '4' is not"),
    ({**LEVELS, "sls_tl": 2.0}, r"sls_tl: 2.0 is not"),
    ({**LEVELS, "sls_tl": True}, r"sls_tl: True is not"),
])
def test_invalid_supervision_levels_are_refused_naming_the_level(levels, message):
  with pytest.raises(ValueError, match=message):
    _submission(levels)


def test_mismatched_or_duplicate_uids_are_refused():
  with pytest.raises(ValueError, match="3 uids for 2 rows"):
    export.epic_submission(["1", "2", "3"], np.zeros((2, len(ACTIONS))), ACTIONS, num_verbs=NUM_VERBS,
                           num_nouns=NUM_NOUNS)
  with pytest.raises(ValueError, match="duplicate uids"):
    _submission(uids=("5", "5"))
