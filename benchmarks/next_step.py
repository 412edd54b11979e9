"""Throughput of method 2 (next-step sentence anticipation): the students' train steps and the decoding.

    python benchmarks/next_step.py                          # demo sizes (configs/tasty.py, demo=True)
    python benchmarks/next_step.py --tfds_data_dir=/tmp/tb  # builds the synthetic data once, reuses it
    python benchmarks/next_step.py --vocab_size=5000        # pad the decoder vocabulary to a real size
    python benchmarks/next_step.py --train=false --decode_rows=16

Prints (never asserts):
  - the train step of the visual-only student and of the CCD student (cached teacher states, contrastive
    loss through both projection heads): ms/step, recipes/s, FLOPs/step from XLA's cost analysis, achieved
    GFLOP/s, and the CCD step's cost relative to the visual one;
  - decoding (`decoding.generate`, the visual student's model): greedy and beam 5, each with the KV cache
    and without it (`use_cache=False`, the prefix recomputed every step): sentences/s and tokens/s.
Sizes: those of `configs/tasty.py`'s demo configs (`stage_config(stage, demo=True)`: model, batch, eval
batch, words per sentence), printed first. Data: `tasty_synthetic` at the demo's size, built by the real
TFDS builder into `--tfds_data_dir` (default: a temp dir). The cached teacher
states are random vectors of the demo teacher's width, one per real training step, in the
`teacher_states_train.npz` format the teacher exports. Parameters are the random init: an untrained
decoder almost never emits EOS, so every sentence runs to max_len (decoding's worst case; the early stop
never fires), and tokens/s counts the tokens generated (EOS included).
Protocol: compile first (excluded), `--warmup` untimed calls, then `--repeats` rounds; a train round times
`--steps` back-to-back steps on batches already on the device (state donated, as in training), a decoding
round `--decode_calls` calls, each round ending with one `block_until_ready`. The configurations are
interleaved round by round (the order reversed every other round) so that they see the same machine load;
medians are reported, by the wall clock and per CPU-second of this process (CPU-ms: the latter holds up
better when other processes share the cores, the former does not).
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `configs`

from anticipax.data import pipeline
from anticipax.data.tasty import text as tasty_text
from anticipax.data import teacher_outputs
from anticipax.next_step import decoding  # pylint: disable=g-import-not-at-top
from anticipax.next_step import task as next_step
from anticipax import sharding
from anticipax import train
from configs import tasty

_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None, "Where the synthetic dataset is built (default: temp).")
_BATCH = flags.DEFINE_integer("batch", 0, "Train batch in recipes (0: the demo config's).")
_VOCAB = flags.DEFINE_integer("vocab_size", 0, "Pad the decoder vocabulary to this size (0: the dataset's).")
_TRAIN = flags.DEFINE_bool("train", True, "Time the train steps.")
_DECODE = flags.DEFINE_bool("decode", True, "Time the decoding.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed back-to-back train steps per round.")
_DECODE_ROWS = flags.DEFINE_integer("decode_rows", 0, "Recipes per decoding call (0: the demo eval batch).")
_DECODE_CALLS = flags.DEFINE_integer("decode_calls", 2, "Timed decoding calls per round.")
_BEAM = flags.DEFINE_integer("beam_width", 5, "Beam width of the beam-search rows.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed calls after compilation.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed rounds; medians are reported.")


def xla_flops(compiled) -> float:
  """FLOPs from `Compiled.cost_analysis()`, a dict or (older JAX) a list holding one dict."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def timed(run, n: int) -> tuple[float, float]:
  """(wall seconds, CPU seconds of this process) of `run(n)`, which blocks on its results."""
  wall, cpu = time.perf_counter(), time.process_time()
  run(n)
  return time.perf_counter() - wall, time.process_time() - cpu


def load_average() -> str:
  try:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
  except OSError:
    return "load average n/a"


def demo_config(stage: str, data_dir: str):
  c = tasty.stage_config(stage, demo=True)
  c.data.tfds_data_dir = data_dir
  if _BATCH.value:
    c.train.batch_size = _BATCH.value
  return c


