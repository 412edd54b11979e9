"""The sweep report: trials read from workdirs, ranked by the best metric, unfinished ones listed."""

import json
import os
import subprocess
import sys

from anticipax import report

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _trial(directory, *, lr, seed, steps=4, metrics=None, checkpoint=None):
  directory.mkdir(parents=True)
  config = {"seed": seed, "schedule": {"peak_lr": lr, "warmup_steps": 0}, "train": {"steps": steps},
            "eval": {"best_metric": "action/mean_top1"}, "data": {"name": "synthetic_kitchen"}}
  (directory / "config.json").write_text(json.dumps(config))
  if metrics is not None:
    (directory / "metrics.json").write_text(json.dumps(metrics))
  if checkpoint is not None:
    (directory / "checkpoints" / str(checkpoint)).mkdir(parents=True)


def _experiment(tmp_path):
  """Six planned trials: two finished, one stopped early, one running, one broken, one never started."""
  e = tmp_path / "demo"
  _trial(e / "1_lr=0.001,seed=0", lr=1e-3, seed=0,
         metrics={"step": 4, "eval/action/mean_top1": 0.25, "eval/action/top5": 0.5})
  _trial(e / "2_lr=0.003,seed=0", lr=3e-3, seed=0,
         metrics={"step": 4, "eval/action/mean_top1": 0.4567, "eval/action/top5": 0.75})
  _trial(e / "3_lr=0.001,seed=1", lr=1e-3, seed=1,
         metrics={"step": 2, "eval/action/mean_top1": 0.3, "eval/action/top5": 0.6})
  _trial(e / "4_lr=0.003,seed=1", lr=3e-3, seed=1, checkpoint=2)
  _trial(e / "5_lr=0.01,seed=0", lr=1e-2, seed=0)
  (e / "5_lr=0.01,seed=0" / "metrics.json").write_text("{truncated")
  grid = [(1e-3, 0), (3e-3, 0), (1e-3, 1), (3e-3, 1), (1e-2, 0), (1e-2, 1)]
  planned = [(i, f"{i}_lr={lr:g},seed={s}", lr, s) for i, (lr, s) in enumerate(grid, 1)]
  (e / "sweep.json").write_text(json.dumps({"trials": [
      {"id": i, "name": n, "overrides": {"schedule.peak_lr": lr, "seed": s}} for i, n, lr, s in planned]}))
  return e


def test_table_ranks_finished_trials_and_lists_the_rest(tmp_path):
  results = report.collect([_experiment(tmp_path)])
  assert report.best_metric(results) == "action/mean_top1"
  assert report.differing_keys(results) == ["schedule.peak_lr", "seed"]
  lines = report.format_table(results).splitlines()
  assert lines[0] == ("6 trial(s), 3 with metrics; sorted by action/mean_top1 (eval.best_metric), "
                      "metrics in percent:")
  assert lines[1].split() == ["trial", "schedule.peak_lr", "seed", "step", "action/mean_top1", "action/top5",
                              "status"]
  rows = [line.split(maxsplit=6) for line in lines[2:]]
  assert rows == [
      ["2_lr=0.003,seed=0", "0.003", "0", "4", "45.67%", "75.00%", "done"],
      ["3_lr=0.001,seed=1", "0.001", "1", "2", "30.00%", "60.00%", "stopped at 2/4"],
      ["1_lr=0.001,seed=0", "0.001", "0", "4", "25.00%", "50.00%", "done"],
      ["4_lr=0.003,seed=1", "0.003", "1", "-", "-", "-", "unfinished (checkpoint 2/4)"],
      ["5_lr=0.01,seed=0", "0.01", "0", "-", "-", "-", rows[4][-1]],
      ["6_lr=0.01,seed=1", "0.01", "1", "-", "-", "-", "not started"],
  ]
  assert rows[4][-1].startswith("unreadable metrics.json (")
  # Columns line up: every metric cell ends where its header does.
  end = lines[1].index("action/mean_top1") + len("action/mean_top1")
  assert all(line[:end].endswith(("%", "-")) for line in lines[2:])


