"""End to end on the public formats: RULSTM files -> prepare -> train -> metrics -> challenge JSON.

Each command runs in a fresh process (`python -m anticipax.main` / `anticipax.predict`) on the tiny
fixtures of tests/data/rulstm/fixtures.py with configs/ek55.py and configs/ek100.py shrunk from the
command line, as a user would run them.
"""

import json
import os
import re
import subprocess
import sys

import pytest

from tests.data.rulstm import fixtures as fx
from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = processes.env()

# One pytest-xdist worker runs the module (`--dist loadgroup`): `ek55_run` trains once, not once per worker.
pytestmark = pytest.mark.xdist_group("real_data_e2e")

TINY = ["--config.data.num_frames=4", "--config.model.head.num_layers=1", "--config.model.head.inter_dim=32",
        "--config.model.head.num_heads=2", "--config.model.backbone.dim=16", "--config.train.batch_size=8",
        "--config.eval.batch_size=8", "--config.schedule.warmup_steps=0", "--config.train.profile_steps=0",
        "--config.train.async_checkpointing=False", "--config.train.log_every=1"]
PARTS = ("action", "verb", "noun")


def _run(module, *args, check=True):
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=ENV, capture_output=True,
                        text=True, timeout=300)
  if check:
    assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _data_flags(root):
  return [f"--config.data.manual_dir={root / 'manual'}", f"--config.data.tfds_data_dir={root / 'tfds'}"]


def _printed_metrics(stdout):
  """{"eval/<key>": "12.34"} from `train.format_metrics`' table (percent, 2 decimals)."""
  rows = re.findall(r"^  (\S+)\s+([0-9.]+) %$", stdout, re.MULTILINE)
  return {f"eval/{k}": v for k, v in rows}


def _as_printed(metrics):
  return {k: f"{100 * v:.2f}" for k, v in metrics.items() if k.startswith("eval/")}


