"""Paths that may be in a bucket: `anticipax.paths`, and gs:// workdirs end to end (gs:// redirected to a local
folder by `tests/fake_gcs`): a train, `predict --output`, a pipeline's comparison and `report` write everything
into the bucket and nothing under the current directory, and a run killed there resumes there."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from etils import epath
import pytest

from anticipax import distill_pipeline
from anticipax import paths
from configs import demo_kd
from tests.fake_gcs import sitecustomize as fake_gcs
from tests import processes

REPO = pathlib.Path(__file__).resolve().parents[1]


# -- anticipax.paths ---------------------------------------------------------------------------------------
def test_local_paths_are_absolute_and_bucket_uris_stay_as_written(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  assert str(paths.path("runs/a")) == str(tmp_path / "runs" / "a")
  assert str(paths.path("~/x")) == str(tmp_path / "home" / "x")
  assert paths.is_remote("gs://b/x") and not paths.is_remote("/tmp/gs:/b")
  assert str(paths.path("gs://b/run") / "metrics.json") == "gs://b/run/metrics.json"


def test_a_local_only_input_given_a_bucket_path_is_refused_in_one_line():
  with pytest.raises(ValueError, match=r"^the RULSTM LMDB: gs://b/lmdb is in an object store, but the RULSTM "
                                       r"LMDB is read from a local disk; copy it to local scratch"):
    paths.local("gs://b/lmdb", "the RULSTM LMDB")


def test_open_atomic_leaves_nothing_behind_when_the_writer_fails(tmp_path):
  target = tmp_path / "deep" / "out.json"
  paths.write_text(target, "old")
  with pytest.raises(RuntimeError):
    with paths.open_atomic(target, "w") as f:
      f.write("half")
      raise RuntimeError("killed while writing")
  assert target.read_text() == "old" and sorted(os.listdir(target.parent)) == ["out.json"]
  paths.write_text(tmp_path / "new" / "a.txt", "é")
  assert (tmp_path / "new" / "a.txt").read_text(encoding="utf-8") == "é"
  assert os.stat(tmp_path / "new" / "a.txt").st_mode & 0o777 == 0o644  # readable by a shared folder's users


def test_copy_tree_and_local_copy_keep_sub_folders(tmp_path):
  src = tmp_path / "src"
  (src / "sub").mkdir(parents=True)
  (src / "a.json").write_text("1")
  (src / "sub" / "b.txt").write_text("2")
  paths.copy_tree(src, tmp_path / "dst")
  assert (tmp_path / "dst" / "a.json").read_text() == "1" and (tmp_path / "dst" / "sub" / "b.txt").read_text() == "2"
  assert paths.local_copy(src) == str(src)  # a local folder is read where it is


# -- gs:// end to end --------------------------------------------------------------------------------------
@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """gs://bucket/... is <tmp>/gcs/bucket/... in this process and the processes it starts (a pipeline's
  parallel arm runs); the current directory is an empty folder that must stay empty."""
  root, cwd = tmp_path / "gcs", tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  fake_gcs.install_for_test(monkeypatch, str(root))
  for name in (fake_gcs.ENV, "PYTHONPATH"):
    monkeypatch.setenv(name, fake_gcs.env(str(root))[name])
  assert str(epath.Path("gs://bucket/x")) == str(root / "bucket" / "x")
  yield root, cwd
  assert not os.listdir(cwd), f"written under the current directory: {os.listdir(cwd)}"


def _env(root) -> dict:
  return fake_gcs.env(str(root), processes.env(PYTHONPATH=str(REPO)))


_TINY_AVT = ["--config.model.backbone.dim=16", "--config.model.head.inter_dim=32", "--config.model.head.num_heads=2",
             "--config.model.head.num_layers=1", "--config.train.batch_size=16", "--config.eval.batch_size=256",
             "--config.train.log_every=1", "--config.train.eval_every=0", "--config.train.checkpoint_every=1"]


@pytest.mark.slow
def test_a_gs_run_is_killed_resumes_and_predicts_into_the_bucket(bucket):
  root, cwd = bucket
  train = [sys.executable, "-m", "anticipax.main", f"--config={REPO}/configs/demo.py",
           "--workdir=gs://bucket/runs/demo", "--config.data.tfds_data_dir=gs://bucket/tfds",
           "--config.train.steps=30", *_TINY_AVT]
  proc = subprocess.Popen(train, cwd=cwd, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  checkpoints = root / "bucket" / "runs" / "demo" / "checkpoints"
  deadline = time.time() + 300
  while not (checkpoints.is_dir() and any(p.name.isdigit() and int(p.name) >= 3 for p in checkpoints.iterdir())):
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, "no checkpoint in the bucket"
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert not (root / "bucket" / "runs" / "demo" / "metrics.json").exists()
  done = subprocess.run(train, cwd=cwd, env=_env(root), capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-3000:]
  assert "Resumed from" in done.stderr
  metrics = json.loads((root / "bucket" / "runs" / "demo" / "metrics.json").read_text())
  assert metrics["step"] == 30
  assert (root / "bucket" / "tfds" / "synthetic_kitchen").is_dir()  # the dataset was prepared in the bucket
  assert any(p.name.startswith("events.out.tfevents") for p in (root / "bucket" / "runs" / "demo").iterdir())

  predict = subprocess.run(
      [sys.executable, "-m", "anticipax.predict", f"--config={REPO}/configs/demo.py",
       "--workdir=gs://bucket/runs/demo", "--config.data.tfds_data_dir=gs://bucket/tfds", "--checkpoint=latest",
       "--output=gs://bucket/submissions/demo.json", *_TINY_AVT],
      cwd=cwd, env=_env(root), capture_output=True, text=True)
  assert predict.returncode == 0, predict.stderr[-3000:]
  submission = json.loads((root / "bucket" / "submissions" / "demo.json").read_text())
  assert submission["results"]

  report = subprocess.run([sys.executable, "-m", "anticipax.report", "gs://bucket/runs"], cwd=cwd,
                          env=_env(root), capture_output=True, text=True)
  assert report.returncode == 0, report.stderr[-3000:]
  assert "demo" in report.stdout and "30" in report.stdout


@pytest.mark.slow
def test_a_pipeline_in_a_bucket_writes_its_stages_exports_and_comparison_there(bucket, demo_data_dir):
  root, _ = bucket
  c = demo_kd.get_config()
  c.tfds_data_dir = demo_data_dir
  for stage in c.stages.values():
    stage.train.update(steps=2, log_every=1, eval_every=0, checkpoint_every=2, async_checkpointing=False)
    stage.eval.batch_size = 512
  for name in ("mlm", "teacher"):
    c.stages[name].text.max_len = 32
  c.stages.mlm.text.scratch.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  for name in ("baseline", "student"):
    c.stages[name].model.backbone.dim = 16
    c.stages[name].model.head.update(inter_dim=32, num_heads=2, num_layers=1)
  results = distill_pipeline.run(c, "gs://bucket/kd")
  distill_pipeline.summarize(c, results, "gs://bucket/kd")
  kd = root / "bucket" / "kd"
  assert (kd / "tokenizer" / "tokenizer.json").is_file()
  assert (kd / "mlm" / "text_model" / "tokenizer" / "tokenizer.json").is_file()
  assert (kd / "teacher" / "teacher_outputs_train.npz").is_file()
  assert json.loads((kd / "student" / "seed_0" / "config.json").read_text())["distill"]["teacher_outputs"] == str(
      kd / "teacher" / "teacher_outputs_train.npz")
  assert json.loads((kd / "comparison.json").read_text())["metric"] == "action/mean_top1"
  assert (kd / "comparison.md").read_text().startswith("| metric |")
