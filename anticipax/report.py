"""One table of a sweep's results: `python -m anticipax.report WORKDIR [WORKDIR...]`.

    python -m anticipax.report /tmp/anticipax_sweeps/demo

Each WORKDIR is a trial's workdir (holding `config.json`, and `metrics.json` once it finished) or a
directory of trials, e.g. an experiment of `anticipax.launch`, whose `sweep.json` also names the trials
that never started. Rows are trials, best first by the config's `eval.best_metric` (or `--sort_by`);
columns are the config fields that differ between trials, the step reached and the eval metrics in
percent (losses and perplexities as plain numbers). Trials without metrics are listed after the others
with what is known about them; a trial that a local launch saw fail (its `status.json`: exit status and
last stderr line) as `failed` with that line. Paths may be local or `gs://`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import re
from typing import Any, Sequence

from absl import app
from absl import flags

from anticipax import checkpointing
from anticipax import paths

MANIFEST = "sweep.json"  # written by anticipax.launch
STATUS = "status.json"  # a trial's exit status, written by anticipax.launch's local executor
_PLAIN = ("loss", "perplexity", "nll")  # metric names that are not fractions


@dataclasses.dataclass
class TrialResult:
  """What a trial's workdir says about it."""
  label: str
  config: dict[str, Any] | None = None  # flattened config.json
  metrics: dict[str, Any] | None = None  # metrics.json
  overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # from sweep.json
  status: str = ""


def _read_json(path) -> tuple[Any, str]:
  """(contents, "") or (None, why not)."""
  if not path.exists():
    return None, f"no {path.name}"
  try:
    return json.loads(path.read_text()), ""
  except (ValueError, OSError) as e:
    return None, f"unreadable {path.name} ({e})"


def _failure(status: Any) -> str | None:
  """"failed (exit N): <last stderr line>" if the launcher saw the trial exit non-zero, else None."""
  if not isinstance(status, dict) or not status.get("exit_code"):
    return None
  return f"failed (exit {status['exit_code']}): {status.get('last_error') or '(no message)'}"


def read_trial(workdir: str | os.PathLike, label: str | None = None,
               overrides: dict[str, Any] | None = None) -> TrialResult:
  """Reads one trial's config.json, metrics.json and status.json; never raises for a missing or broken
  file."""
  path = paths.path(workdir)
  result = TrialResult(label or path.name, overrides=dict(overrides or {}))
  if not path.is_dir():
    result.status = "not started"
    return result
  config, config_error = _read_json(path / checkpointing.CONFIG_FILE)
  metrics, metrics_error = _read_json(path / checkpointing.METRICS_FILE)
  status, _ = _read_json(path / STATUS)
  result.config = checkpointing.flatten(config) if isinstance(config, dict) else None
  result.metrics = metrics if isinstance(metrics, dict) else None
  steps = (result.config or {}).get("train.steps")
  failure = _failure(status)
  if failure:
    result.status = failure
  elif result.metrics is not None:
    step = result.metrics.get("step")
    result.status = f"stopped at {step}/{steps}" if steps and step is not None and step < steps else "done"
  elif metrics_error.startswith("unreadable"):
    result.status = metrics_error
  elif result.config is None:
    result.status = "not started" if not config_error.startswith("unreadable") else config_error
  else:
    checkpoint = checkpointing.latest_step(path)
    where = f"checkpoint {checkpoint}/{steps}" if checkpoint is not None else "no checkpoint yet"
    result.status = f"unfinished ({where})"
  return result


def _is_trial(path) -> bool:
  return any((path / name).exists() for name in (checkpointing.CONFIG_FILE, checkpointing.METRICS_FILE, STATUS)) \
      or checkpointing.directory(path).exists()


def collect(workdirs: Sequence[str | os.PathLike]) -> list[TrialResult]:
  """The trials under each path: the path itself if it is a trial's workdir, else its trial subdirectories
  together with the trials its sweep.json names."""
  found = []  # (result, the command-line path it came from)
  for workdir in workdirs:
    path = paths.path(workdir)
    if not path.is_dir():
      found.append((TrialResult(str(workdir), status="no such directory"), workdir))
    elif _is_trial(path):
      found.append((read_trial(path), workdir))
    else:
      manifest, _ = _read_json(path / MANIFEST)
      planned = {t["name"]: t.get("overrides", {}) for t in (manifest or {}).get("trials", [])}
      subdirs = sorted(p.name for p in path.iterdir() if p.is_dir() and _is_trial(p))
      names = list(planned) + [n for n in subdirs if n not in planned]
      if not names:
        found.append((TrialResult(str(workdir), status="not started (no trials in it)"), workdir))
      found += [(read_trial(path / n, n, planned.get(n)), workdir) for n in names]
  labels = [r.label for r, _ in found]
  for r, workdir in found:  # trials of several experiments may share names
    if labels.count(r.label) > 1:
      r.label = f"{paths.path(workdir).name}/{r.label}"
  return [r for r, _ in found]