def test_sort_by_metric_filter_and_plain_numbers(tmp_path):
  results = report.collect([_experiment(tmp_path)])
  lines = report.format_table(results, metrics=["action/top*"], sort_by="action/top5").splitlines()
  assert "sorted by action/top5," in lines[0]
  assert lines[1].split()[4:] == ["action/top5", "status"]
  assert [line.split()[0] for line in lines[2:5]] == ["2_lr=0.003,seed=0", "3_lr=0.001,seed=1",
                                                      "1_lr=0.001,seed=0"]
  mlm = report.TrialResult("mlm", metrics={"step": 1, "eval/mlm/loss": 2.5, "eval/mlm/accuracy": 0.5},
                           status="done")
  line = report.format_table([mlm], sort_by="mlm/accuracy").splitlines()[2]
  assert line.split() == ["mlm", "1", "50.00%", "2.5", "done"]


def test_single_trials_and_missing_paths(tmp_path):
  e = _experiment(tmp_path)
  results = report.collect([e / "2_lr=0.003,seed=0", e / "4_lr=0.003,seed=1", tmp_path / "nowhere",
                            tmp_path / "demo_empty"])
  assert [(r.label, r.status) for r in results] == [
      ("2_lr=0.003,seed=0", "done"), ("4_lr=0.003,seed=1", "unfinished (checkpoint 2/4)"),
      (str(tmp_path / "nowhere"), "no such directory"), (str(tmp_path / "demo_empty"), "no such directory")]
  (tmp_path / "demo_empty").mkdir()
  [empty] = report.collect([tmp_path / "demo_empty"])
  assert empty.status == "not started (no trials in it)"
  # Two experiments whose trials share names are told apart by their directory.
  other = tmp_path / "other"
  _trial(other / "1_lr=0.001,seed=0", lr=1e-3, seed=0, metrics={"step": 4, "eval/action/mean_top1": 0.1})
  labels = [r.label for r in report.collect([e, other])]
  assert "demo/1_lr=0.001,seed=0" in labels and "other/1_lr=0.001,seed=0" in labels


def test_cli(tmp_path):
  e = _experiment(tmp_path)
  proc = subprocess.run([sys.executable, "-m", "anticipax.report", str(e), "--metrics=action/mean_top1"],
                        cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert len(lines) == 8 and lines[1].split()[-2:] == ["action/mean_top1", "status"]
  assert lines[2].split()[:5] == ["2_lr=0.003,seed=0", "0.003", "0", "4", "45.67%"]
  proc = subprocess.run([sys.executable, "-m", "anticipax.report"], cwd=REPO, capture_output=True, text=True,
                        timeout=120)
  assert proc.returncode != 0 and "usage: python -m anticipax.report WORKDIR" in proc.stderr


def test_failed_trials_show_their_last_error(tmp_path):
  e = _experiment(tmp_path)
  # What anticipax.launch's local executor writes when a trial exits: trial 1 finished, trial 4 crashed
  # after its first checkpoint, trial 6 died before writing anything but its status.
  (e / "1_lr=0.001,seed=0" / "status.json").write_text(json.dumps({"exit_code": 0, "last_error": ""}))
  (e / "4_lr=0.003,seed=1" / "status.json").write_text(json.dumps(
      {"exit_code": 1, "last_error": "anticipax: loss is NaN at step 3"}))
  (e / "6_lr=0.01,seed=1").mkdir()
  (e / "6_lr=0.01,seed=1" / "status.json").write_text(json.dumps(
      {"exit_code": -9, "last_error": "killed by SIGKILL; last line: (nothing on stderr)"}))
  statuses = {r.label: r.status for r in report.collect([e])}
  assert statuses["1_lr=0.001,seed=0"] == "done"
  assert statuses["4_lr=0.003,seed=1"] == "failed (exit 1): anticipax: loss is NaN at step 3"
  assert statuses["6_lr=0.01,seed=1"] == "failed (exit -9): killed by SIGKILL; last line: (nothing on stderr)"
  lines = report.format_table(report.collect([e])).splitlines()
  assert lines[-3].split()[0] == "4_lr=0.003,seed=1" and lines[-3].endswith("loss is NaN at step 3")
  # A trial directory holding only its status is still a trial of a directory without sweep.json.
  (e / "sweep.json").unlink()
  assert "6_lr=0.01,seed=1" in [r.label for r in report.collect([e])]
