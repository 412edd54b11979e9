"""Sweep launching: sweep specs, trial arguments, the local dry run without XManager, and a real local
launch of two demo trials followed by their report. Device slots: test_launch_local.py; Vertex AI jobs:
test_launch_vertex.py."""

import ast
import json
import os
import pathlib
import shlex
import subprocess
import sys

import pytest

from anticipax import sweeps
from anticipax.launch import trials as trials_lib
from tests.fake_gcs import sitecustomize as fake_gcs
from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs `python -m anticipax.launch ARGS` in a process where `import xmanager` fails.
_WITHOUT_XMANAGER = ("import runpy, sys; sys.modules['xmanager'] = None; "
                     "runpy.run_module('anticipax.launch', run_name='__main__', alter_sys=True)")


def _cli(*args, xmanager=True, env=None, timeout=120):
  cmd = [sys.executable, *(["-m", "anticipax.launch"] if xmanager else ["-c", _WITHOUT_XMANAGER]), *args]
  return subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                        timeout=timeout)


def test_product_zip_and_axis():
  lrs, seeds = sweeps.axis("schedule.peak_lr", [1e-3, 3e-3]), sweeps.axis("config.seed", [0, 1, 2])
  assert sweeps.product(lrs, seeds) == [
      {"schedule.peak_lr": lr, "seed": s} for lr in (1e-3, 3e-3) for s in (0, 1, 2)]
  warmups = sweeps.axis("schedule.warmup_steps", [10, 20])
  assert sweeps.zip_(lrs, warmups) == [{"schedule.peak_lr": 1e-3, "schedule.warmup_steps": 10},
                                       {"schedule.peak_lr": 3e-3, "schedule.warmup_steps": 20}]
  assert sweeps.product() == [{}]
  with pytest.raises(ValueError, match="different lengths"):
    sweeps.zip_(lrs, seeds)
  with pytest.raises(ValueError, match="seed is set twice"):
    sweeps.product(seeds, sweeps.axis("seed", [5]))


def test_configs_import_no_entry_point():
  """A config's sweep helpers come from anticipax.sweeps, which imports nothing of the launcher."""
  for path in sorted(pathlib.Path(REPO, "configs").glob("*.py")):
    imported = {n.module for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Import)
                 for a in n.names}
    assert not {m for m in imported if m and m.startswith("anticipax.launch")}, path.name
  probe = ("import sys; import anticipax.sweeps; "
           "print(sorted(m for m in sys.modules if m.startswith(('anticipax.launch', 'absl.flags', 'jax'))))")
  proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_demo_sweep_loads_and_fits_the_config():
  config, sweep = trials_lib.load_sweep("configs/demo.py")
  assert config.data.name == "synthetic_kitchen"
  assert len(sweep) == 6 and sweep[0] == {"schedule.peak_lr": 3e-4, "seed": 0}
  assert {(t["schedule.peak_lr"], t["seed"]) for t in sweep} == {
      (lr, s) for lr in (3e-4, 1e-3, 3e-3) for s in (0, 1)}
  for overrides in sweep:
    trials_lib.check_overrides(config, overrides)
  assert config.schedule.peak_lr == 1e-3  # checking does not change the config
  with pytest.raises(ValueError, match="train.stepz: the config has no such field"):
    trials_lib.check_overrides(config, {"train.stepz": 3})
  with pytest.raises(ValueError, match="override train.steps=1.5"):
    trials_lib.check_overrides(config, {"train.steps": 1.5})
  with pytest.raises(ValueError, match=r"no sweep function nope\(\) or sweep_nope\(\); it has: sweep"):
    trials_lib.load_sweep("configs/demo.py", "nope")


def test_trials_args_and_workdirs():
  sweep = sweeps.product(sweeps.axis("model.dropout", [0.1]), sweeps.axis("model.head.dropout", [0.2, 0.3]))
  trials = trials_lib.make_trials("configs/demo.py:x", sweep, experiment_dir="/runs/e",
                                  common={"config.train.steps": "4"})
  assert [t.name for t in trials] == ["1_model.dropout=0.1,head.dropout=0.2",
                                      "2_model.dropout=0.1,head.dropout=0.3"]
  assert trials[1].workdir == "/runs/e/2_model.dropout=0.1,head.dropout=0.3"
  assert trials[1].args == ("--config=configs/demo.py:x", f"--workdir={trials[1].workdir}",
                            "--config.train.steps=4", "--config.model.dropout=0.1",
                            "--config.model.head.dropout=0.3")
  assert trials[0].overrides == {"model.dropout": 0.1, "model.head.dropout": 0.2}
  assert trials_lib.make_trials("c.py", [{}], experiment_dir="e")[0].name == "1"
  assert trials_lib.make_trials("c.py", [{}], experiment_dir="gs://b/e")[0].workdir == "gs://b/e/1"
  with pytest.raises(ValueError, match="trial 1 sweeps train.steps"):
    trials_lib.make_trials("c.py", [{"train.steps": 5}], experiment_dir="e", common={"train.steps": "4"})


