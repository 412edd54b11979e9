"""Sweep launching: sweep specs, trial arguments, XManager work units (mock experiment), the dry run
without XManager, and a real local launch of two demo trials followed by their report."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from anticipax import launch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Runs `python -m anticipax.launch ARGS` in a process where `import xmanager` fails.
_WITHOUT_XMANAGER = ("import runpy, sys; sys.modules['xmanager'] = None; "
                     "runpy.run_module('anticipax.launch', run_name='__main__', alter_sys=True)")


def _cli(*args, xmanager=True, env=None, timeout=120):
  cmd = [sys.executable, *(["-m", "anticipax.launch"] if xmanager else ["-c", _WITHOUT_XMANAGER]), *args]
  return subprocess.run(cmd, cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                        timeout=timeout)


def test_product_zip_and_axis():
  lrs, seeds = launch.axis("schedule.peak_lr", [1e-3, 3e-3]), launch.axis("config.seed", [0, 1, 2])
  assert launch.product(lrs, seeds) == [
      {"schedule.peak_lr": lr, "seed": s} for lr in (1e-3, 3e-3) for s in (0, 1, 2)]
  warmups = launch.axis("schedule.warmup_steps", [10, 20])
  assert launch.zip_(lrs, warmups) == [{"schedule.peak_lr": 1e-3, "schedule.warmup_steps": 10},
                                       {"schedule.peak_lr": 3e-3, "schedule.warmup_steps": 20}]
  assert launch.product() == [{}]
  with pytest.raises(ValueError, match="different lengths"):
    launch.zip_(lrs, seeds)
  with pytest.raises(ValueError, match="seed is set twice"):
    launch.product(seeds, launch.axis("seed", [5]))


def test_demo_sweep_loads_and_fits_the_config():
  config, sweep = launch.load_sweep("configs/demo.py")
  assert config.data.name == "synthetic_kitchen"
  assert len(sweep) == 6 and sweep[0] == {"schedule.peak_lr": 3e-4, "seed": 0}
  assert {(t["schedule.peak_lr"], t["seed"]) for t in sweep} == {
      (lr, s) for lr in (3e-4, 1e-3, 3e-3) for s in (0, 1)}
  for overrides in sweep:
    launch.check_overrides(config, overrides)
  assert config.schedule.peak_lr == 1e-3  # checking does not change the config
  with pytest.raises(ValueError, match="train.stepz: the config has no such field"):
    launch.check_overrides(config, {"train.stepz": 3})
  with pytest.raises(ValueError, match="override train.steps=1.5"):
    launch.check_overrides(config, {"train.steps": 1.5})
  with pytest.raises(ValueError, match=r"no sweep function nope\(\) or sweep_nope\(\); it has: sweep"):
    launch.load_sweep("configs/demo.py", "nope")


def test_trials_args_and_workdirs():
  sweep = launch.product(launch.axis("model.dropout", [0.1]), launch.axis("model.head.dropout", [0.2, 0.3]))
  trials = launch.make_trials("configs/demo.py:x", sweep, experiment_dir="/runs/e",
                              common={"config.train.steps": "4"})
  assert [t.name for t in trials] == ["1_model.dropout=0.1,head.dropout=0.2",
                                      "2_model.dropout=0.1,head.dropout=0.3"]
  assert trials[1].workdir == "/runs/e/2_model.dropout=0.1,head.dropout=0.3"
  assert trials[1].args == ("--config=configs/demo.py:x", f"--workdir={trials[1].workdir}",
                            "--config.train.steps=4", "--config.model.dropout=0.1",
                            "--config.model.head.dropout=0.3")
  assert trials[0].overrides == {"model.dropout": 0.1, "model.head.dropout": 0.2}
  assert launch.make_trials("c.py", [{}], experiment_dir="e")[0].name == "1"
  with pytest.raises(ValueError, match="trial 1 sweeps train.steps"):
    launch.make_trials("c.py", [{"train.steps": 5}], experiment_dir="e", common={"train.steps": "4"})
  with pytest.raises(ValueError, match="tpu_v2 and tpu_v3"):
    launch.Target("vertex", "tpu_v5e")
  with pytest.raises(ValueError, match="apply to --executor=vertex"):
    launch.Target("local", "a100")


def _mock_launch(target, trials):
  """Adds `trials` to XManager's mock experiment; returns its jobs and what was packaged."""
  xm_mock = pytest.importorskip("xmanager.xm_mock")
  packaged = []
  with xm_mock.MockExperiment() as experiment:
    package = experiment.package

    def spy(packageables):
      for p in packageables:  # the staged source tree exists only during packaging
        path = getattr(p.executable_spec, "path", None)
        listing = sorted(os.listdir(path)) if path and os.path.isdir(path) else None
        packaged.append((p, listing))
      return package(packageables)

    experiment.package = spy
    launch.add_work_units(experiment, trials, target, source_dir=REPO)
  return experiment.launched_jobs, packaged


