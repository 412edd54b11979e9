"""Local sweeps on a shared machine: devices found without JAX, split into slots, trials pinned to their
slot, a failing trial that leaves the others running and shows as failed in the report."""

import itertools
import json
import os
import subprocess
import sys
import types

import pytest

from anticipax import report
from anticipax import runtime
from anticipax import sweeps
from anticipax.launch import __main__ as cli
from anticipax.launch import devices as devices_lib
from anticipax.launch import local
from anticipax.launch import trials as trials_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PINNING = ("CUDA_VISIBLE_DEVICES", "TPU_VISIBLE_CHIPS", "TPU_CHIPS_PER_PROCESS_BOUNDS", "TPU_PROCESS_BOUNDS",
            "TPU_PROCESS_ADDRESSES", "TPU_PROCESS_PORT", "CLOUD_TPU_TASK_ID", "ALLOW_MULTIPLE_LIBTPU_LOAD",
            "ANTICIPAX_EXPECT_BACKEND")
# A trial in miniature: records its environment and when it ran, writes what anticipax.main would, and
# fails like a diverged run when its id is 3.
_FAKE_TRIAL = f"""
import json, os, sys, time
workdir, trial = sys.argv[1], int(sys.argv[2])
os.makedirs(workdir, exist_ok=True)
start = time.time()
time.sleep(0.4)
env = {{k: os.environ[k] for k in {_PINNING!r} if k in os.environ}}
with open(os.path.join(workdir, "ran.json"), "w") as f:
  json.dump({{"env": env, "start": start, "end": time.time()}}, f)
print("trial", trial, "step 1")
if trial == 3:
  print("Traceback (most recent call last):", file=sys.stderr)
  print("ValueError: trial 3 diverged at step 1", file=sys.stderr)
  sys.exit(3)
config = {{"seed": trial, "train": {{"steps": 1}}, "eval": {{"best_metric": "action/mean_top1"}}}}
with open(os.path.join(workdir, "config.json"), "w") as f:
  json.dump(config, f)
with open(os.path.join(workdir, "metrics.json"), "w") as f:
  json.dump({{"step": 1, "eval/action/mean_top1": trial / 10}}, f)
"""


def _fake_command(trial):
  return [sys.executable, "-c", _FAKE_TRIAL, trial.workdir, str(trial.id)]


def _smi(stdout, returncode=0):
  def run(cmd, **kwargs):
    assert cmd == ["nvidia-smi", "-L"] and kwargs["timeout"]
    return subprocess.CompletedProcess(cmd, returncode, stdout, "")
  return run


def _no_smi(cmd, **kwargs):
  raise FileNotFoundError(cmd[0])


def _pci(root, devices):
  for i, (vendor, device) in enumerate(devices):
    d = root / f"0000:00:{i:02x}.0"
    d.mkdir(parents=True)
    (d / "vendor").write_text(vendor + "\n")
    (d / "device").write_text(device + "\n")
  return str(root)


