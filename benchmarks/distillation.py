"""Cost of distillation: the student step with and without cached teacher logits, and the teacher step.

    python benchmarks/distillation.py                    # configs/egtea.py's batch, frames and classes
    python benchmarks/distillation.py --teacher_layers=12 --teacher_width=768   # a BERT-base teacher

Prints (never asserts) ms/step and examples/s of
  - the AVT student train step alone,
  - the same step with KL distillation from cached teacher logits (target: <= 5 % slower),
  - the same step with the frozen teacher run online inside the step,
  - the teacher's fine-tuning step.
Sizes: the student is configs/egtea.py (batch, frames, head, its KD settings; classes from its NUM_CLASSES,
NUM_VERBS, NUM_NOUNS), the teacher configs/teacher_egtea.py (batch, losses, optimizer, text length) with a
from-scratch encoder of --teacher_layers x --teacher_width instead of bert-base (nothing is downloaded).
--batch, --frames and --max_len replace the configs' values; --input_dim is the features' width (the
dataset's, not in the config).
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
from configs import egtea
from configs import teacher_egtea

_BATCH = flags.DEFINE_integer("batch", 0, "Student global batch size; 0: configs/egtea.py's.")
_FRAMES = flags.DEFINE_integer("frames", 0, "Frames per clip; 0: configs/egtea.py's data.num_frames.")
_INPUT_DIM = flags.DEFINE_integer("input_dim", 2048, "Width of the frame features (the dataset's).")
_TEACHER_LAYERS = flags.DEFINE_integer("teacher_layers", 4, "Teacher encoder layers.")
_TEACHER_WIDTH = flags.DEFINE_integer("teacher_width", 256, "Teacher hidden size.")
_MAX_LEN = flags.DEFINE_integer("max_len", 0, "Teacher text.max_len (tokens); 0: configs/teacher_egtea.py's.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per round.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Rounds; medians are reported.")


def _student_config(**distill):
  """configs/egtea.py (its KD temperature and weight included), at --batch / --frames when given."""
  c = egtea.get_config()
  if _BATCH.value:
    c.train.batch_size = _BATCH.value
  if _FRAMES.value:
    c.data.num_frames = _FRAMES.value
  c.distill.update(**distill)
  return c


def _teacher_config(tokenizer_dir: str):
  """configs/teacher_egtea.py with a from-scratch encoder over the word tokenizer in `tokenizer_dir`."""
  c = teacher_egtea.get_config()
  c.text.update(pretrained="", tokenizer=tokenizer_dir, max_len=_MAX_LEN.value or c.text.max_len)
  width = _TEACHER_WIDTH.value
  c.text.scratch.update(hidden_size=width, num_layers=_TEACHER_LAYERS.value, num_heads=max(width // 64, 1),
                        intermediate_size=4 * width, max_position_embeddings=max(128, c.text.max_len))
  return c


def _prepared(trainer):
  """(step function, state, device batches) with compilation and one warm-up call done."""
  state = trainer.init_state()
  iterator = trainer.train_iterator()
  # Cut to the length bucket as the training loop does (text batches; others pass through).
  batches = [sharding.global_batch(trainer.cut_padding(next(iterator)), trainer.mesh) for _ in range(2)]
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
  student = _student_config()
  b, t = int(student.train.batch_size), int(student.data.num_frames)
  classes = egtea.NUM_CLASSES
  tmp = tempfile.mkdtemp()
  tokenizer_dir = os.path.join(tmp, "tokenizer")  # written below, once the vocabulary exists
  teacher_cfg = _teacher_config(tokenizer_dir)
  splits = fake.random_splits(num_train=4 * max(b, teacher_cfg.train.batch_size), num_eval=b, num_frames=t,
                              feature_dim=_INPUT_DIM.value, num_classes=classes, num_verbs=egtea.NUM_VERBS,
                              num_nouns=egtea.NUM_NOUNS)
  rng = np.random.default_rng(0)
  uids = [e["uid"] for e in splits.train]
  path = os.path.join(tmp, "teacher_outputs_train.npz")
  teacher_outputs.write(path, uids, rng.standard_normal((len(uids), classes)).astype(np.float32),
                        rng.standard_normal((len(uids), _TEACHER_WIDTH.value)).astype(np.float32))
  texts = [" <a> ".join(f"{v} <v> {n}" for v, n in zip(splits.info.verb_names, splits.info.noun_names))]
  action_text.build_word_tokenizer(texts, tokenizer_dir)

  print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()} ({jax.default_backend()})")
  print(f"student: configs/egtea.py AVT-h, batch {b} x {t} frames x {_INPUT_DIM.value}-d, {classes} classes, "
        f"KD at T = {student.distill.temperature:g}, weight {student.distill.weight:g}; teacher: "
        f"configs/teacher_egtea.py from scratch, {_TEACHER_LAYERS.value} layers x {_TEACHER_WIDTH.value}, batch "
        f"{teacher_cfg.train.batch_size}, up to {teacher_cfg.text.max_len} tokens")
  runs = {"student": _prepared(train.Trainer(student, splits)),
          "student + cached KD": _prepared(train.Trainer(_student_config(kind="kl", teacher_outputs=path), splits))}
  teacher_dir = os.path.join(tmp, "teacher")
  teacher_cfg.train.update(steps=1, checkpoint_every=1, eval_every=0, async_checkpointing=False)
  train.run(teacher_cfg, teacher_dir, splits=splits)  # a teacher workdir for the online mode
  runs["teacher fine-tune"] = _prepared(train.Trainer(_teacher_config(tokenizer_dir), splits))
  runs["student + online teacher"] = _prepared(train.Trainer(
      _student_config(kind="kl", online_teacher=teacher_dir), splits))

  times = {name: [] for name in runs}
  for _ in range(_REPEATS.value):
    for name, run in runs.items():
      times[name].append(_round(run))
  base = statistics.median(times["student"])
  print(f"\n{'step':<28s}{'ms/step':>10s}{'examples/s':>12s}{'vs student':>12s}")
  for name, ts in times.items():
    sec = statistics.median(ts)
    versus = "" if name == "teacher fine-tune" else f"{100 * (sec / base - 1):+11.1f}%"
    print(f"{name:<28s}{1e3 * sec:10.1f}{runs[name]['trainer'].global_batch_size / sec:12.1f}{versus:>12s}")
  overhead = statistics.median(times["student + cached KD"]) / base - 1
  print(f"\ncached KD overhead {100 * overhead:+.1f} % (target <= +5 %): {'met' if overhead <= 0.05 else 'NOT met'}")


if __name__ == "__main__":
  app.run(main)