def splits_for(config) -> pipeline.Splits:
  """The demo data; with --vocab_size, its vocabulary padded with unused words."""
  splits = next_step.NextStepTask.load_data(config)
  info = splits.info
  extra = _VOCAB.value - len(info.vocab)
  if extra > 0:
    vocab = tasty_text.Vocab(info.vocab.tokens + tuple(f"unused{i}" for i in range(extra)))
    splits = pipeline.Splits(splits.train, splits.eval, next_step.TastyInfo(
        vocab, info.feature_dim, info.max_steps, info.frames_per_step))
  return splits


def random_teacher_states(splits: pipeline.Splits, dim: int, path: str) -> None:
  """A `teacher_states_train.npz` of random states: one row per real step of every training recipe."""
  keys = [next_step.step_key(splits.train[i]["recipe"], s) for i in range(len(splits.train))
          for s in range(int(splits.train[i]["num_steps"]))]
  states = np.random.default_rng(0).standard_normal((len(keys), dim)).astype(np.float32)
  teacher_outputs.write(path, keys, np.zeros((len(keys), 0), np.float32), states)


# -- train steps --------------------------------------------------------------------------------------------
class TrainBench:
  """One trainer's compiled step, its state and device batches; `round()` times `--steps` steps."""

  def __init__(self, name: str, trainer: train.Trainer):
    self.name, self.trainer = name, trainer
    iterator = trainer.train_iterator()
    self.batches = [sharding.global_batch(next(iterator), trainer.mesh) for _ in range(4)]
    self.state = trainer.init_state()
    start = time.perf_counter()
    # The trainer's own jitted step (with the frozen params, empty here), compiled once for its FLOPs.
    self.compiled = trainer._train_step_jit.lower(  # pylint: disable=protected-access
        self.state, self.batches[0], trainer.frozen).compile()
    self.compile_s = time.perf_counter() - start
    self.flops = xla_flops(self.compiled)
    self.times, self.cpu = [], []
    for _ in range(_WARMUP.value):
      self._run(1)

  def _run(self, n: int) -> None:
    for i in range(n):
      self.state, _, _ = self.compiled(self.state, self.batches[i % len(self.batches)], self.trainer.frozen)
    jax.block_until_ready(self.state)

  def round(self) -> None:
    wall, cpu = timed(self._run, _STEPS.value)
    self.times.append(wall / _STEPS.value)
    self.cpu.append(cpu / _STEPS.value)


# -- decoding -----------------------------------------------------------------------------------------------
class DecodeBench:
  """`decoding.generate` jitted for one (width, use_cache); `round()` times `--decode_calls` calls."""

  def __init__(self, name: str, task, variables, inputs, width: int, use_cache: bool):
    self.name = name
    fn = functools.partial(decoding.generate, task.model, eos_id=task.vocab.eos_id, max_len=task.max_words,
                           width=width, use_cache=use_cache, pad_id=task.vocab.pad_id)
    self.args = (variables, inputs)
    start = time.perf_counter()
    self.compiled = jax.jit(fn).lower(*self.args).compile()
    self.compile_s = time.perf_counter() - start
    tokens, _ = jax.block_until_ready(self.compiled(*self.args))
    # Generated tokens up to and including EOS (pad after it); every state of every recipe is decoded.
    self.rows = int(np.prod(tokens.shape[:2]))
    self.tokens = int(np.sum(np.asarray(tokens) != task.vocab.pad_id))
    self.times, self.cpu = [], []
    for _ in range(_WARMUP.value):
      self._run(1)

  def _run(self, n: int) -> None:
    out = None
    for _ in range(n):
      out = self.compiled(*self.args)
    jax.block_until_ready(out)

  def round(self) -> None:
    wall, cpu = timed(self._run, _DECODE_CALLS.value)
    self.times.append(wall / _DECODE_CALLS.value)
    self.cpu.append(cpu / _DECODE_CALLS.value)


