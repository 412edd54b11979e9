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


def _recipe(c):
  """The numbers a published recipe fixes, read off a config (epochs from steps and the global batch)."""
  steps_per_epoch = c.train.eval_every
  return {
      "backbone": c.model.backbone.kind, "layers": c.model.head.num_layers, "heads": c.model.head.num_heads,
      "width": c.model.head.inter_dim, "block_dropout": c.model.head.dropout, "classifier_dropout": c.model.dropout,
      "optimizer": c.optimizer.name, "lr": c.schedule.peak_lr, "wd": c.optimizer.weight_decay,
      "decay_all": c.optimizer.decay_all, "clip": c.optimizer.grad_clip, "batch": c.train.batch_size,
      "epochs": c.train.steps // steps_per_epoch, "warmup_epochs": c.schedule.warmup_steps // steps_per_epoch,
      "schedule": c.schedule.decay, "losses": (c.loss.next_action, c.loss.future_feature, c.loss.past_action),
      "window": (c.data.num_frames, c.data.fps, c.data.tau_a), "modalities": tuple(c.data.modalities),
      "verb_noun_heads": c.model.verb_noun_heads,
  }


# AVT's released expts files (facebookresearch/AVT), per process as `launch.py -g` runs them.
AVT_RECIPES = {
    # expts/11_egtea_avt_tsn.txt
    ("egtea", None): dict(backbone="identity", layers=2, heads=4, width=2048, block_dropout=0.1,
                          classifier_dropout=0.8, optimizer="sgd", lr=1e-3, wd=1e-6, decay_all=True, clip=0.0,
                          batch=64, epochs=15, warmup_epochs=0, schedule="cosine", losses=(1.0, 1.0, 0.1),
                          window=(10, 1.0, 0.5), modalities=("rgb",), verb_noun_heads=False),
    # expts/08_ek55_avt_tsn.txt
    ("ek55", None): dict(backbone="identity", layers=12, heads=8, width=2048, block_dropout=0.1,
                         classifier_dropout=0.8, optimizer="adam", lr=5e-6, wd=1e-4, decay_all=True, clip=0.0,
                         batch=32, epochs=20, warmup_epochs=5, schedule="cosine", losses=(1.0, 2.0, 0.0),
                         window=(10, 2.0, 1.0), modalities=("rgb",), verb_noun_heads=False),
    # expts/10_ek55_avt_ig65m.txt: as 08 on IG65M features, no warmup
    ("ek55", "features=ig65m"): dict(backbone="identity", layers=12, heads=8, width=2048, block_dropout=0.1,
                                     classifier_dropout=0.8, optimizer="adam", lr=5e-6, wd=1e-4, decay_all=True,
                                     clip=0.0, batch=32, epochs=20, warmup_epochs=0, schedule="cosine",
                                     losses=(1.0, 2.0, 0.0), window=(10, 2.0, 1.0), modalities=("ig65m",),
                                     verb_noun_heads=False),
    # expts/02_ek100_avt_tsn.txt
    ("ek100", None): dict(backbone="identity", layers=6, heads=4, width=2048, block_dropout=0.1,
                          classifier_dropout=0.2, optimizer="sgd", lr=1e-3, wd=1e-6, decay_all=True, clip=0.0,
                          batch=64, epochs=50, warmup_epochs=20, schedule="cosine", losses=(1.0, 1.0, 1.0),
                          window=(10, 1.0, 1.0), modalities=("rgb",), verb_noun_heads=False),
    # expts/04_ek100_avt_ig65m.txt
    ("ek100", "features=ig65m"): dict(backbone="identity", layers=8, heads=2, width=2048, block_dropout=0.1,
                                      classifier_dropout=0.2, optimizer="sgd", lr=1e-3, wd=1e-6, decay_all=True,
                                      clip=0.0, batch=64, epochs=50, warmup_epochs=5, schedule="cosine",
                                      losses=(1.0, 1.0, 1.0), window=(10, 1.0, 1.0), modalities=("ig65m",),
                                      verb_noun_heads=False),
    # expts/12_egtea_avt.txt (AVT-b: ViT-B/16 on frames), one process: 3 clips at 5e-4
    ("egtea_vitb", "world=1"): dict(backbone="vit", layers=2, heads=4, width=2048, block_dropout=0.1,
                                    classifier_dropout=0.2, optimizer="sgd", lr=5e-4, wd=1e-6, decay_all=True,
                                    clip=0.0, batch=3, epochs=10, warmup_epochs=5, schedule="cosine",
                                    losses=(1.0, 1.0, 0.1), window=(10, 1.0, 0.5), modalities=("rgb",),
                                    verb_noun_heads=False),
}


