"""Preemption, kills, damaged checkpoints, numerical faults and workdir safety."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from anticipax import checkpointing
from anticipax import train
from anticipax.data import fake
from configs import demo
from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_config(data_dir, **train_overrides):
  c = demo.get_config()
  c.data.tfds_data_dir = data_dir
  c.model.backbone.dim = 16
  c.model.head.update(inter_dim=32, num_heads=2, num_layers=1)
  c.train.update(**{"batch_size": 16, "steps": 6, "log_every": 1, "eval_every": 0, "checkpoint_every": 2,
                    "async_checkpointing": False, **train_overrides})
  c.eval.batch_size = 512
  return c


def _cmd(workdir, data_dir, *overrides):
  return [sys.executable, "-m", "anticipax.main", "--config=configs/demo.py", f"--workdir={workdir}",
          f"--config.data.tfds_data_dir={data_dir}", "--config.model.backbone.dim=16",
          "--config.model.head.inter_dim=32", "--config.model.head.num_heads=2",
          "--config.model.head.num_layers=1", "--config.train.batch_size=16", "--config.eval.batch_size=512",
          "--config.train.eval_every=0", "--config.train.log_every=1", *overrides]


_ENV = processes.env()

# One pytest-xdist worker runs the module and tests/test_entry_points.py (`--dist loadgroup`): their runs
# share one tiny trainer, compiled once (tests/conftest.py's compilation cache), not by both workers at once.
pytestmark = pytest.mark.xdist_group("tiny_demo_trainer")


def _params(workdir):
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), item_names=("state", "data")) as mngr:
    step = mngr.latest_step()
    state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  return step, jax.tree.leaves(state)


def _assert_same_state(a, b):
  (step_a, leaves_a), (step_b, leaves_b) = _params(a), _params(b)
  assert step_a == step_b
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _wait_for_checkpoint(workdir, min_step, proc, timeout=240):
  directory = os.path.join(workdir, "checkpoints")
  deadline = time.time() + timeout
  while time.time() < deadline:
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    steps = [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
    if steps and max(steps) >= min_step:
      return max(steps)
    time.sleep(0.2)
  raise TimeoutError(f"no checkpoint >= {min_step} in {directory}")


@pytest.mark.slow
def test_sigkill_then_rerun_is_bit_identical(tmp_path, demo_data_dir):
  straight, killed = tmp_path / "straight", tmp_path / "killed"
  args = ["--config.train.steps=40", "--config.train.checkpoint_every=1"]
  subprocess.run(_cmd(straight, demo_data_dir, *args), cwd=REPO, env=_ENV, check=True, capture_output=True)
  proc = subprocess.Popen(_cmd(killed, demo_data_dir, *args), cwd=REPO, env=_ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  _wait_for_checkpoint(killed, 5, proc)
  proc.send_signal(signal.SIGKILL)  # no chance to clean up, possibly in the middle of a save
  proc.communicate()
  assert not os.path.exists(killed / "metrics.json")
  rerun = subprocess.run(_cmd(killed, demo_data_dir, *args), cwd=REPO, env=_ENV, capture_output=True, text=True)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "Resumed from" in rerun.stderr
  _assert_same_state(straight, killed)


@pytest.mark.slow
def test_sigterm_saves_and_the_restart_continues(tmp_path, demo_data_dir):
  workdir = tmp_path / "run"
  args = ["--config.train.steps=100000", "--config.train.checkpoint_every=100000"]
  proc = subprocess.Popen(_cmd(workdir, demo_data_dir, *args), cwd=REPO, env=_ENV, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  lines = []
  reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
  reader.start()
  deadline = time.time() + 240
  while sum("train/loss" in line for line in lines) < 3:  # a few steps in
    assert time.time() < deadline and proc.poll() is None, "".join(lines)[-3000:]
    time.sleep(0.1)
  proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=240)
  reader.join(timeout=60)
  stderr = "".join(lines)
  assert proc.returncode == 0, stderr[-3000:]
  assert "Preempted: checkpoint of step" in stderr
  step, _ = _params(workdir)
  assert 0 < step < 100000  # saved at the step it was at, not at a checkpoint_every boundary
  rerun = subprocess.run(_cmd(workdir, demo_data_dir, *args, f"--config.train.max_steps_per_run=2"),
                         cwd=REPO, env=_ENV, capture_output=True, text=True)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert _params(workdir)[0] == step + 2


@pytest.mark.slow  # three runs: damaged, resumed, clean
def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, demo_data_dir):
  workdir = str(tmp_path / "run")
  train.run(_tiny_config(demo_data_dir, max_steps_per_run=4), workdir)  # checkpoints at 2 and 4
  state_dir = os.path.join(workdir, "checkpoints", "4", "state")
  for root, _, files in os.walk(state_dir):
    for name in files:
      with open(os.path.join(root, name), "r+b") as f:
        f.truncate(max(os.path.getsize(os.path.join(root, name)) // 3, 1))
  result = train.run(_tiny_config(demo_data_dir), workdir)
  assert result["step"] == 6
  # The fallback run redid steps 3-4 from checkpoint 2, so it matches a run that was never damaged.
  clean = str(tmp_path / "clean")
  train.run(_tiny_config(demo_data_dir, steps=6), clean)
  _assert_same_state(workdir, clean)


def test_incompatible_checkpoint_lists_mismatched_shapes(tmp_path, demo_data_dir):
  workdir = str(tmp_path / "run")
  train.run(_tiny_config(demo_data_dir, steps=2), workdir)
  wider = _tiny_config(demo_data_dir, steps=4)
  wider.model.head.inter_dim = 48
  trainer = train.Trainer(wider, devices=jax.devices()[:1])
  # Bypass the workdir guard (as if config.json had been edited) to reach the checkpoint itself.
  os.remove(os.path.join(workdir, "config.json"))
  with pytest.raises(checkpointing.CheckpointError, match=r"(?s)does not fit.*params/head/h_0/attn/key/kernel: checkpoint "
                     r"\(32, 2, 16\) vs model \(48, 2, 24\)") as e:
    checkpointing.Checkpoints(workdir, wider).restore(trainer.abstract_state)
  assert "params/head/encoder/kernel: checkpoint (16, 32) vs model (16, 48)" in str(e.value)
  assert "opt_state" not in str(e.value)  # its mirror of the parameters is not repeated


@pytest.mark.slow  # four runs; the fast tier's refusal is tests/test_entry_points.py's, through main
def test_workdir_of_another_config_is_refused_unless_overwritten(tmp_path, demo_data_dir):
  workdir = str(tmp_path / "run")
  train.run(_tiny_config(demo_data_dir, steps=2), workdir)
  other = _tiny_config(demo_data_dir, steps=2)
  other.model.dropout = 0.5
  with pytest.raises(checkpointing.CheckpointError, match=r"another config \(differs in model\.dropout\)"):
    train.run(other, workdir)
  # Changing only how the run is steered (logging, checkpoint cadence, ...) is fine.
  train.run(_tiny_config(demo_data_dir, steps=2, log_every=2, max_steps_per_run=1), workdir)
  result = train.run(other, workdir, overwrite=True)
  assert result["step"] == 2


def _splits_with_a_nan_example():
  splits = fake.random_splits(num_train=64, num_eval=32, num_frames=4, feature_dim=8, num_classes=10,
                              num_verbs=3, num_nouns=4)
  splits.train[5]["features"][2, 3] = np.nan  # one bad feature in one training example
  return splits


def _fake_config(**train_overrides):
  c = _tiny_config(None, **train_overrides)
  c.eval.batch_size = 32
  return c


def test_nonfinite_loss_stops_with_step_and_term_and_keeps_good_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  with pytest.raises(train.NumericalError, match=r"non-finite .*next_action_loss.* at step (\d+)") as e:
    train.run(_fake_config(steps=8, checkpoint_every=1), workdir, splits=_splits_with_a_nan_example())
  bad_step = int(re.search(r"at step (\d+)", str(e.value)).group(1))
  saved = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
  assert max(saved, default=0) < bad_step  # the bad state was never written
  if saved:
    assert all(np.all(np.isfinite(np.asarray(x))) for x in _params(workdir)[1])


@pytest.mark.slow  # the fast tier stops on the same bad example (the test above)
def test_skip_nonfinite_skips_the_bad_update(tmp_path):
  workdir = str(tmp_path / "run")
  result = train.run(_fake_config(steps=8, skip_nonfinite=True), workdir, splits=_splits_with_a_nan_example())
  assert result["step"] == 8
  _, leaves = _params(workdir)
  assert all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
