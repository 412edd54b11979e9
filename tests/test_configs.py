"""Every config loads, says how to run it, and carries the published hyperparameters."""

import importlib
import pathlib

import pytest

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parents[1] / "configs").glob("*.py")
                 if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads_and_documents_its_command(name):
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  assert f"--config=configs/{name}.py" in module.__doc__
  if "stages" not in config:
    assert config.task in ("anticipation", "mlm", "teacher")
    assert config.train.steps > 0 and config.train.batch_size > 0


def test_avt_heads_and_windows_follow_the_paper():
  from configs import egtea, ek55  # pylint: disable=g-import-not-at-top
  e, k = egtea.get_config(), ek55.get_config()
  assert (e.model.head.num_layers, e.model.head.num_heads, e.model.head.inter_dim, e.model.head.dropout) == (
      2, 4, 2048, 0.2)
  assert (k.model.head.num_layers, k.model.head.num_heads, k.model.head.inter_dim, k.model.head.dropout) == (
      12, 8, 2048, 0.8)
  assert (e.data.num_frames, e.data.fps, e.data.tau_a) == (10, 1.0, 0.5)
  assert (k.data.num_frames, k.data.fps, k.data.tau_a) == (10, 2.0, 1.0)  # tau_o = 10 / 2 fps = 5 s
  assert (e.distill.temperature, e.distill.weight) == (10.0, 150.0)
  assert (k.distill.temperature, k.distill.weight, k.distill.top_k) == (5.0, 20.0, 50)


def test_teachers_follow_the_paper():
  from configs import teacher_egtea, teacher_ek55  # pylint: disable=g-import-not-at-top
  e, k = teacher_egtea.get_config(), teacher_ek55.get_config()
  assert (e.loss.next_action, e.loss.verb, e.loss.noun, e.loss.class_weights) == (0.8, 0.1, 0.1, "balanced")
  assert (k.loss.next_action, k.loss.verb, k.loss.noun) == (0.7, 0.15, 0.15)
  assert (e.text.hist_len, k.text.hist_len) == (15, 5)
  assert e.schedule.peak_lr == k.schedule.peak_lr == 1e-5


def test_egtea_split_argument():
  from configs import egtea  # pylint: disable=g-import-not-at-top
  assert egtea.get_config("split=3").data.split == 3
