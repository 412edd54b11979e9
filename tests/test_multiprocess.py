"""Two processes (4 fake CPU devices each) train exactly like one process with 8 devices."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OVERRIDES = ["--config.model.backbone.dim=16", "--config.model.head.inter_dim=32",
             "--config.model.head.num_heads=2", "--config.model.head.num_layers=1",
             "--config.train.batch_size=16", "--config.eval.batch_size=64", "--config.train.steps=4",
             "--config.train.checkpoint_every=2", "--config.train.eval_every=0",
             "--config.train.log_every=1", "--config.train.async_checkpointing=False"]


def _cmd(workdir, data_dir):
  return [sys.executable, "-m", "anticipax.main", "--config=configs/demo.py", f"--workdir={workdir}",
          f"--config.data.tfds_data_dir={data_dir}", *OVERRIDES]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _state(workdir):
  """Restores onto this process's first device, whatever devices wrote the checkpoint."""
  handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  with ocp.CheckpointManager(os.path.join(workdir, "checkpoints"), item_names=("state", "data"),
                             item_handlers=handlers) as mngr:
    step = mngr.latest_step()
    metadata = mngr.item_metadata(step)["state"]
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), metadata.tree)
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target),
                                                          data=ocp.args.JsonRestore()))
  return step, restored.state, restored.data


@pytest.mark.slow
def test_two_processes_match_one_process_with_eight_devices(tmp_path, demo_data_dir):
  single, pair = tmp_path / "single", tmp_path / "pair"
  proc = subprocess.run(_cmd(single, demo_data_dir), cwd=REPO, env=processes.env(8), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]

  port = _free_port()
  procs = [subprocess.Popen(_cmd(pair, demo_data_dir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=processes.env(4, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                                JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)))
           for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  assert "JAX process 1/2" in outputs[1][1]

  # The pair's checkpoint restores in this single process and equals the single-process run.
  step_a, state_a, data_a = _state(single)
  step_b, state_b, data_b = _state(pair)
  assert step_a == step_b == 4 and data_a == data_b
  leaves_a, leaves_b = jax.tree.leaves(state_a), jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  metrics_a = json.loads((single / "metrics.json").read_text())
  metrics_b = json.loads((pair / "metrics.json").read_text())
  assert metrics_a.keys() == metrics_b.keys()
  for k in metrics_a:
    assert metrics_b[k] == pytest.approx(metrics_a[k], abs=1e-6), k
