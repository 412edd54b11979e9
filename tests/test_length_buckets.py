"""Length bucketing of text batches: the buckets, the cut, and runs that agree with static padding."""

import jax
import numpy as np
import pytest

from anticipax import train
from anticipax.data import action_text
from anticipax.data import buckets
from anticipax.data import teacher_outputs
from anticipax.tasks import mlm as mlm_task
from configs import demo_kd


def test_auto_buckets_pad_at_most_a_quarter_beyond_the_longest_row():
  assert buckets.bucket_lengths(128) == (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128)
  assert buckets.bucket_lengths(512)[-6:] == (224, 256, 320, 384, 448, 512)
  assert buckets.bucket_lengths(100) == (16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 100)
  lengths = buckets.bucket_lengths(512)
  assert all(buckets.bucket_for(n, lengths) <= max(16, 1.25 * n) for n in range(1, 513))
  assert buckets.bucket_lengths(12) == (12,)
  assert buckets.bucket_lengths(128, "none") == (128,)
  assert buckets.bucket_lengths(128, "") == (128,)
  assert buckets.bucket_lengths(128, "40, 80") == (40, 80, 128)
  assert buckets.bucket_lengths(128, [64]) == (64, 128)


@pytest.mark.parametrize("spec", ["0,64", "64,129", "short"])
def test_bad_bucket_lists_name_the_config_key(spec):
  with pytest.raises(ValueError, match="text.length_buckets"):
    buckets.bucket_lengths(128, spec)


def test_a_batch_is_cut_to_the_bucket_of_its_longest_row():
  mask = np.zeros((3, 64), np.int32)
  mask[0, :10], mask[1, :33], mask[2, :5] = 1, 1, 1
  assert buckets.longest_row(mask) == 33
  assert buckets.longest_row(np.zeros((2, 8))) == 1
  lengths = buckets.bucket_lengths(64)
  assert buckets.bucket_for(33, lengths) == 40 and buckets.bucket_for(48, lengths) == 48
  assert buckets.bucket_for(1, lengths) == 16
  with pytest.raises(ValueError, match="longer than the longest bucket"):
    buckets.bucket_for(65, lengths)
  ids = np.arange(3 * 64).reshape(3, 64)
  out = buckets.cut({"input_ids": ids, "attention_mask": mask, "action": np.arange(3)},
                    ("input_ids", "attention_mask"), 48)
  assert out["input_ids"].shape == (3, 48) and out["attention_mask"].shape == (3, 48)
  np.testing.assert_array_equal(out["input_ids"], ids[:, :48])
  np.testing.assert_array_equal(out["action"], np.arange(3))


def test_mlm_masks_do_not_depend_on_the_bucket():
  rng = jax.random.key(3)
  ids = np.random.default_rng(0).integers(5, 50, (4, 32)).astype(np.int32)
  maskable = np.ones_like(ids, bool)
  full, full_sel = mlm_task.mask_tokens(rng, ids, maskable, mask_id=1, vocab_size=50, rate=0.3)
  cut, cut_sel = mlm_task.mask_tokens(rng, ids[:, :16], maskable[:, :16], mask_id=1, vocab_size=50, rate=0.3,
                                      draw_len=32)
  np.testing.assert_array_equal(cut, full[:, :16])
  np.testing.assert_array_equal(cut_sel, full_sel[:, :16])


def _tiny(c, data_dir, steps=3):
  c.train.update(steps=steps, batch_size=16, log_every=1, eval_every=0, checkpoint_every=steps,
                 async_checkpointing=False)
  c.eval.batch_size = 64
  c.data.tfds_data_dir = data_dir
  c.text.scratch.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
  return c


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory, demo_data_dir):
  mlm = _tiny(demo_kd.get_config().stages.mlm, demo_data_dir)
  path = str(tmp_path_factory.mktemp("tok") / "tokenizer")
  action_text.build_word_tokenizer(mlm_task.MlmTask.load_data(mlm).train, path)
  return path