def _check_submission(submission, info, csv, *, num_verbs, num_nouns, marginal, version):
  """The challenge JSON of DATA_FORMATS.md section 4 for the segments of `csv` (EK55: version 0.1, EK100: 0.2,
  the only version the official EK100 evaluator accepts)."""
  assert submission["version"] == version and submission["challenge"] == "action_anticipation"
  results = submission["results"]
  # uids as the challenge wants them: EK55's "00124" -> "124"; EK100's "P33_01_0" unchanged.
  uids = [s.uid for s in info["segments"][csv]]
  assert sorted(results) == sorted(str(int(u)) if u.isdigit() else u for u in uids)
  action_keys = {f"{v},{n}" for _, v, n, _ in info["actions"]}
  for uid, r in results.items():
    assert set(r) == {"verb", "noun", "action"}
    assert set(r["verb"]) == {str(v) for v in range(num_verbs)}
    assert set(r["noun"]) == {str(n) for n in range(num_nouns)}
    assert 0 < len(r["action"]) <= 100 and set(r["action"]) <= action_keys
    assert len(r["action"]) == min(100, len(info["actions"]))
    for part in ("verb", "noun", "action"):
      assert all(isinstance(x, float) and 0.0 <= x <= 1.0 for x in r[part].values()), (uid, part)
    assert sum(r["verb"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(r["noun"].values()) == pytest.approx(1.0, abs=1e-5)
    if marginal:  # every action is listed, so verb scores are sums of action scores
      for v, score in r["verb"].items():
        assert score == pytest.approx(sum(s for k, s in r["action"].items() if k.split(",")[0] == v), abs=1e-6)
  return results


@pytest.fixture(scope="module")
def ek55_run(tmp_path_factory):
  """EK55 fixture (16 train / 16 validation / 8 + 8 test segments) trained for 2 steps."""
  root = tmp_path_factory.mktemp("ek55")
  info = fx.write_ek55(root / "manual", num_videos=4, segments_per_video=8, modalities=("rgb",))
  workdir = root / "work"
  proc = _run("anticipax.main", "--config=configs/ek55.py", f"--workdir={workdir}", *_data_flags(root), *TINY,
              "--config.train.steps=2")
  return root, info, workdir, proc


@pytest.mark.slow
def test_ek55_train_writes_the_ek55_metrics(ek55_run):
  _, _, workdir, proc = ek55_run
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert metrics["step"] == 2
  for part in PARTS:
    for metric in ("top1", "top5", "mean_top5_recall", "many_shot_mean_top5_recall"):
      assert 0.0 <= metrics[f"eval/{part}/{metric}"] <= 1.0, (part, metric)
    assert metrics[f"eval/{part}/top5"] >= metrics[f"eval/{part}/top1"]
  assert not any("unseen" in k or "tail" in k for k in metrics)  # EK100 only
  assert _printed_metrics(proc.stdout) == _as_printed(metrics)


@pytest.mark.slow
def test_ek55_predict_reproduces_validation_metrics(ek55_run):
  root, _, workdir, _ = ek55_run
  proc = _run("anticipax.predict", "--config=configs/ek55.py", f"--workdir={workdir}", *_data_flags(root), *TINY)
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert "Validation after step 2:" in proc.stdout
  # The same numbers as training's final evaluation (printed to 2 decimals of a percent).
  assert _printed_metrics(proc.stdout) == _as_printed(metrics)
  assert len(_as_printed(metrics)) == 3 * 5  # top1, top5, mean_top1, mean_top5_recall, many_shot_...


@pytest.mark.slow
def test_ek55_test_seen_submission(ek55_run):
  root, info, workdir, _ = ek55_run
  output = root / "test_seen.json"
  proc = _run("anticipax.predict", "--config=configs/ek55.py", f"--workdir={workdir}", *_data_flags(root), *TINY,
              "--split=test_seen", f"--output={output}")
  assert f"Wrote 8 segments (step 2) to {output}" in proc.stdout
  submission = json.loads(output.read_text())
  results = _check_submission(submission, info, "test_seen.csv", num_verbs=8, num_nouns=6, marginal=True,
                                version="0.1")
  first = info["segments"]["test_seen.csv"][0].uid
  assert first.startswith("00") and first[2:] in results and first not in results
  assert not any(k.startswith("sls_") for k in submission)  # EK55 has no supervision levels
  assert [f for f in os.listdir(root) if f.endswith(".tmp")] == []


@pytest.mark.slow
def test_ek100_train_and_test_submission(tmp_path):
  info = fx.write_ek100(tmp_path / "manual", num_videos=4, segments_per_video=8, modalities=("rgb",))
  workdir = tmp_path / "work"
  heads = "--config.model.verb_noun_heads=True"  # AVT marginalises; separate heads are an option
  _run("anticipax.main", "--config=configs/ek100.py", f"--workdir={workdir}", *_data_flags(tmp_path), *TINY,
       heads, "--config.train.steps=1")
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert metrics["step"] == 1
  # P32_01's segments (unseen participant) and the tail lists of the fixture select validation rows.
  for key in ("verb/unseen_mean_top5_recall", "noun/unseen_mean_top5_recall", "action/unseen_mean_top5_recall",
              "action/tail_mean_top5_recall", "verb/tail_mean_top5_recall", "noun/tail_mean_top5_recall",
              "action/mean_top5_recall", "verb/top1"):
    assert 0.0 <= metrics[f"eval/{key}"] <= 1.0, key
  assert not any("many_shot" in k for k in metrics)  # EK55 only

  output = tmp_path / "test.json"
  _run("anticipax.predict", "--config=configs/ek100.py", f"--workdir={workdir}", *_data_flags(tmp_path), *TINY,
       heads, "--split=test", f"--output={output}")
  submission = json.loads(output.read_text())
  # Separate verb/noun heads: verb scores are their own softmax, not sums of action scores.
  results = _check_submission(submission, info, "test_timestamps.csv", num_verbs=6, num_nouns=6, marginal=False,
                                version="0.2")
  assert len(results) == 8 and "P33_01_0" in results
  assert (submission["sls_pt"], submission["sls_tl"], submission["sls_td"]) == (1, 4, 3)


@pytest.mark.slow
def test_missing_manual_dir_is_one_line_naming_it(tmp_path):
  missing = tmp_path / "no_such_dir"
  proc = _run("anticipax.main", "--config=configs/egtea.py", f"--workdir={tmp_path / 'work'}",
              f"--config.data.manual_dir={missing}", f"--config.data.tfds_data_dir={tmp_path / 'tfds'}",
              check=False)
  assert proc.returncode != 0
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("anticipax: ") and str(missing) in lines[-1], proc.stderr[-2000:]
  assert "does not exist" in lines[-1]
  assert sum(line.startswith("anticipax:") for line in lines) == 1
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "work" / "metrics.json").exists()
