"""Can the grain input pipeline feed the EK55 train step? Examples/s of both, on this machine.

    python benchmarks/input_pipeline.py                         # builds a dataset in a temp dir
    python benchmarks/input_pipeline.py --data_dir=/tmp/ipbench # builds once, reuses it afterwards
    python benchmarks/input_pipeline.py --step_steps=0          # the pipeline only

Data: an EK55-shaped dataset written by tests/data/rulstm/fixtures.py (the RULSTM CSVs and an rgb LMDB)
at the size configs/ek55.py reads: 10 frames at 2 fps, 1 s ahead, 1024-d rgb features, a few thousand
segments; by default the feature values are pseudo-random float32 (like real TSN features, they do not
compress), and the dataset is prepared by the real TFDS builder into array_record files.

Pipeline: `pipeline.train_iterator` as the trainer calls it (`Trainer.train_iterator`: configs/ek55.py's
batch, the default 4 reader threads, the default prefetch); `--pipeline_warmup` batches untimed, then
`--pipeline_batches` timed.
Step: `Trainer` of configs/ek55.py (AVT-h, 12 layers x 2048 wide, 8 heads, Adam) with the real EK55
vocabulary sizes (its NUM_CLASSES, NUM_VERBS, NUM_NOUNS), on batches from the pipeline above already on the
device; the first (compiling) call and `--step_warmup` more steps untimed, then `--step_steps`
back-to-back steps with one `block_until_ready` at the end.
The two are measured one after the other, each with the whole machine (in training they share it).
Prints (never asserts) ms/batch, ms/step, examples/s and their ratio; the target is a pipeline >= 5x
faster than the step consumes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # configs, tests

from anticipax import sharding  # pylint: disable=g-import-not-at-top
from anticipax import train
from anticipax.data import datasets
from anticipax.data import pipeline
from configs import ek55
from tests.data.rulstm import fixtures as fx

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where to build (or find) the dataset; default: a temp dir, "
                                "deleted at the end.")
_VIDEOS = flags.DEFINE_integer("videos", 40, "Labeled videos (half train, half validation).")
_SEGMENTS = flags.DEFINE_integer("segments_per_video", 100, "Segments per video.")
_DIM = flags.DEFINE_integer("dim", 1024, "rgb feature size (TSN: 1024).")
_RANDOM = flags.DEFINE_bool("random_features", True, "Pseudo-random feature values (incompressible, like "
                            "real ones) instead of the fixture's formula (which array_record compresses ~10x).")
_BATCH = flags.DEFINE_integer("batch", 0, "Batch size; 0: configs/ek55.py's train.batch_size.")
_PIPE_WARMUP = flags.DEFINE_integer("pipeline_warmup", 20, "Untimed pipeline batches.")
_PIPE_BATCHES = flags.DEFINE_integer("pipeline_batches", 300, "Timed pipeline batches.")
_STEP_WARMUP = flags.DEFINE_integer("step_warmup", 1, "Untimed train steps after compilation.")
_STEPS = flags.DEFINE_integer("step_steps", 3, "Timed train steps (0: skip the step).")
_TARGET = flags.DEFINE_float("target", 5.0, "Target ratio pipeline examples/s / step examples/s.")


def _random_feature(video_index, frame, modality_index, dim):
  """Stand-in for `fixtures.feature`: deterministic, but noise-like float32."""
  rng = np.random.default_rng((video_index, frame, modality_index))
  return rng.standard_normal(dim, dtype=np.float32)


def build(data_dir: str):
  """The prepared EK55-shaped builder in `data_dir` (written and prepared on first use)."""
  config = ek55.get_config()
  manual = os.path.join(data_dir, "manual")
  config.data.manual_dir = manual
  config.data.tfds_data_dir = os.path.join(data_dir, "tfds")
  t = time.perf_counter()
  if not os.path.exists(os.path.join(manual, "rgb", "data.mdb")):
    feature = fx.feature
    if _RANDOM.value:
      fx.feature = _random_feature
    try:
      fx.write_ek55(manual, num_videos=_VIDEOS.value, segments_per_video=_SEGMENTS.value, modalities=("rgb",),
                    dims={"rgb": _DIM.value})
    finally:
      fx.feature = feature
    print(f"Wrote the RULSTM files ({_VIDEOS.value} videos x {_SEGMENTS.value} segments, "
          f"{_DIM.value}-d rgb LMDB) in {time.perf_counter() - t:.1f} s")
  t = time.perf_counter()
  builder = datasets.builder(config.data)
  splits = {k: v.num_examples for k, v in builder.info.splits.items()}
  size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(builder.data_dir) for f in fs)
  print(f"Prepared {builder.name}/{builder.builder_config.name} in {time.perf_counter() - t:.1f} s: {splits}, "
        f"{size / 2**20:.0f} MiB of array_record in {builder.data_dir}")
  return config, builder


def make_trainer(config, builder) -> train.Trainer:
  """The EK55 trainer on the built splits, its classifier as wide as EK55's vocabulary (configs/ek55.py)."""
  classes, verbs, nouns = ek55.NUM_CLASSES, ek55.NUM_VERBS, ek55.NUM_NOUNS
  actions = np.stack([np.arange(classes) % verbs, np.arange(classes) % nouns], 1)
  info = pipeline.DatasetInfo(num_classes=classes, num_verbs=verbs, num_nouns=nouns,
                              actions=actions.astype(np.int32), feature_dim=_DIM.value,
                              num_frames=config.data.num_frames)
  config.train.batch_size = _BATCH.value or config.train.batch_size
  splits = pipeline.Splits(builder.as_data_source("train"), builder.as_data_source("validation"), info)
  return train.Trainer(config, splits)