def test_local_work_units_run_this_python():
  xm = pytest.importorskip("xmanager.xm")
  from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  _, sweep = launch.load_sweep("configs/demo.py")
  trials = launch.make_trials("configs/demo.py", sweep, experiment_dir="/runs/demo")
  jobs, packaged = _mock_launch(launch.Target("local"), trials)
  [(packageable, _)] = packaged
  assert isinstance(packageable.executable_spec, xm.Binary)
  assert packageable.executable_spec.path == sys.executable
  assert len(jobs) == 6
  for job, trial in zip(jobs, trials):
    assert isinstance(job.executor, xm_local.Local)
    assert job.name == trial.name
    full = xm.merge_args(packageable.args, job.args).to_list()
    assert [sys.executable, *full] == launch.command(trial, launch.Target("local"))
    assert f"--workdir=/runs/demo/{trial.name}" in full


@pytest.mark.parametrize("accelerator,count,machine,jax", [
    ("a100", 8, "a2-highgpu-8g", "jax[cuda12]"), ("tpu_v3", 8, "cloud-tpu", "jax[tpu]")])
def test_vertex_work_units_request_accelerators(accelerator, count, machine, jax):
  xm = pytest.importorskip("xmanager.xm")
  from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  from xmanager.cloud import vertex  # pylint: disable=g-import-not-at-top
  trials = launch.make_trials("configs/demo.py", [{"seed": 0}, {"seed": 1}], experiment_dir="/gcs/b/e")
  jobs, [(packageable, listing)] = _mock_launch(launch.Target("vertex", accelerator, count), trials)
  spec = packageable.executable_spec
  assert isinstance(spec, xm.PythonContainer) and spec.entrypoint == xm.ModuleName("anticipax.main")
  assert listing == ["README.md", "anticipax", "configs", "pyproject.toml"]  # no .venv, no data
  assert any(jax in step for step in spec.docker_instructions)
  assert [j.args.to_list() for j in jobs] == [list(t.args) for t in trials]
  for job in jobs:
    assert isinstance(job.executor, xm_local.Vertex)
    assert job.executor.requirements.task_requirements[xm.ResourceType[accelerator]] == count
    machine_spec = vertex.get_machine_spec(job)  # what Vertex AI would be asked for
    assert machine_spec["machine_type"] == machine and machine_spec["accelerator_count"] == count


def test_vertex_prebuilt_image():
  xm = pytest.importorskip("xmanager.xm")
  trials = launch.make_trials("configs/demo.py", [{"seed": 0}], experiment_dir="/gcs/b/e")
  _, [(packageable, _)] = _mock_launch(launch.Target("vertex", image="gcr.io/p/anticipax:1"), trials)
  assert isinstance(packageable.executable_spec, xm.Container)
  assert packageable.executable_spec.image_path == "gcr.io/p/anticipax:1"


