"""Baseline vs distilled student over several seeds: mean ± std per arm, relative gain, paired test.

A gain of a few percent is within seed noise, so a claim needs several seeds and a test. Both arms run
with the same seeds (same data order and initialisation), so the comparison is paired: with
d_s = distilled_s - baseline_s over the N seeds,

  t = mean(d) / (std(d) / sqrt(N)),  std with N - 1 degrees of freedom,
  p = 2 * P(T_{N-1} > |t|)  (two-sided, Student's t with N - 1 degrees of freedom).

With N = 1 there is no test (p is NaN); when every d_s is equal and nonzero the difference is exact (p = 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import json
import math
import re

import numpy as np

from anticipax import paths


@dataclasses.dataclass(frozen=True)
class PairedTest:
  """Paired t-test of `treated - control` over seeds."""

  n: int
  mean_diff: float
  t: float
  p: float


def paired_t_test(control: Sequence[float], treated: Sequence[float]) -> PairedTest:
  """Two-sided paired t-test (see the module docstring for the formula)."""
  a, b = np.asarray(control, np.float64), np.asarray(treated, np.float64)
  if a.shape != b.shape or a.ndim != 1:
    raise ValueError(f"paired samples must be equal-length vectors, got {a.shape} and {b.shape}")
  d = b - a
  n = len(d)
  mean = float(d.mean()) if n else math.nan
  if n < 2:
    return PairedTest(n, mean, math.nan, math.nan)
  sd = float(d.std(ddof=1))
  if sd == 0.0:
    return PairedTest(n, mean, math.copysign(math.inf, mean) if mean else math.nan, 0.0 if mean else 1.0)
  t = mean / (sd / math.sqrt(n))
  # Imported here: scipy.stats takes most of a second to import, and most commands never test.
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return PairedTest(n, mean, t, float(2 * stats.t.sf(abs(t), n - 1)))


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _dataset_metrics(result: Mapping[str, float]) -> dict[str, float]:
  """The headline entries of a trainer result: validation's `eval/...` without the prefix (`<part>/<metric>`
  for anticipation, `<metric>` and `pooled/<metric>` for captions) and the test split's as `test/...`; not
  the per-k breakdown (`k<k>/<metric>`)."""
  out = {}
  for k, v in result.items():
    split, _, name = k.partition("/")
    if split in ("eval", "test") and 1 <= name.count("/") + 1 <= 2 and not re.match(r"k\d+/", name):
      out[name if split == "eval" else k] = float(v)
  return out


def compare(arms: Mapping[str, Sequence[Mapping[str, float]]], references: Mapping[str, Mapping[str, float]],
            metric: str, *, control: str = "baseline", treated: str = "student") -> dict:
  """Summarises seeded runs.

  Args:
    arms: arm name -> one trainer result per seed (same seed order in every arm), e.g. baseline, student.
    references: single-run columns shown beside them (teacher, prior, bigram): name -> result.
    metric: the metric of the verdict, e.g. "action/mean_top1".
    control / treated: the two arms of the paired test.

  Returns:
    A JSON-able dict: per metric and column the mean (and std over seeds), the relative gain of the
    treated mean over the control mean, the paired test of each metric, and a one-line `verdict`.
  """
  per_arm = {name: [_dataset_metrics(r) for r in runs] for name, runs in arms.items()}
  refs = {name: _dataset_metrics(r) if any(k.startswith(("eval/", "test/")) for k in r) else dict(r)
          for name, r in references.items()}
  keys = sorted({k for runs in per_arm.values() for r in runs for k in r})
  rows = {}
  for k in keys:
    row = {name: {"value": r.get(k, math.nan)} for name, r in refs.items()}
    for name, runs in per_arm.items():
      mean, std = _mean_std([r.get(k, math.nan) for r in runs])
      row[name] = {"mean": mean, "std": std, "seeds": [r.get(k, math.nan) for r in runs]}
    if control in per_arm and treated in per_arm:
      test = paired_t_test(row[control]["seeds"], row[treated]["seeds"])
      base = row[control]["mean"]
      row["relative_gain"] = (row[treated]["mean"] - base) / base if base else math.nan
      row["paired_t"] = dataclasses.asdict(test)
    rows[k] = row
  out = {"metric": metric, "num_seeds": max((len(r) for r in per_arm.values()), default=0),
         "control": control, "treated": treated, "rows": rows}
  out["verdict"] = verdict(out)
  return out


def verdict(summary: Mapping) -> str:
  """One line: the verdict metric's change, its relative size and whether the paired test supports it."""
  metric, row = summary["metric"], summary["rows"].get(summary["metric"])
  control, treated = summary["control"], summary["treated"]
  if row is None or "paired_t" not in row:
    return f"No {control}/{treated} comparison of {metric}."
  c, t, test = row[control], row[treated], row["paired_t"]
  change = "raises" if t["mean"] > c["mean"] else "lowers" if t["mean"] < c["mean"] else "leaves"
  text = (f"Distillation {change} {metric} from {100 * c['mean']:.2f} ± {100 * c['std']:.2f} % to "
          f"{100 * t['mean']:.2f} ± {100 * t['std']:.2f} % ({100 * row['relative_gain']:+.1f} % relative, "
          f"mean ± std over {test['n']} seeds)")
  if test["n"] < 2:
    return text + "; one seed: no test, run more seeds (--config.seeds=N) before drawing a conclusion."
  significant = test["p"] < 0.05
  return text + (f"; paired t-test p = {test['p']:.3g}: "
                 + ("significant at the 5 % level." if significant else "not significant at the 5 % level."))


def format_table(summary: Mapping) -> str:
  """The comparison as a Markdown table (percent)."""
  rows = summary["rows"]
  if not rows:
    return summary["verdict"]
  first = next(iter(rows.values()))
  columns = [c for c in first if c not in ("relative_gain", "paired_t")]
  has_test = "paired_t" in first
  header = ["metric", *columns] + (["gain", "p"] if has_test else [])
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for k, row in rows.items():
    cells = [k]
    for c in columns:
      v = row[c]
      cells.append(f"{100 * v['value']:.2f}" if "value" in v else
                   f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}" if summary["num_seeds"] > 1 else
                   f"{100 * v['mean']:.2f}")
    if has_test:
      cells += [f"{100 * row['relative_gain']:+.1f} %", f"{row['paired_t']['p']:.3g}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + f"\n\n{summary['verdict']}\n"


def write(summary: Mapping, workdir: str) -> None:
  """`comparison.json` and `comparison.md` in `workdir`."""
  workdir = paths.path(workdir)
  paths.write_text(workdir / "comparison.json", json.dumps(summary, indent=2, sort_keys=True, default=float))
  paths.write_text(workdir / "comparison.md", format_table(summary))