def test_discovers_gpus_and_tpu_chips_without_jax(tmp_path):
  listing = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-a)\n  MIG 1g.10gb Device 0: (UUID: MIG-x)\n"
             "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-b)\n")
  gpus = devices_lib.discover({}, run=_smi(listing), pci_root=str(tmp_path), dev_root=str(tmp_path))
  assert (gpus.platform, gpus.ids, gpus.source) == ("gpu", ("0", "1"), "nvidia-smi -L")
  # nvidia-smi numbers GPUs by PCI bus, CUDA fastest first unless told otherwise.
  assert devices_lib.slots(gpus, 2)[1].env == {"ANTICIPAX_EXPECT_BACKEND": "gpu", "CUDA_VISIBLE_DEVICES": "1",
                                               "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
  limited = devices_lib.discover({"CUDA_VISIBLE_DEVICES": "2,3"}, run=_no_smi)
  assert (limited.platform, limited.ids) == ("gpu", ("2", "3"))
  assert devices_lib.discover({"JAX_PLATFORMS": "cpu"}, run=_smi(listing)).platform == "cpu"
  # A v5e host: four TPU chips and Google's network card (same vendor, not a TPU) on the PCI bus.
  pci = _pci(tmp_path / "pci", [("0x1ae0", "0x0063")] * 4 + [("0x1ae0", "0x0042"), ("0x10de", "0x2330")])
  tpu = devices_lib.discover({}, run=_no_smi, pci_root=pci, dev_root=str(tmp_path))
  assert (tpu.platform, tpu.ids, tpu.source) == ("tpu", ("0", "1", "2", "3"), "PCI bus")
  (tmp_path / "dev").mkdir()
  for i in range(4):  # v2/v3/v4 TPU VMs also show /dev/accel0..3
    (tmp_path / "dev" / f"accel{i}").touch()
  accel = devices_lib.discover({}, run=_smi("", 9), pci_root=str(tmp_path / "none"),
                               dev_root=str(tmp_path / "dev"))
  assert (accel.ids, accel.source) == (("0", "1", "2", "3"), "/dev/accel*")
  assert devices_lib.discover({}, run=_no_smi, pci_root=str(tmp_path / "none"),
                              dev_root=str(tmp_path / "none")) == devices_lib.Devices("cpu")


def test_slots_pin_gpus_and_tpu_chips():
  gpus = devices_lib.slots(devices_lib.Devices("gpu", ("0", "1")), 2)
  assert [s.env for s in gpus] == [{"ANTICIPAX_EXPECT_BACKEND": "gpu", "CUDA_VISIBLE_DEVICES": "0"},
                                   {"ANTICIPAX_EXPECT_BACKEND": "gpu", "CUDA_VISIBLE_DEVICES": "1"}]
  # Each trial is its own one-process slice of 2 chips, with its own libtpu port (values as JAX's
  # multi-process runner sets them, see anticipax/launch/devices.py).
  tpus = devices_lib.slots(devices_lib.Devices("tpu", ("0", "1", "2", "3")), 2)
  assert tpus[0].env == {
      "ANTICIPAX_EXPECT_BACKEND": "tpu", "TPU_VISIBLE_CHIPS": "0,1", "TPU_CHIPS_PER_PROCESS_BOUNDS": "1,2,1",
      "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_PROCESS_ADDRESSES": "localhost:8476", "TPU_PROCESS_PORT": "8476",
      "CLOUD_TPU_TASK_ID": "0", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}
  assert {k: tpus[1].env[k] for k in ("TPU_VISIBLE_CHIPS", "TPU_PROCESS_PORT", "TPU_PROCESS_ADDRESSES")} == {
      "TPU_VISIBLE_CHIPS": "2,3", "TPU_PROCESS_PORT": "8477", "TPU_PROCESS_ADDRESSES": "localhost:8477"}
  singles = devices_lib.slots(devices_lib.Devices("tpu", ("0", "1", "2", "3")), 4)
  assert [s.env["TPU_CHIPS_PER_PROCESS_BOUNDS"] for s in singles] == ["1,1,1"] * 4
  # One trial at a time on the whole TPU VM: libtpu's defaults, only the backend check.
  assert devices_lib.slots(devices_lib.Devices("tpu", ("0", "1", "2", "3")), 1)[0].env == {
      "ANTICIPAX_EXPECT_BACKEND": "tpu"}
  assert devices_lib.slots(devices_lib.Devices("cpu"), 3) == [devices_lib.Slot(i, (), {}) for i in range(3)]
  with pytest.raises(ValueError, match=r"--parallel=3 does not split this machine's 4 TPU chip\(s\) "
                                       r"0,1,2,3 \(test\) evenly; use --parallel=1 or 2 or 4"):
    devices_lib.slots(devices_lib.Devices("tpu", ("0", "1", "2", "3"), "test"), 3)
  with pytest.raises(ValueError, match="does not split"):
    devices_lib.slots(devices_lib.Devices("gpu", ("0", "1")), 4)


def _experiment(tmp_path, n=4):
  experiment = tmp_path / "demo"
  trials = trials_lib.make_trials("configs/demo.py", sweeps.axis("seed", list(range(1, n + 1))),
                                  experiment_dir=str(experiment))
  trials_lib.write_manifest(str(experiment), "configs/demo.py", "", trials)
  return experiment, trials


def _overlap(a, b):
  return a["start"] < b["end"] and b["start"] < a["end"]


@pytest.mark.parametrize("devices,pin", [
    (devices_lib.Devices("gpu", ("0", "1")), "CUDA_VISIBLE_DEVICES"),
    (devices_lib.Devices("tpu", ("0", "1", "2", "3")), "TPU_VISIBLE_CHIPS")])
def test_parallel_trials_get_their_own_devices_and_a_failure_stays_local(tmp_path, devices, pin, capsys):
  experiment, trials = _experiment(tmp_path)
  outcomes = local.run(trials, devices_lib.slots(devices, 2), command=_fake_command)
  assert [(o.trial.id, o.returncode) for o in outcomes] == [(1, 0), (2, 0), (3, 3), (4, 0)]
  assert outcomes[2].last_error == "ValueError: trial 3 diverged at step 1"
  runs = {t.id: json.loads((experiment / t.name / "ran.json").read_text()) for t in trials}
  share = len(devices.ids) // 2
  for run in runs.values():
    assert run["env"]["ANTICIPAX_EXPECT_BACKEND"] == devices.platform
    assert len(run["env"][pin].split(",")) == share
  assert any(_overlap(runs[a], runs[b]) for a, b in itertools.combinations(runs, 2))  # 2 at a time ...
  for a, b in itertools.combinations(runs, 2):  # ... never sharing a device
    if _overlap(runs[a], runs[b]):
      assert not set(runs[a]["env"][pin].split(",")) & set(runs[b]["env"][pin].split(","))
  for x, y, z in itertools.combinations(runs.values(), 3):
    assert not (_overlap(x, y) and _overlap(y, z) and _overlap(x, z)), "more than 2 trials at once"
  out, err = capsys.readouterr()
  assert f"[{trials[0].name}] trial 1 step 1" in out.splitlines()
  assert f"[{trials[2].name}] ValueError: trial 3 diverged at step 1" in err.splitlines()
  status = json.loads((experiment / trials[2].name / "status.json").read_text())
  assert (status["exit_code"], status["last_error"]) == (3, "ValueError: trial 3 diverged at step 1")
  assert local.summary(outcomes) == ["3 of 4 trial(s) exited 0; 1 failed:",
                                     f"  {trials[2].name} (exit 3): ValueError: trial 3 diverged at step 1"]

  proc = subprocess.run([sys.executable, "-m", "anticipax.report", str(experiment)], cwd=REPO,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {line.split()[0]: line for line in proc.stdout.splitlines()[2:]}
  assert rows[trials[2].name].endswith("failed (exit 3): ValueError: trial 3 diverged at step 1")
  assert all(rows[t.name].endswith("done") for t in trials if t.id != 3)
  assert proc.stdout.splitlines()[0].startswith("4 trial(s), 3 with metrics")


def test_a_rerun_replaces_the_last_status_and_a_missing_program_fails(tmp_path):
  experiment, trials = _experiment(tmp_path, 1)
  (experiment / trials[0].name).mkdir(parents=True)
  (experiment / trials[0].name / "status.json").write_text(json.dumps({"exit_code": 1, "last_error": "old"}))
  [ok] = local.run(trials, devices_lib.slots(devices_lib.Devices("cpu"), 1), command=_fake_command)
  assert ok.returncode == 0 and report.read_trial(experiment / trials[0].name).status == "done"
  [missing] = local.run(trials, devices_lib.slots(devices_lib.Devices("cpu"), 1),
                        command=lambda t: [str(tmp_path / "no_such_program")])
  assert missing.returncode == 127 and "could not start" in missing.last_error
  status = report.read_trial(experiment / trials[0].name).status
  assert status.startswith("failed (exit 127): could not start")


def _flags(tmp_path, **kw):
  defaults = dict(config="configs/demo.py", sweep="", workdir_root=str(tmp_path), experiment_name=None,
                  executor="local", trials=[], parallel=0, accelerator=None, num_accelerators=1, image=None,
                  image_repository=None, region="us-central1", service_account=None)
  return types.SimpleNamespace(**{**defaults, **kw})


def test_launcher_plans_slots_and_exits_nonzero_after_all_trials(tmp_path, monkeypatch, capsys):
  four_gpus = lambda: devices_lib.Devices("gpu", ("0", "1", "2", "3"), "test")
  one_at_a_time = cli.plan(_flags(tmp_path), [], discover=four_gpus)
  assert [s.devices for s in one_at_a_time.slots] == [("0", "1", "2", "3")]
  assert [s.devices for s in cli.plan(_flags(tmp_path, parallel=4), [], discover=four_gpus).slots] == [
      ("0",), ("1",), ("2",), ("3",)]
  with pytest.raises(ValueError, match="--parallel=3 does not split"):
    cli.plan(_flags(tmp_path, parallel=3), [], discover=four_gpus)
  cpu = cli.plan(_flags(tmp_path, trials=["1", "2", "3"]), [], discover=lambda: devices_lib.Devices("cpu"))
  assert len(cpu.slots) == 3  # no accelerator: all at once, as before
  dry = cli.describe_local(cli.plan(_flags(tmp_path, parallel=2), [], discover=four_gpus))
  assert dry[:3] == [
      "Experiment demo: 6 work unit(s) on this machine (local subprocesses), 2 at a time; "
      "4 GPU(s) 0,1,2,3 (test)",
      "  slot 0: 0,1: ANTICIPAX_EXPECT_BACKEND=gpu CUDA_VISIBLE_DEVICES=0,1",
      "  slot 1: 2,3: ANTICIPAX_EXPECT_BACKEND=gpu CUDA_VISIBLE_DEVICES=2,3"]

  monkeypatch.setattr(local, "trial_command", _fake_command)
  p = cli.plan(_flags(tmp_path, trials=["2", "3"]), [], discover=lambda: devices_lib.Devices("cpu"))
  with pytest.raises(SystemExit, match=r"1 trial\(s\) failed: 3_peak_lr=0.001,seed=0"):
    cli._run_local(p, [])  # pylint: disable=protected-access
  out = capsys.readouterr().out
  assert "1 of 2 trial(s) exited 0; 1 failed:" in out
  assert f"Results: python -m anticipax.report {tmp_path / 'demo'}" in out


def test_trial_that_fell_back_to_cpu_fails_loudly():
  runtime.check_backend({})  # not launched by anticipax.launch: nothing to check
  runtime.check_backend({"ANTICIPAX_EXPECT_BACKEND": "cpu"})
  with pytest.raises(SystemExit, match="expected the gpu backend .* but JAX started cpu"):
    runtime.check_backend({"ANTICIPAX_EXPECT_BACKEND": "gpu"})
