"""End-to-end trainer tests: demo run, exact resume, sharded == single-device."""

import json
import os
import subprocess
import sys

import jax
from jax.sharding import PartitionSpec as P
import numpy as np
import orbax.checkpoint as ocp
import pytest

from anticipax import sharding
from anticipax import train
from anticipax.data import fake
from configs import demo
from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(workdir, data_dir, *overrides):
  """Runs `python -m anticipax.main` on configs/demo.py in a fresh process (1 CPU device)."""
  cmd = [sys.executable, "-m", "anticipax.main", "--config=configs/demo.py", f"--workdir={workdir}",
         f"--config.data.tfds_data_dir={data_dir}", "--config.train.async_checkpointing=False",
         *overrides]
  proc = subprocess.run(cmd, cwd=REPO, env=processes.env(), capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _restore_state(workdir):
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), item_names=("state", "data")) as mngr:
    step = mngr.latest_step()
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                          data=ocp.args.JsonRestore()))
  return step, restored.state, restored.data


@pytest.mark.slow
def test_demo_two_steps_writes_outputs(tmp_path, demo_data_dir):
  workdir = tmp_path / "demo"
  proc = _main(workdir, demo_data_dir, "--config.train.steps=2", "--config.train.log_every=1")
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert metrics["step"] == 2
  for key in ("action/top1", "action/top5", "action/mean_top1", "verb/top1", "noun/mean_top5_recall"):
    assert 0.0 <= metrics[f"eval/{key}"] <= 1.0
  assert metrics["eval/action/top5"] >= metrics["eval/action/top1"]
  assert "Validation after step 2" in proc.stdout and "action/mean_top1" in proc.stdout
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2"]
  assert os.listdir(workdir / "best") == ["2"]


@pytest.mark.slow
def test_resume_in_fresh_process_is_exact(tmp_path, demo_data_dir):
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  common = ["--config.train.steps=4", "--config.train.checkpoint_every=2", "--config.train.eval_every=0"]
  _main(straight, demo_data_dir, *common)
  _main(resumed, demo_data_dir, *common, "--config.train.max_steps_per_run=2")
  assert _restore_state(resumed)[0] == 2
  proc = _main(resumed, demo_data_dir, *common)
  assert "Resumed from" in proc.stderr
  step_a, state_a, data_a = _restore_state(straight)
  step_b, state_b, data_b = _restore_state(resumed)
  assert step_a == step_b == 4
  assert data_a == data_b
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b) > 10
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _small_config(mesh):
  config = demo.get_config()
  config.train.update(batch_size=16, steps=3)
  config.eval.batch_size = 16
  config.model.head.update(inter_dim=32, num_heads=4)
  config.model.backbone.dim = 16
  config.mesh.update(mesh)
  return config


def _three_steps(mesh, splits):
  trainer = train.Trainer(_small_config(mesh), splits, devices=jax.devices()[: np.prod(list(mesh.values()))])
  state = trainer.init_state()
  iterator = trainer.train_iterator()
  losses = []
  for _ in range(3):
    batch = jax.tree.map(np.asarray, next(iterator))
    state, m, _ = trainer.train_step(state, sharding.global_batch(batch, trainer.mesh))
    losses.append(float(m.compute()["loss"]))
  return trainer, state, losses


@pytest.fixture(scope="module")
def single_device_run():
  splits = fake.random_splits(num_train=64, num_eval=20, num_frames=6, feature_dim=12, num_classes=24,
                              num_verbs=5, num_nouns=7)
  return (splits, *_three_steps({"data": 1, "fsdp": 1, "tensor": 1}, splits))


@pytest.mark.xdist_group("sharded_steps")  # one worker (`--dist loadgroup`): `single_device_run` runs once
@pytest.mark.parametrize("mesh, shard_shape", [
    ({"data": 2, "fsdp": 4, "tensor": 1}, (32 // 4, 128)),  # embed -> fsdp
    # mlp -> tensor; the fast tier's tensor-parallel check is tests/next_step/test_model.py's data x tensor mesh.
    pytest.param({"data": 2, "fsdp": 1, "tensor": 4}, (32, 128 // 4), marks=pytest.mark.slow),
])
def test_sharded_steps_match_single_device(mesh, shard_shape, single_device_run):
  assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
  splits, ref_trainer, ref_state, ref_losses = single_device_run
  trainer, state, losses = _three_steps(mesh, splits)
  np.testing.assert_allclose(losses, ref_losses, rtol=1e-5, atol=1e-5)
  # Parameters are laid out as the config's logical-axis rules say.
  fc = state.params["head"]["h_0"]["mlp"]["fc"]["kernel"]  # logical axes ("embed", "mlp"), [32, 128]
  assert fc.sharding.spec == P("fsdp", "tensor")
  assert fc.addressable_shards[0].data.shape == shard_shape
  mu = state.opt_state[1][0].mu["head"]["h_0"]["mlp"]["fc"]["kernel"]  # Adam moments follow the params
  assert mu.addressable_shards[0].data.shape == shard_shape
  for a, b in zip(jax.tree.leaves(ref_state.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  # Evaluation (20 examples: the last batch is padded) gives the same metrics too.
  ref_eval = ref_trainer.evaluate(ref_state.params)
  sharded_eval = trainer.evaluate(state.params)
  for k, v in ref_eval.items():
    assert sharded_eval[k] == pytest.approx(v, abs=1e-6), k
