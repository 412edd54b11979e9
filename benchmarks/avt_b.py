"""AVT-b (ViT on frames + AVT-h, configs/egtea_vitb.py): step speed and memory with and without remat and
bfloat16, and whether the frame pipeline (JPEG decoding + augmentation) keeps up with the step.

    python benchmarks/avt_b.py                                   # the config's ViT-B/16, 224 px, batch 3 x 10
    python benchmarks/avt_b.py --variants=f32,bf16+remat --batch=8
    python benchmarks/avt_b.py --vit=Ti/16 --batch=2 --frames=4  # a CPU-sized run
    python benchmarks/avt_b.py --steps=0                         # the frame pipeline only
    python benchmarks/avt_b.py --compile_only --batch=12         # memory plans only, no timing

Sizes are configs/egtea_vitb.py's at world=1 (one process: ViT, image size, per-process batch, frames,
crop and short sides; the EGTEA classes from configs/egtea.py's NUM_CLASSES, NUM_VERBS, NUM_NOUNS); the
flags replace them (short sides scale with --image_size).
Step: `Trainer` of that config (random init) on in-memory uint8 batches already on the device, for each
variant of `--variants` (f32 / bf16 = `model.dtype`, +remat = `model.backbone.remat`): compiled once
(not timed), `--warmup` untimed steps, then `--repeats` rounds of `--steps` back-to-back steps with one
`block_until_ready` each; medians. Printed per variant: ms/step, examples/s, frames/s; FLOPs per
step as XLA counts them (remat adds the recomputation) and the model's (`6 x matmul params x tokens +
attention`, the same for every variant), achieved GFLOP/s on both; memory: the activations the backward
pass keeps (residuals: what remat and bfloat16 shrink, read off the traced loss), XLA's plan for the step
(arguments + outputs - donated + temporaries; XLA:CPU's plan does not show remat's saving, its scheduler
is not memory-aware) and, on GPU/TPU, the device's peak so far (monotonic over the variants).
Pipeline: `pipeline.train_iterator` as the trainer calls it, with the task's `preprocess` (decode, random
rescale + crop + flip) on `--frame_size` JPEGs of smooth random content, `--threads` reader threads;
decoded+augmented frames/s against the frames/s the fastest variant's step consumes. Also the evaluation
transform (3 crops + flips). Nothing is asserted: figures depend on the machine and its load.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import flax.linen as nn
import jax
from jax import ad_checkpoint
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `configs`

from anticipax import sharding  # pylint: disable=g-import-not-at-top
from anticipax import train
from anticipax.data import pipeline
from configs import egtea
from configs import egtea_vitb

_VIT = flags.DEFINE_string("vit", "", "ViT variant (anticipax.models.vit.vit_config name); '': the config's.")
_IMAGE = flags.DEFINE_integer("image_size", 0, "Crop size = ViT image size; 0: the config's.")
_BATCH = flags.DEFINE_integer("batch", 0, "Global batch (clips); 0: the config's per-process batch.")
_FRAMES = flags.DEFINE_integer("frames", 0, "Frames per clip; 0: the config's.")
_CLASSES = flags.DEFINE_integer("classes", 0, "Action classes; 0: configs/egtea.py's NUM_CLASSES.")
_VARIANTS = flags.DEFINE_list("variants", ["f32", "f32+remat", "bf16", "bf16+remat"], "Step variants.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per round (0: pipeline only).")
_COMPILE_ONLY = flags.DEFINE_bool("compile_only", False, "Compile each variant and print its FLOPs and memory "
                                  "plan, untimed (quick at real batch sizes on CPU).")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed steps after compilation.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed rounds; medians are reported.")
_THREADS = flags.DEFINE_integer("threads", 4, "Pipeline reader threads (config.data.num_threads).")
_FRAME_SIZE = flags.DEFINE_string("frame_size", "256x456", "Source JPEG height x width (EPIC frames: 256x456).")
_PIPE_SECONDS = flags.DEFINE_float("pipeline_seconds", 10.0, "Seconds to time each pipeline.")


def make_config(variant: str):
  c = egtea_vitb.get_config("world=1")
  dtype, _, remat = variant.partition("+")
  if dtype not in ("f32", "bf16") or remat not in ("", "remat"):
    raise ValueError(f"--variants: {variant!r} is not f32 or bf16, optionally +remat")
  c.model.dtype = {"f32": "float32", "bf16": "bfloat16"}[dtype]
  s, crop = _IMAGE.value or c.model.backbone.image_size, c.data.crop_size
  c.model.backbone.update(name=_VIT.value or c.model.backbone.name, image_size=s, pretrained="",
                          remat=bool(remat))
  c.data.update(num_frames=_FRAMES.value or c.data.num_frames, crop_size=s,
                train_short_side=tuple(side * s // crop for side in c.data.train_short_side),
                eval_short_side=c.data.eval_short_side * s // crop, num_threads=_THREADS.value)
  c.train.batch_size = c.eval.batch_size = _BATCH.value or c.train.batch_size
  return c


def fake_jpegs(count: int, size: tuple[int, int], seed: int = 0) -> list[bytes]:
  """Smooth random images (upsampled noise plus a little grain), JPEG quality 90: about real frames' bytes."""
  rng = np.random.default_rng(seed)
  h, w = size
  out = []
  for _ in range(count):
    coarse = Image.fromarray(rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC), np.int16)
    img = np.clip(img + rng.integers(-8, 9, img.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    out.append(buf.getvalue())
  return out


def fake_splits(config, jpegs: list[bytes], num_examples: int) -> pipeline.Splits:
  t, classes = config.data.num_frames, _CLASSES.value or egtea.NUM_CLASSES
  verbs, nouns = egtea.NUM_VERBS, egtea.NUM_NOUNS  # AVT-b reads EGTEA, as configs/egtea.py
  rng = np.random.default_rng(0)
  actions = np.stack([np.arange(classes) % verbs, np.arange(classes) % nouns], 1)
  examples = []
  for i in range(num_examples):
    a = int(rng.integers(0, classes))
    pick = rng.integers(0, len(jpegs), t)
    examples.append({"video": "P01-R01-PastaSalad", "frames": np.array([jpegs[k] for k in pick], dtype=object),
                     "frame_numbers": (pick + 1).astype(np.int32), "past_actions": np.full(t, -1, np.int32),
                     "action": np.int32(a), "verb": np.int32(actions[a, 0]), "noun": np.int32(actions[a, 1])})
  info = pipeline.DatasetInfo(num_classes=classes, num_verbs=verbs, num_nouns=nouns, actions=actions,
                              feature_dim=0, num_frames=t)
  return pipeline.Splits(train=examples, eval=examples, info=info)


def model_flops(params, config) -> float:
  """6 x matmul params x the tokens they see, plus attention (QK^T and AV, x3 for the backward)."""
  b, t = config.train.batch_size, config.data.num_frames
  vit, head = params["backbone"]["vit"], config.model.head
  tokens = 1 + (config.model.backbone.image_size // int(config.model.backbone.name.split("/")[1])) ** 2
  kernels = lambda tree: sum(x.size for p, x in jax.tree_util.tree_leaves_with_path(tree)
                             if "kernel" in jax.tree_util.keystr(p))
  width = vit["embedding"]["kernel"].shape[1]
  depth = sum(1 for k in vit if k.startswith("encoderblock_"))
  vit_flops = 6.0 * kernels(vit) * b * t * tokens + 3 * depth * 4 * b * t * tokens**2 * width
  rest = {k: v for k, v in params.items() if k != "backbone"}
  head_flops = 6.0 * kernels(rest) * b * t + 3 * head.num_layers * 4 * b * t**2 * head.inter_dim
  return vit_flops + head_flops


def xla_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
  return float((cost or {}).get("flops", float("nan")))


def planned_bytes(compiled) -> float:
  try:
    m = compiled.memory_analysis()
    return float(m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes)
  except (AttributeError, NotImplementedError, RuntimeError):
    return float("nan")


def residual_bytes(trainer, state, batch) -> float:
  """Bytes the backward pass keeps from the forward (not counting the inputs): what remat trades away.

  Read off the traced loss (`jax.ad_checkpoint.print_saved_residuals`), so it holds on every platform;
  XLA:CPU's memory plan does not show remat's saving (its scheduler is not memory-aware), a GPU's does.
  """
  rng = jax.random.key(0)
  spec = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype)
  out = io.StringIO()
  with nn.logical_axis_rules(trainer.rules), contextlib.redirect_stdout(out):
    ad_checkpoint.print_saved_residuals(lambda p, b: trainer.task.loss_fn(p, b, rng, trainer.frozen)[0],
                                        jax.tree.map(spec, state.params), jax.tree.map(spec, batch))
  total = 0.0
  for line in out.getvalue().splitlines():  # e.g. "bf16[40,197,768] output of jitted function ..."
    m = re.match(r"([a-z]+)(\d+)\[([\d,]*)\] (.*)", line)
    if m and "from the argument" not in m.group(4):
      total += math.prod(int(d) for d in m.group(3).split(",") if d) * int(m.group(2)) / 8
  return total


def device_peak() -> str:
  stats = jax.devices()[0].memory_stats() or {}
  peak = stats.get("peak_bytes_in_use")
  return f"{peak / 2**30:.2f} GiB" if peak else "n/a"


def bench_step(variant: str, splits) -> dict:
  config = make_config(variant)
  trainer = train.Trainer(config, splits)
  state = trainer.init_state()
  rng = np.random.default_rng(1)
  batches = []
  for _ in range(2):
    local = trainer.task.dummy_batch(trainer.global_batch_size)
    local["frames"] = rng.integers(0, 256, local["frames"].shape, dtype=np.uint8)
    local["action"] = rng.integers(0, splits.info.num_classes, local["action"].shape).astype(np.int32)
    batches.append(sharding.global_batch(local, trainer.mesh))
  t0 = time.perf_counter()
  compiled = trainer._train_step_jit.lower(state, batches[0], trainer.frozen).compile()  # pylint: disable=protected-access
  compile_s = time.perf_counter() - t0

  def run(n):
    nonlocal state
    out = None
    for i in range(n):
      state, *out = compiled(state, batches[i % 2], trainer.frozen)
    jax.block_until_ready((state, out))

  step_s = float("nan")
  if not _COMPILE_ONLY.value:
    run(_WARMUP.value)
    rounds = []
    for _ in range(_REPEATS.value):
      t0 = time.perf_counter()
      run(_STEPS.value)
      rounds.append((time.perf_counter() - t0) / _STEPS.value)
    step_s = statistics.median(rounds)
  return {"variant": variant, "step_s": step_s, "compile_s": compile_s, "xla": xla_flops(compiled),
          "residuals": residual_bytes(trainer, state, batches[0]),
          "model": model_flops(state.params, config), "planned": planned_bytes(compiled), "peak": device_peak(),
          "params": sum(x.size for x in jax.tree.leaves(state.params)), "task": trainer.task}


def bench_pipeline(task, splits, batch: int, train_mode: bool) -> tuple[float, float]:
  """(frames/s, ms/batch) of decoded + augmented frames through the training (or evaluation) path."""
  source, t = splits.train, task.info.num_frames
  if train_mode:
    it = pipeline.train_iterator(source, keys=task.train_keys, batch_size=batch, seed=0,
                                 preprocess=task.preprocess, num_threads=_THREADS.value)
  else:
    endless = [source[i % len(source)] for i in range(10 * batch)]
    it = pipeline.eval_batches(endless, keys=task.eval_keys, batch_size=batch, preprocess=task.preprocess,
                               num_threads=_THREADS.value)
  next(it)  # start the threads
  count, t0 = 0, time.perf_counter()
  while time.perf_counter() - t0 < _PIPE_SECONDS.value:
    try:
      next(it)
    except StopIteration:
      break
    count += 1
  elapsed = time.perf_counter() - t0
  return count * batch * t / elapsed, 1e3 * elapsed / max(count, 1)


def main(argv):
  del argv
  dev = jax.devices()[0]
  print(f"Device: {jax.device_count()} x {dev.platform.upper()} ({dev.device_kind}), {os.cpu_count()} CPU cores; "
        f"jax {jax.__version__}")
  h, w = (int(s) for s in _FRAME_SIZE.value.split("x"))
  jpegs = fake_jpegs(32, (h, w))
  config = make_config("f32")
  b, t, backbone = config.train.batch_size, config.data.num_frames, config.model.backbone
  splits = fake_splits(config, jpegs, max(4 * b, 16))
  print(f"AVT-b: ViT-{backbone.name} at {backbone.image_size} px + AVT-h (configs/egtea_vitb.py), batch {b} x {t} "
        f"frames, {splits.info.num_classes} classes, {config.optimizer.name}")

  results = []
  if _STEPS.value:
    print(f"{'variant':<12s} {'ms/step':>9s} {'ex/s':>7s} {'frames/s':>9s} {'XLA GFLOP':>10s} {'GFLOP/s':>8s} "
          f"{'model GFLOP':>11s} {'GFLOP/s':>8s} {'residuals':>9s} {'XLA plan':>9s} {'device peak':>12s} "
          f"{'compile':>8s}")
    for variant in _VARIANTS.value:
      r = bench_step(variant, splits)
      results.append(r)
      s = r["step_s"]
      print(f"{variant:<12s} {s * 1e3:9.1f} {b / s:7.2f} {b * t / s:9.1f} {r['xla'] / 1e9:10.1f} "
            f"{r['xla'] / s / 1e9:8.1f} {r['model'] / 1e9:11.1f} {r['model'] / s / 1e9:8.1f} "
            f"{r['residuals'] / 2**30:8.2f}G {r['planned'] / 2**30:8.2f}G {r['peak']:>12s} {r['compile_s']:7.1f}s",
            flush=True)
    timing = ("compiled only, not run" if _COMPILE_ONLY.value else
              f"{_REPEATS.value} rounds of {_STEPS.value} steps after {_WARMUP.value} warm-up, medians")
    print(f"({results[0]['params'] / 1e6:.1f} M parameters; {timing})")
    task = results[0]["task"]
  else:
    task = train.Trainer(make_config("f32"), splits).task

  fps, ms = bench_pipeline(task, splits, b, train_mode=True)
  print(f"Frame pipeline, train (decode {h}x{w} JPEG, rescale to a {task.transform.train_short_side} short "
        f"side, random {task.transform.crop_size} crop, flip), {_THREADS.value} threads: {fps:8.1f} frames/s "
        f"({ms:.1f} ms per batch of {b} x {t})")
  if results and not _COMPILE_ONLY.value:
    best = min(results, key=lambda r: r["step_s"])
    need = b * t / best["step_s"]
    verdict = "keeps up" if fps >= need else f"is the bottleneck: needs {math.ceil(need / fps * _THREADS.value)}+ threads"
    print(f"  the fastest step ({best['variant']}) consumes {need:8.1f} frames/s: pipeline / step = {fps / need:.2f}; "
          f"the pipeline {verdict}")
  fps, ms = bench_pipeline(task, splits, b, train_mode=False)
  print(f"Frame pipeline, eval ({task.transform.num_views} views: {task.transform.eval_crops} crops"
        f"{' + flips' if task.transform.eval_flips else ''}): {fps:8.1f} clip frames/s ({ms:.1f} ms per batch)")


if __name__ == "__main__":
  app.run(main)