def main(argv):
  del argv
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix="next_step_bench_")
  visual = demo_config("visual", data_dir)
  start = time.perf_counter()
  splits = splits_for(visual)
  info = splits.info
  print(f"device: {jax.device_count()} x {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"jax {jax.__version__}; {load_average()}")
  print(f"data: tasty_synthetic, {len(splits.train)} train recipes (ready in {time.perf_counter() - start:.1f} s);"
        f" up to {info.max_steps} steps x {info.frames_per_step} frames x {info.feature_dim}-d; "
        f"{visual.data.max_words} words; vocabulary {len(info.vocab)}")
  m = visual.model
  print(f"model: dim {m.dim}, {m.num_heads} heads; step encoder {m.visual.num_layers}, temporal "
        f"{m.temporal.num_layers}, decoder {m.decoder.num_layers} layers; dropout {m.dropout}; "
        f"{visual.optimizer.name}")

  benches = []
  if _TRAIN.value:
    ccd = demo_config("ccd", data_dir)
    states_path = os.path.join(data_dir, "random_teacher_states_train.npz")
    random_teacher_states(splits, int(tasty.stage_config("teacher", demo=True).model.dim), states_path)
    ccd.distill.teacher_outputs = states_path
    benches += [TrainBench("visual student", train.Trainer(visual, splits)),
                TrainBench("CCD student (cached teacher)", train.Trainer(ccd, splits))]
  if _DECODE.value:
    trainer = benches[0].trainer if benches else train.Trainer(visual, splits)
    task = trainer.task
    params = benches[0].state.params if benches else trainer.init_state().params
    variables = {"params": jax.device_get(task._model_params(params))}  # pylint: disable=protected-access
    rows = _DECODE_ROWS.value or int(visual.eval.batch_size)
    local = next(pipeline.eval_batches(splits.train, keys=task.eval_keys, preprocess=task.preprocess,
                                       batch_size=rows))
    inputs = {k: local[k] for k in task.eval_keys}
    for width in (1, _BEAM.value):
      for use_cache in (True, False):
        label = "greedy" if width == 1 else f"beam {width}"
        benches.append(DecodeBench(f"{label}, {'KV cache' if use_cache else 'no cache (recompute)'}",
                                   task, variables, inputs, width, use_cache))

  for r in range(_REPEATS.value):
    for bench in benches if r % 2 == 0 else benches[::-1]:  # neither order favoured
      bench.round()
  print(f"protocol: {_WARMUP.value} warm-up call(s) after compiling, {_REPEATS.value} interleaved rounds "
        f"(train: {_STEPS.value} steps, decoding: {_DECODE_CALLS.value} calls per round), medians; "
        f"{load_average()}")

  train_benches = [b for b in benches if isinstance(b, TrainBench)]
  if train_benches:
    batch = train_benches[0].trainer.global_batch_size
    base = statistics.median(train_benches[0].times)
    print(f"\n{'train step, batch ' + str(batch):<32s}{'ms/step':>9s}{'recipes/s':>11s}{'GFLOP/step':>12s}"
          f"{'GFLOP/s':>9s}{'vs visual':>11s}{'CPU-ms':>8s}{'vs visual':>11s}{'compile s':>11s}")
    base_cpu = statistics.median(train_benches[0].cpu)
    for b in train_benches:
      t, cpu = statistics.median(b.times), statistics.median(b.cpu)
      print(f"{b.name:<32s}{1e3 * t:9.1f}{batch / t:11.1f}{b.flops / 1e9:12.2f}{b.flops / t / 1e9:9.1f}"
            f"{100 * (t / base - 1):+10.1f}%{1e3 * cpu:8.1f}{100 * (cpu / base_cpu - 1):+10.1f}%"
            f"{b.compile_s:11.1f}")
  decode_benches = [b for b in benches if isinstance(b, DecodeBench)]
  if decode_benches:
    first = decode_benches[0]
    print(f"\n{'decoding, ' + str(rows) + ' recipes = ' + str(first.rows) + ' sentences':<40s}{'ms/call':>9s}"
          f"{'sentences/s':>13s}{'tokens/s':>11s}{'tokens':>8s}{'CPU-ms':>8s}{'compile s':>11s}")
    for b in decode_benches:
      t, cpu = statistics.median(b.times), statistics.median(b.cpu)
      print(f"{b.name:<40s}{1e3 * t:9.1f}{b.rows / t:13.1f}{b.tokens / t:11.1f}{b.tokens:8d}{1e3 * cpu:8.1f}"
            f"{b.compile_s:11.1f}")


if __name__ == "__main__":
  app.run(main)