def _run_both(config, tmp_path):
  """The same run with length buckets and with static padding; returns both results and trainers."""
  out = {}
  for spec in ("auto", "none"):
    c = config.copy_and_resolve_references()
    c.text.length_buckets = spec
    out[spec] = train.run(c, str(tmp_path / spec))
  return out


def _cut_lengths(config):
  """(the padded lengths of the first training batches, text.max_len)."""
  trainer = train.Trainer(config)
  batches = trainer.batches(trainer.train_iterator())
  return {next(batches)[1]["input_ids"].shape[1] for _ in range(3)}, int(config.text.max_len)


@pytest.mark.slow
def test_teacher_with_buckets_matches_static_padding(tmp_path, demo_data_dir, tokenizer_dir):
  c = _tiny(demo_kd.get_config().stages.teacher, demo_data_dir)
  c.text.update(init_workdir="", tokenizer=tokenizer_dir, hist_len=2, max_len=48)
  lengths, max_len = _cut_lengths(c)
  assert max(lengths) < max_len  # the buckets do cut these batches
  runs = _run_both(c, tmp_path)
  assert runs["auto"].keys() == runs["none"].keys()
  for key, value in runs["none"].items():
    np.testing.assert_allclose(runs["auto"][key], value, rtol=1e-4, atol=1e-6, err_msg=key)
  # The same parameters score the same with and without cutting (the runs above may drift apart by
  # float noise that Adam amplifies where a gradient is ~0, so their exported files are not compared).
  outputs = {}
  for spec in ("auto", "none"):
    c.text.length_buckets = spec
    trainer = train.Trainer(c)
    state = train.restore_state(trainer, str(tmp_path / "none"), "latest")
    outputs[spec] = trainer.predict(state.params, trainer.splits.eval)
  for key in ("logits", "verb_logits", "noun_logits", "cls"):
    np.testing.assert_allclose(outputs["auto"][key], outputs["none"][key], rtol=1e-5, atol=1e-6, err_msg=key)
  np.testing.assert_array_equal(outputs["auto"]["index"], outputs["none"]["index"])
  assert len(teacher_outputs.TeacherOutputs.load(str(tmp_path / "auto" / "teacher_outputs_train.npz"))) > 0


@pytest.mark.slow
def test_mlm_with_buckets_matches_static_padding(tmp_path, demo_data_dir, tokenizer_dir):
  c = _tiny(demo_kd.get_config().stages.mlm, demo_data_dir)
  c.text.update(tokenizer=tokenizer_dir, max_len=128)  # the corpus lines are 35-64 words
  lengths, max_len = _cut_lengths(c)
  assert max(lengths) < max_len
  runs = _run_both(c, tmp_path)
  for key, value in runs["none"].items():
    np.testing.assert_allclose(runs["auto"][key], value, rtol=1e-4, atol=1e-6, err_msg=key)


def test_processes_agree_on_one_length(monkeypatch):
  """With several processes every one cuts to the bucket of the longest row of any process's slice."""
  trainer = train.Trainer.__new__(train.Trainer)  # cut_padding needs only the task's bucketing fields

  class Task:
    padded_keys, length_mask_key, length_buckets = ("input_ids", "attention_mask"), "attention_mask", (16, 32, 64)

  trainer.task = Task()
  mask = np.zeros((2, 64), np.int32)
  mask[:, :10] = 1
  local = {"input_ids": mask * 7, "attention_mask": mask, "action": np.arange(2)}
  assert trainer.cut_padding(local)["input_ids"].shape == (2, 16)
  gathered = []
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(train.multihost_utils, "process_allgather",
                      lambda x: gathered.append(int(x)) or np.array([int(x), 40]))
  out = trainer.cut_padding(local)
  assert gathered == [10]  # this process's longest row went to the others
  assert out["input_ids"].shape == (2, 64) and out["attention_mask"].shape == (2, 64)
  assert out["action"].shape == (2,)
