"""The seeded comparison: paired t-test against a hand computation, table and verdict."""

import json
import math

import numpy as np
import pytest

from anticipax import compare


def test_paired_t_test_matches_hand_computation():
  # d = (0.03, 0.01, 0.02): mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3 = 3.4641,
  # df 2: two-sided p = 2 (1 - F(t)) with F the t(2) CDF, F(t) = 1/2 + t / (2 sqrt(t^2 + 2)).
  test = compare.paired_t_test([0.40, 0.50, 0.45], [0.43, 0.51, 0.47])
  t = 2 * math.sqrt(3)
  p = 2 * (1 - (0.5 + t / (2 * math.sqrt(t * t + 2))))
  assert test.n == 3
  assert test.mean_diff == pytest.approx(0.02)
  assert test.t == pytest.approx(t, rel=1e-9)
  assert test.p == pytest.approx(p, rel=1e-9)  # 0.0742
  # Two seeds: df 1, t(1) is Cauchy: p = 1 - 2 atan(|t|) / pi. d = (0.02, 0.04): t = 0.03 / (0.01414 / sqrt 2) = 3.
  two = compare.paired_t_test([0.1, 0.2], [0.12, 0.24])
  assert two.t == pytest.approx(3.0) and two.p == pytest.approx(1 - 2 * math.atan(3.0) / math.pi)


def test_paired_t_test_degenerate_cases():
  assert math.isnan(compare.paired_t_test([0.1], [0.2]).p)  # one seed: no test
  same = compare.paired_t_test([0.25, 0.5], [0.5, 0.75])  # identical differences: exact
  assert same.p == 0.0 and same.t == math.inf
  assert compare.paired_t_test([0.1, 0.2], [0.1, 0.2]).p == 1.0
  with pytest.raises(ValueError):
    compare.paired_t_test([0.1, 0.2], [0.1])


def _result(top1, top5):
  return {"step": 10, "eval/action/mean_top1": top1, "eval/action/top5": top5, "eval/k1/bleu4": 1.0}


def test_compare_writes_table_json_and_verdict(tmp_path):
  arms = {"baseline": [_result(0.40, 0.8), _result(0.50, 0.9), _result(0.45, 0.85)],
          "student": [_result(0.43, 0.8), _result(0.51, 0.9), _result(0.47, 0.85)]}
  refs = {"teacher": _result(0.6, 0.95), "prior": {"action/mean_top1": 0.01, "action/top5": 0.05}}
  summary = compare.compare(arms, refs, "action/mean_top1")
  row = summary["rows"]["action/mean_top1"]
  assert row["baseline"]["mean"] == pytest.approx(0.45) and row["student"]["mean"] == pytest.approx(0.47)
  assert row["baseline"]["std"] == pytest.approx(0.05)
  assert row["relative_gain"] == pytest.approx(0.02 / 0.45)
  assert row["teacher"]["value"] == 0.6 and row["prior"]["value"] == 0.01
  assert set(summary["rows"]) == {"action/mean_top1", "action/top5"}  # headline entries, not the per-k ones
  assert summary["verdict"].startswith("Distillation raises action/mean_top1 from 45.00 ± 5.00 % to 47.00")
  assert "+4.4 % relative" in summary["verdict"] and "not significant" in summary["verdict"]
  compare.write(summary, str(tmp_path))
  loaded = json.loads((tmp_path / "comparison.json").read_text())
  assert loaded["rows"]["action/mean_top1"]["paired_t"]["p"] == pytest.approx(row["paired_t"]["p"])
  table = (tmp_path / "comparison.md").read_text()
  assert "| action/mean_top1 | 60.00 | 1.00 | 45.00 ± 5.00 | 47.00 ± 4.00 | +4.4 % | 0.0742 |" in table
  assert summary["verdict"] in table


def test_one_seed_says_no_test():
  summary = compare.compare({"baseline": [_result(0.4, 0.8)], "student": [_result(0.3, 0.8)]}, {},
                            "action/mean_top1")
  assert "lowers" in summary["verdict"] and "no test" in summary["verdict"]
  assert np.isnan(summary["rows"]["action/mean_top1"]["paired_t"]["p"])
