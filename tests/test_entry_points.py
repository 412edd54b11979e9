"""The command-line entry points (`main`, `predict`, `prepare`) in this process, at tiny size.

Their `main` functions run with the values their flags would hold; the commands themselves, in fresh
processes and as documented, are the slow tier (tests/test_documented_commands.py, test_train.py,
test_real_data_e2e.py). The trainer is test_fault_tolerance.py's, so its programs compile once per session.
"""

import json
import re
import types

import pytest

from anticipax import main as main_lib
from anticipax import predict
from anticipax import prepare
from configs import ek55
from tests.data.rulstm import fixtures as fx
from tests.test_fault_tolerance import _tiny_config

# The worker that runs test_fault_tolerance.py (`--dist loadgroup`): the same tiny trainer, compiled once.
pytestmark = pytest.mark.xdist_group("tiny_demo_trainer")


def _main(monkeypatch, config, workdir, overwrite=False):
  for name, value in (("_CONFIG", config), ("_WORKDIR", workdir), ("_OVERWRITE", overwrite)):
    monkeypatch.setattr(main_lib, name, types.SimpleNamespace(value=value))
  main_lib.main(["main"])


def _flags(monkeypatch, module, **values):
  monkeypatch.setattr(module, "flags", types.SimpleNamespace(FLAGS=types.SimpleNamespace(**values)))


def test_main_trains_predict_rescores_and_another_config_exits_in_one_line(tmp_path, demo_data_dir, capsys,
                                                                             monkeypatch):
  workdir = str(tmp_path / "run")
  config = _tiny_config(demo_data_dir, steps=2)
  _main(monkeypatch, config, workdir)
  printed = capsys.readouterr().out
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert metrics["step"] == 2 and printed.startswith("Validation after step 2:")
  assert f"action/mean_top1{' ' * 17}{100 * metrics['eval/action/mean_top1']:6.2f} %" in printed
  with pytest.raises(main_lib.app.UsageError, match="unexpected arguments"):
    main_lib.main(["main", "extra"])

  # predict: the best checkpoint (step 2) scores the validation split as the run's final evaluation did.
  _flags(monkeypatch, predict, config=config, workdir=workdir, split=None, output=None, checkpoint="best")
  predict.main(["predict"])
  assert capsys.readouterr().out.strip() == printed.strip()

  # A workdir of another config: one line, no traceback (overwriting is the user's explicit choice).
  other = _tiny_config(demo_data_dir, steps=2)
  other.model.dropout = 0.5
  with pytest.raises(SystemExit, match=r"^anticipax: .*another config \(differs in model\.dropout\)"):
    _main(monkeypatch, other, workdir)
  _flags(monkeypatch, predict, config=config, workdir=str(tmp_path / "none"), split=None, output=None,
         checkpoint="best")
  with pytest.raises(SystemExit, match=r"^anticipax: "):
    predict.main(["predict"])


def test_prepare_builds_the_dataset_and_prints_its_splits(tmp_path, capsys, monkeypatch):
  fx.write_ek55(tmp_path / "ek55", num_videos=4, segments_per_video=4, modalities=("rgb",))
  config = ek55.get_config()
  config.data.update(manual_dir=str(tmp_path / "ek55"), tfds_data_dir=str(tmp_path / "tfds"))
  _flags(monkeypatch, prepare, config=config)
  prepare.main(["prepare"])
  printed = capsys.readouterr().out  # after TFDS's own lines about preparing the dataset
  head, *rows = printed[printed.index("epic_kitchens_55 ("):].splitlines()
  assert head.startswith("epic_kitchens_55 (") and str(tmp_path / "tfds") in head
  sizes = {name: int(n) for name, n, unit in (row.split() for row in rows) if unit == "examples"}
  # 4 videos x 4 segments, half of the videos validating; the test files hold one video each.
  assert sizes == {"train": 8, "validation": 8, "test_seen": 4, "test_unseen": 4}
  missing = tmp_path / "no_such_dir"
  config.data.manual_dir = str(missing)
  config.data.tfds_data_dir = str(tmp_path / "tfds_2")
  with pytest.raises(SystemExit, match=r"^anticipax: .*" + re.escape(str(missing))):
    prepare.main(["prepare"])