def test_dry_run_without_xmanager(tmp_path):
  root = tmp_path / "sweeps"
  env = {"JAX_PLATFORMS": "cpu"}  # no accelerator, whatever runs the tests
  proc = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--config.train.steps=4", "--dry_run",
              xmanager=False, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert lines[0] == ("Experiment demo: 6 work unit(s) on this machine (local subprocesses), 6 at a time; "
                      "no accelerator (JAX_PLATFORMS=cpu)")
  assert lines[1] == "[1] 1_peak_lr=0.0003,seed=0"
  assert shlex.split(lines[2]) == [
      sys.executable, "-m", "anticipax.main", "--config=configs/demo.py",
      f"--workdir={root}/demo/1_peak_lr=0.0003,seed=0", "--config.train.steps=4",
      "--config.schedule.peak_lr=0.0003", "--config.seed=0"]
  assert lines[11] == "[6] 6_peak_lr=0.003,seed=1"
  assert shlex.split(lines[12])[-2:] == ["--config.schedule.peak_lr=0.003", "--config.seed=1"]
  assert lines[13:] == [f"prepare: {sys.executable} -m anticipax.prepare --config=configs/demo.py"]
  assert not root.exists()  # a dry run writes nothing
  after_dash = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--dry_run", "--",
                    "--config.train.steps=4", xmanager=False, env=env)
  assert after_dash.stdout == proc.stdout
  sequential = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--dry_run", "--parallel=2",
                    xmanager=False, env=env)
  assert "(local subprocesses), 2 at a time;" in sequential.stdout.splitlines()[0]


def test_flag_errors_are_one_line(tmp_path):
  proc = _cli("--config=configs/demo.py", f"--workdir_root={tmp_path}", "--dry_run", "--",
              "--config.train.stepz=4", xmanager=False)
  assert proc.returncode != 0 and "override train.stepz: the config has no such field" in proc.stderr
  proc = _cli("--config=configs/demo.py", f"--workdir_root={tmp_path}", "--dry_run", "--accelerator=a100",
              xmanager=False)
  assert proc.returncode != 0 and "--accelerator applies to --executor=vertex" in proc.stderr
  proc = _cli("--config=configs/demo.py", f"--workdir_root={tmp_path}", "--dry_run", "--executor=vertex",
              xmanager=False)
  assert proc.returncode != 0 and "--workdir_root must be on Cloud Storage" in proc.stderr


@pytest.mark.slow
def test_local_sweep_in_a_bucket_runs_resumes_and_reports(tmp_path):
  """A 2-trial sweep with `--workdir_root=gs://...` (redirected to a local folder by tests/fake_gcs) run from
  an empty directory: trials stopped early (as preempted jobs are) resume when the same command runs again,
  everything lands in the bucket, nothing in the current directory."""
  gcs, cwd = tmp_path / "gcs", tmp_path / "cwd"
  cwd.mkdir()
  tiny = ["--config.train.steps=4", "--config.train.eval_every=4", "--config.train.checkpoint_every=2",
          "--config.train.log_every=2", "--config.train.batch_size=16", "--config.eval.batch_size=64",
          "--config.model.backbone.dim=16", "--config.model.head.inter_dim=32",
          "--config.train.async_checkpointing=False", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}"]
  # One CPU device per trial; a local launch needs no XManager.
  env = fake_gcs.env(str(gcs), processes.env(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO)))
  launch = [sys.executable, "-m", "anticipax.launch", f"--config={REPO}/configs/demo.py",
            "--workdir_root=gs://bucket/sweeps", "--trials=1,4", "--"]

  def run(cmd):
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)

  first = run([*launch, *tiny, "--config.train.max_steps_per_run=2"])  # both stop at step 2, as if preempted
  assert first.returncode == 0, first.stderr[-3000:]
  experiment = gcs / "bucket" / "sweeps" / "demo"
  stopped = run([sys.executable, "-m", "anticipax.report", "gs://bucket/sweeps/demo"])
  assert stopped.stdout.count("stopped at 2/4") == 2, stopped.stdout
  proc = run([*launch, *tiny])
  output = [l for l in (proc.stdout + proc.stderr).splitlines() if "] I1" not in l]  # no INFO logs
  assert proc.returncode == 0, "\n".join(output[-60:])
  assert "2 of 2 trial(s) exited 0" in proc.stdout
  assert f"Results: python -m anticipax.report {experiment}" in proc.stdout  # the bucket path (redirected here)
  scores = {}
  for name, lr, seed in [("1_peak_lr=0.0003,seed=0", 3e-4, 0), ("4_peak_lr=0.001,seed=1", 1e-3, 1)]:
    metrics = json.loads((experiment / name / "metrics.json").read_text())
    config = json.loads((experiment / name / "config.json").read_text())
    status = json.loads((experiment / name / "status.json").read_text())
    assert metrics["step"] == 4 and status["exit_code"] == 0
    assert (config["schedule"]["peak_lr"], config["seed"], config["train"]["steps"]) == (lr, seed, 4)
    scores[name] = metrics["eval/action/mean_top1"]
  assert sorted(os.listdir(experiment)) == ["1_peak_lr=0.0003,seed=0", "4_peak_lr=0.001,seed=1", "sweep.json"]

  report = run([sys.executable, "-m", "anticipax.report", "gs://bucket/sweeps/demo"])
  assert report.returncode == 0, report.stderr[-2000:]
  lines = report.stdout.splitlines()
  assert lines[0].startswith("6 trial(s), 2 with metrics; sorted by action/mean_top1 (eval.best_metric)")
  assert lines[1].split()[:5] == ["trial", "schedule.peak_lr", "seed", "step", "action/mean_top1"]
  best, second = sorted(scores, key=lambda n: (-scores[n], n))
  assert lines[2].split()[0] == best and lines[3].split()[0] == second
  assert lines[2].split()[3:5] == ["4", f"{100 * scores[best]:.2f}%"]
  assert lines[2].endswith("done") and lines[3].endswith("done")
  assert [l.split()[0] for l in lines[4:]] == ["2_peak_lr=0.0003,seed=1", "3_peak_lr=0.001,seed=0",
                                               "5_peak_lr=0.003,seed=0", "6_peak_lr=0.003,seed=1"]
  assert all(l.endswith("not started") for l in lines[4:])
  assert not os.listdir(cwd), f"written under the current directory: {os.listdir(cwd)}"