def differing_keys(results: Sequence[TrialResult]) -> list[str]:
  """Config fields whose values differ between the trials (swept fields first, in sweep order)."""
  swept = list(dict.fromkeys(k for r in results for k in r.overrides))
  configs = [r.config for r in results if r.config is not None]
  keys = sorted({k for c in configs for k in c})
  differ = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1]
  return swept + [k for k in differ if k not in swept]


def _value(result: TrialResult, key: str) -> Any:
  if result.config is not None and key in result.config:
    return result.config[key]
  return result.overrides.get(key)


def _format_value(value: Any) -> str:
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:g}"
  return str(value)


def _format_metric(name: str, value: Any) -> str:
  if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
    return "-"
  if any(name.rsplit("/", 1)[-1].endswith(p) for p in _PLAIN):
    return f"{value:.4g}"
  return f"{100 * value:.2f}%"


def _order(label: str) -> tuple:
  """Natural order of trial labels ("2_x" before "10_x")."""
  return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label))


def best_metric(results: Sequence[TrialResult]) -> str | None:
  """The trials' `eval.best_metric` (the most common one if they disagree)."""
  names = [r.config["eval.best_metric"] for r in results if r.config and "eval.best_metric" in r.config]
  return max(dict.fromkeys(names), key=names.count) if names else None


def format_table(results: Sequence[TrialResult], *, metrics: Sequence[str] = (),
                 sort_by: str | None = None) -> str:
  """The table `anticipax.report` prints.

  Args:
    results: the trials (`collect`).
    metrics: metric names or glob patterns (e.g. "action/*") to show; default all eval metrics.
    sort_by: the metric to sort by (descending); default the trials' `eval.best_metric`.

  Returns:
    A header line and one line per trial: finished ones by the metric, best first, then the others.
  """
  sort_by = sort_by or best_metric(results)
  names = sorted({k[len("eval/"):] for r in results if r.metrics for k in r.metrics if k.startswith("eval/")})
  if metrics:
    names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in metrics)]
  if sort_by in names:
    names.remove(sort_by)
  names = ([sort_by] if sort_by else []) + names
  keys = differing_keys(results)

  def score(r):
    v = (r.metrics or {}).get(f"eval/{sort_by}")
    return v if isinstance(v, (int, float)) and not math.isnan(v) else None

  ranked = sorted((r for r in results if score(r) is not None), key=lambda r: (-score(r), _order(r.label)))
  rest = sorted((r for r in results if score(r) is None), key=lambda r: _order(r.label))

  header = ["trial", *keys, "step", *names, "status"]
  rows = [[r.label, *(_format_value(_value(r, k)) for k in keys),
           _format_value((r.metrics or {}).get("step")),
           *(_format_metric(n, (r.metrics or {}).get(f"eval/{n}")) for n in names), r.status]
          for r in ranked + rest]
  widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
  left = {0, len(header) - 1}  # trial and status read left to right; values line up on the right

  def line(cells):
    return "  ".join(c.ljust(w) if i in left else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

  done = sum(r.metrics is not None for r in results)
  title = (f"{len(results)} trial(s), {done} with metrics; sorted by {sort_by or '(no metric)'}"
           f"{' (eval.best_metric)' if sort_by == best_metric(results) and sort_by else ''}, "
           "metrics in percent:")
  return "\n".join([title, line(header), *(line(r) for r in rows)])


def _define_flags() -> None:
  flags.DEFINE_list("metrics", [], "Metrics to show (names or globs, e.g. action/*); default all.")
  flags.DEFINE_string("sort_by", None, "Metric to sort by (descending); default eval.best_metric.")


def main(argv):
  if len(argv) < 2:
    raise app.UsageError("usage: python -m anticipax.report WORKDIR [WORKDIR...]")
  results = collect(argv[1:])
  print(format_table(results, metrics=flags.FLAGS.metrics, sort_by=flags.FLAGS.sort_by))


if __name__ == "__main__":
  _define_flags()
  app.run(main)