def test_dry_run_without_xmanager(tmp_path):
  root = tmp_path / "sweeps"
  proc = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--config.train.steps=4", "--dry_run",
              xmanager=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  assert lines[0] == "Experiment demo: 6 work unit(s) on this machine (local subprocesses)"
  assert lines[1] == "[1] 1_peak_lr=0.0003,seed=0  (local: this machine's devices)"
  assert shlex.split(lines[2]) == [
      sys.executable, "-m", "anticipax.main", "--config=configs/demo.py",
      f"--workdir={root}/demo/1_peak_lr=0.0003,seed=0", "--config.train.steps=4",
      "--config.schedule.peak_lr=0.0003", "--config.seed=0"]
  assert lines[11] == "[6] 6_peak_lr=0.003,seed=1  (local: this machine's devices)"
  assert shlex.split(lines[12])[-2:] == ["--config.schedule.peak_lr=0.003", "--config.seed=1"]
  assert lines[13:] == [f"prepare: {sys.executable} -m anticipax.prepare --config=configs/demo.py"]
  assert not root.exists()  # a dry run writes nothing
  after_dash = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--dry_run", "--",
                    "--config.train.steps=4", xmanager=False)
  assert after_dash.stdout == proc.stdout

  proc = _cli("--config=configs/demo.py", "--workdir_root=gs://bucket/sweeps", "--dry_run",
              "--executor=vertex", "--accelerator=v100", "--num_accelerators=2", "--trials=4",
              xmanager=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.splitlines()[1:] == [
      "[4] 4_peak_lr=0.001,seed=1  (vertex: v100=2)",
      "  python -m anticipax.main --config=configs/demo.py "
      "--workdir=/gcs/bucket/sweeps/demo/4_peak_lr=0.001,seed=1 --config.schedule.peak_lr=0.001 "
      "--config.seed=1"]


def test_real_launch_without_xmanager_says_what_to_install(tmp_path):
  proc = _cli("--config=configs/demo.py", f"--workdir_root={tmp_path / 'sweeps'}", xmanager=False)
  assert proc.returncode != 0
  assert "pip install 'anticipax[launch]'" in proc.stderr
  assert not (tmp_path / "sweeps").exists()
  proc = _cli("--config=configs/demo.py", f"--workdir_root={tmp_path}", "--dry_run", "--",
              "--config.train.stepz=4", xmanager=False)
  assert proc.returncode != 0 and "override train.stepz: the config has no such field" in proc.stderr


@pytest.mark.slow
def test_local_sweep_runs_and_reports(tmp_path):
  pytest.importorskip("xmanager.xm_local")
  root = tmp_path / "sweeps"
  tiny = ["--config.train.steps=4", "--config.train.eval_every=4", "--config.train.checkpoint_every=4",
          "--config.train.log_every=2", "--config.train.batch_size=16", "--config.eval.batch_size=64",
          "--config.model.backbone.dim=16", "--config.model.head.inter_dim=32",
          "--config.train.async_checkpointing=False", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}"]
  # One CPU device per trial; HOME holds XManager's experiment database.
  env = {"XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "HOME": str(tmp_path / "home")}
  proc = _cli("--config=configs/demo.py", f"--workdir_root={root}", "--trials=1,4", "--", *tiny,
              env=env, timeout=900)
  output = [l for l in (proc.stdout + proc.stderr).splitlines() if "] I1" not in l]  # no INFO logs
  assert proc.returncode == 0, "\n".join(output[-60:])
  experiment = root / "demo"
  assert f"Results: python -m anticipax.report {experiment}" in proc.stdout
  scores = {}
  for name, lr, seed in [("1_peak_lr=0.0003,seed=0", 3e-4, 0), ("4_peak_lr=0.001,seed=1", 1e-3, 1)]:
    metrics = json.loads((experiment / name / "metrics.json").read_text())
    config = json.loads((experiment / name / "config.json").read_text())
    assert metrics["step"] == 4
    assert (config["schedule"]["peak_lr"], config["seed"], config["train"]["steps"]) == (lr, seed, 4)
    scores[name] = metrics["eval/action/mean_top1"]
  assert sorted(os.listdir(experiment)) == ["1_peak_lr=0.0003,seed=0", "4_peak_lr=0.001,seed=1", "sweep.json"]

  report = subprocess.run([sys.executable, "-m", "anticipax.report", str(experiment)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
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