@pytest.mark.parametrize("name, arg", sorted(AVT_RECIPES, key=str))
def test_student_configs_hold_avt_recipes(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  assert _recipe(config) == AVT_RECIPES[(name, arg)]
  module = importlib.import_module(f"configs.{name}")
  steps_per_epoch = module.TRAIN_EXAMPLES // config.train.batch_size  # an epoch = one pass over training.csv
  assert config.train.steps == AVT_RECIPES[(name, arg)]["epochs"] * steps_per_epoch
  assert config.schedule.end_factor == 0.0 and config.optimizer.momentum == 0.9


def test_world_option_scales_batch_and_lr_as_avt_launches():
  from configs import egtea, ek55  # pylint: disable=g-import-not-at-top
  e = egtea.get_config("world=2")  # AVT's 2-GPU EGTEA run: 2 x 64 at 2 x 1e-3
  assert (e.train.batch_size, e.schedule.peak_lr) == (128, 2e-3)
  k = ek55.get_config("world=4")
  assert (k.train.batch_size, k.schedule.peak_lr) == (128, 2e-5)
  assert k.train.steps == 20 * (23493 // 128)


def test_distillation_settings_follow_the_released_code():
  from configs import egtea, ek55  # pylint: disable=g-import-not-at-top
  e, k = egtea.get_config().distill, ek55.get_config().distill
  assert (e.temperature, e.weight, e.top_k, e.reduction) == (10.0, 150.0, 0, "mean")
  assert (k.temperature, k.weight, k.top_k, k.reduction) == (5.0, 20.0, 50, "mean")


# The seed paper's teacher code and README (StonyBrookNLP/action-anticipation-lmtovideo).
TEACHER_RECIPES = {
    "teacher_egtea": dict(pretrained="bert-base-uncased", batch=16, epochs=5, max_len=512, hist_len=15,
                          losses=(0.8, 0.1, 0.1), class_weights="balanced"),
    "teacher_ek55": dict(pretrained="distilbert-base-uncased", batch=16, epochs=8, max_len=512, hist_len=5,
                         losses=(0.7, 0.15, 0.15), class_weights=""),
}


@pytest.mark.parametrize("name", sorted(TEACHER_RECIPES))
def test_teachers_hold_the_released_recipe(name):
  c = importlib.import_module(f"configs.{name}").get_config()
  got = dict(pretrained=c.text.pretrained, batch=c.train.batch_size, epochs=c.train.steps // c.train.eval_every,
             max_len=c.text.max_len, hist_len=c.text.hist_len,
             losses=(c.loss.next_action, c.loss.verb, c.loss.noun), class_weights=c.loss.class_weights)
  assert got == TEACHER_RECIPES[name]
  # AdamW at a constant 1e-5, eps 1e-8, weight decay 1e-7; no warmup, no clipping, no dropout before the heads.
  assert (c.optimizer.name, c.schedule.peak_lr, c.schedule.decay, c.schedule.warmup_steps) == (
      "adamw", 1e-5, "constant", 0)
  assert (c.optimizer.eps, c.optimizer.weight_decay, c.optimizer.grad_clip, c.model.dropout) == (
      1e-8, 1e-7, 0.0, 0.0)


@pytest.mark.parametrize("name", ["egtea_kd", "ek55_kd", "ek100_kd"])
def test_kd_pipelines_share_data_and_teacher_settings(name):
  c = importlib.import_module(f"configs.{name}").get_config()
  c.manual_dir, c.tfds_data_dir, c.pretrained = "/m", "/t", "/models/bert"
  assert c.order == ["mlm", "teacher", "baseline", "student"]
  for stage in ("teacher", "baseline", "student"):
    assert (c.stages[stage].data.manual_dir, c.stages[stage].data.tfds_data_dir) == ("/m", "/t")
  assert c.stages.teacher.text.pretrained == c.stages.mlm.text.pretrained == "/models/bert"
  assert c.stages.student.distill.kind == "kl" and not c.stages.baseline.distill.kind
  baseline, student = c.stages.baseline.to_dict(), c.stages.student.to_dict()
  del baseline["distill"], student["distill"]
  assert baseline == student  # the arms differ by distillation only


def test_egtea_split_argument():
  from configs import egtea  # pylint: disable=g-import-not-at-top
  assert egtea.get_config("split=3").data.split == 3


@pytest.mark.parametrize("name, arg, message", [
    ("egtea", "splitt=2", r"^configs/egtea.py: config argument key 'splitt' is unknown \(known keys: split, world\)$"),
    ("egtea", "split", r"^configs/egtea.py: config argument 'split' is not key=value"),
    ("egtea", "split=4", r"^configs/egtea.py: config argument split='4'; known: 1, 2, 3$"),
    ("egtea_kd", "world=two", r"^configs/egtea.py: config argument world='two' is not int$"),
    ("ek55", "features=rgb", r"^configs/ek55.py: config argument features='rgb'; known: tsn, ig65m$"),
    ("ek100", "world=2,world=4", r"^configs/ek100.py: config argument key 'world' is given twice$"),
    ("tasty", "stage=student", r"^configs/tasty.py: config argument stage='student'; known: , pretrain"),
    ("demo", "steps=3", r"^configs/demo.py: config argument key 'steps' is unknown"),
    ("tasty_demo", "ablations", r"^configs/tasty_demo.py: config argument 'ablations' is unknown"),
])
def test_config_arguments_are_parsed_strictly(name, arg, message):
  module = importlib.import_module(f"configs.{name}")
  with pytest.raises(ValueError, match=message):
    module.get_config(arg)


def test_config_arguments_reach_the_config():
  from configs import egtea, ek55  # pylint: disable=g-import-not-at-top
  assert egtea.get_config("split=3").data.split == 3 and egtea.get_config().data.split == 1
  assert ek55.get_config("features=ig65m").data.modalities == ["ig65m"]
  one, two = egtea.get_config(), egtea.get_config("world=2")
  assert (two.train.batch_size, two.schedule.peak_lr) == (2 * one.train.batch_size, 2 * one.schedule.peak_lr)
