"""Cost of distillation: the student step with and without cached teacher logits, and the teacher step.

    python benchmarks/distillation.py                    # EGTEA head, batch 32 x 10 frames x 2048-d, 2513 classes
    python benchmarks/distillation.py --teacher_layers=12 --teacher_width=768   # a BERT-base teacher

Prints (never asserts) ms/step and examples/s of
  - the AVT student train step alone,
  - the same step with KL distillation from cached teacher logits (target: <= 5 % slower),
  - the same step with the frozen teacher run online inside the step,
  - the teacher's fine-tuning step.
Protocol: compile and warm up first (excluded), then `--repeats` rounds of `--steps` back-to-back steps on
pre-built device batches with one block_until_ready per round; the configurations are interleaved round by
round so they see the same machine load, and medians are reported. No dataset is read.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `configs`

from anticipax import sharding  # pylint: disable=g-import-not-at-top
from anticipax import train
from anticipax.data import action_text
from anticipax.data import fake
from anticipax.data import teacher_outputs
from configs import common
from configs import egtea

_BATCH = flags.DEFINE_integer("batch", 32, "Global batch size.")
_FRAMES = flags.DEFINE_integer("frames", 10, "Frames per clip.")
_INPUT_DIM = flags.DEFINE_integer("input_dim", 2048, "Width of the frame features.")
_CLASSES = flags.DEFINE_integer("classes", 2513, "Action classes.")
_TEACHER_LAYERS = flags.DEFINE_integer("teacher_layers", 4, "Teacher encoder layers.")
_TEACHER_WIDTH = flags.DEFINE_integer("teacher_width", 256, "Teacher hidden size.")
_MAX_LEN = flags.DEFINE_integer("max_len", 64, "Teacher text length (tokens).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per round.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds; medians are reported.")


def _student_config(**distill):
  c = egtea.get_config()
  c.train.update(batch_size=_BATCH.value, steps=1000)
  c.distill.update(**distill)
  return c


def _teacher_config(tokenizer_dir: str):
  c = _student_config()
  c.task = "teacher"
  c.text = common.text_config(tokenizer=tokenizer_dir, max_len=_MAX_LEN.value, hist_len=15)
  width = _TEACHER_WIDTH.value
  c.text.scratch.update(hidden_size=width, num_layers=_TEACHER_LAYERS.value, num_heads=max(width // 64, 1),
                        intermediate_size=4 * width, max_position_embeddings=max(128, _MAX_LEN.value))
  c.loss.update(next_action=0.8, verb=0.1, noun=0.1, class_weights="")
  c.model.dropout = 0.1
  c.optimizer.update(name="adamw", weight_decay=0.01)
  return c


def _prepared(trainer):
  """(step function, state, device batches) with compilation and one warm-up call done."""
  state = trainer.init_state()
  iterator = trainer.train_iterator()
  batches = [sharding.global_batch(next(iterator), trainer.mesh) for _ in range(2)]
  state, _, _ = trainer.train_step(state, batches[0])
  jax.block_until_ready(state)
  return {"trainer": trainer, "state": state, "batches": batches}


def _round(run) -> float:
  trainer, state = run["trainer"], run["state"]
  start = time.perf_counter()
  for i in range(_STEPS.value):
    state, _, _ = trainer.train_step(state, run["batches"][i % 2])
  jax.block_until_ready(state)
  run["state"] = state
  return (time.perf_counter() - start) / _STEPS.value


def main(argv):
  del argv
  num_verbs, num_nouns = 125, 352
  splits = fake.random_splits(num_train=4 * _BATCH.value, num_eval=_BATCH.value, num_frames=_FRAMES.value,
                              feature_dim=_INPUT_DIM.value, num_classes=_CLASSES.value, num_verbs=num_verbs,
                              num_nouns=num_nouns)
  tmp = tempfile.mkdtemp()
  rng = np.random.default_rng(0)
  uids = [e["uid"] for e in splits.train]
  path = os.path.join(tmp, "teacher_outputs_train.npz")
  teacher_outputs.write(path, uids, rng.standard_normal((len(uids), _CLASSES.value)).astype(np.float32),
                        rng.standard_normal((len(uids), _TEACHER_WIDTH.value)).astype(np.float32))
  texts = [" <a> ".join(f"{v} <v> {n}" for v, n in zip(splits.info.verb_names, splits.info.noun_names))]
  tokenizer_dir = os.path.join(tmp, "tokenizer")
  action_text.build_word_tokenizer(texts, tokenizer_dir)

  print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()} ({jax.default_backend()})")
  print(f"student: EGTEA AVT-h, batch {_BATCH.value} x {_FRAMES.value} frames x {_INPUT_DIM.value}-d, "
        f"{_CLASSES.value} classes; teacher: {_TEACHER_LAYERS.value} layers x {_TEACHER_WIDTH.value}, "
        f"{_MAX_LEN.value} tokens")
  runs = {"student": _prepared(train.Trainer(_student_config(), splits)),
          "student + cached KD": _prepared(train.Trainer(
              _student_config(kind="kl", temperature=10.0, weight=150.0, teacher_outputs=path), splits))}
  teacher_dir = os.path.join(tmp, "teacher")
  teacher_cfg = _teacher_config(tokenizer_dir)
  teacher_cfg.train.update(steps=1, checkpoint_every=1, eval_every=0, async_checkpointing=False)
  train.run(teacher_cfg, teacher_dir, splits=splits)  # a teacher workdir for the online mode
  runs["teacher fine-tune"] = _prepared(train.Trainer(_teacher_config(tokenizer_dir), splits))
  runs["student + online teacher"] = _prepared(train.Trainer(
      _student_config(kind="kl", temperature=10.0, weight=150.0, online_teacher=teacher_dir), splits))

  times = {name: [] for name in runs}
  for _ in range(_REPEATS.value):
    for name, run in runs.items():
      times[name].append(_round(run))
  base = statistics.median(times["student"])
  print(f"\n{'step':<28s}{'ms/step':>10s}{'examples/s':>12s}{'vs student':>12s}")
  for name, ts in times.items():
    t = statistics.median(ts)
    versus = "" if name == "teacher fine-tune" else f"{100 * (t / base - 1):+11.1f}%"
    print(f"{name:<28s}{1e3 * t:10.1f}{_BATCH.value / t:12.1f}{versus:>12s}")
  overhead = statistics.median(times["student + cached KD"]) / base - 1
  print(f"\ncached KD overhead {100 * overhead:+.1f} % (target <= +5 %): {'met' if overhead <= 0.05 else 'NOT met'}")


if __name__ == "__main__":
  app.run(main)