def time_pipeline(trainer: train.Trainer) -> float:
  """Examples/s of the training iterator (`pipeline.train_iterator` as the trainer calls it)."""
  iterator = trainer.train_iterator()
  for _ in range(_PIPE_WARMUP.value):
    batch = next(iterator)
  t = time.perf_counter()
  for _ in range(_PIPE_BATCHES.value):
    batch = next(iterator)
  sec = time.perf_counter() - t
  shapes = ", ".join(f"{k} {v.dtype}{list(v.shape)}" for k, v in batch.items())
  n = _PIPE_BATCHES.value
  print(f"Pipeline: batch {trainer.local_batch_size}, {trainer.config.data.get('num_threads')} reader threads "
        f"(config.data.num_threads); {_PIPE_WARMUP.value} warm-up + {n} timed batches of {{{shapes}}}")
  b = trainer.global_batch_size
  print(f"  input pipeline   {sec / n * 1e3:9.2f} ms/batch   {n * b / sec:9.1f} examples/s")
  return n * b / sec


def time_step(trainer: train.Trainer) -> float:
  """Examples/s of the EK55 train step (compilation excluded), on batches already on the device."""
  config = trainer.config
  state = trainer.init_state()
  num_params = sum(x.size for x in jax.tree.leaves(state.params))
  iterator = trainer.train_iterator()
  batches = jax.block_until_ready([sharding.global_batch(next(iterator), trainer.mesh) for _ in range(2)])
  # The first call compiles (and runs one step): excluded, like the warm-up steps after it.
  t = time.perf_counter()
  state, metrics, _ = jax.block_until_ready(trainer.train_step(state, batches[0]))
  compile_s = time.perf_counter() - t
  h = config.model.head
  print(f"Step: configs/ek55.py AVT-h {h.num_layers} x {h.inter_dim}, {h.num_heads} heads, dropout {h.dropout}, "
        f"{config.optimizer.name}; {num_params / 1e6:.0f} M params; {trainer.splits.info.num_classes} classes; "
        f"batch {trainer.global_batch_size} x {config.data.num_frames} x {_DIM.value}; {jax.device_count()} x "
        f"{jax.devices()[0].device_kind}; compile + first step {compile_s:.1f} s (excluded), "
        f"{_STEP_WARMUP.value} warm-up + {_STEPS.value} timed steps")
  for i in range(_STEP_WARMUP.value):
    state, metrics, _ = trainer.train_step(state, batches[(i + 1) % 2])
  jax.block_until_ready(state)
  t = time.perf_counter()
  for i in range(_STEPS.value):
    state, metrics, _ = trainer.train_step(state, batches[i % 2])
  jax.block_until_ready((state, metrics))
  sec = (time.perf_counter() - t) / _STEPS.value
  loss = float(metrics.compute()["loss"])
  b = trainer.global_batch_size
  print(f"  train step       {sec * 1e3:9.1f} ms/step    {b / sec:9.1f} examples/s   (last loss {loss:.3g})")
  return b / sec


def main(argv):
  del argv
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  print(f"Machine: {cores} usable cores; jax {jax.__version__} on {jax.default_backend()}; "
        f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
  data_dir = _DATA_DIR.value or tempfile.mkdtemp(prefix="anticipax_input_bench_")
  try:
    config, builder = build(data_dir)
    trainer = make_trainer(config, builder)
    pipe = time_pipeline(trainer)
    if _STEPS.value:
      step = time_step(trainer)
      ratio = pipe / step
      met = "MET" if ratio >= _TARGET.value else "NOT MET"
      print(f"Ratio: pipeline supplies {ratio:.1f}x what the step consumes; target >= {_TARGET.value:g}x: {met}")
  finally:
    if not _DATA_DIR.value:
      shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
  app.run(main)
