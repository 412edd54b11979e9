"""Throughput of `Trainer.train_step` for AVT-h on pre-extracted features, against the matmul peak.

    python benchmarks/train_step.py                      # configs/egtea.py's batch, frames and classes
    python benchmarks/train_step.py --config=ek55 --steps=3   # configs/ek55.py's
    python benchmarks/train_step.py --breakdown=false    # the step and the peak only
    python benchmarks/train_step.py --override=model.dropout=0,model.head.dropout=0

Sizes come from the config named by --config: batch `train.batch_size`, frames `data.num_frames`, and the
classifiers' widths from its module's NUM_CLASSES / NUM_VERBS / NUM_NOUNS (RULSTM's vocabularies);
--batch, --frames, --classes, --verbs and --nouns replace them. The feature width is the dataset's, not
the config's: --input_dim (2048, IG65M's; RULSTM's TSN features are 1024-d).

Prints (never asserts) ms/step, examples/s, FLOPs per step (XLA's cost analysis and the analytic
6 * params * tokens + attention), achieved GFLOP/s, the device's float32 matmul peak measured the same
way, and the step's share of that peak. With --breakdown it also times parts of the step (forward,
forward+backward, optimizer update, the cross-entropies, the step's matmul shapes) to show what limits it.

Protocol: compile first (excluded); `--warmup` untimed calls; then `--repeats` rounds, each timing
`--steps` back-to-back calls on pre-built device batches with one `jax.block_until_ready` at the end,
followed by one call of each peak matmul loop (~250 GFLOP each). Step and peak are interleaved so that
both see the same machine load; medians are reported, and the % of peak is the median of the per-round
ratios. On a shared machine wall-clock figures move with other processes' load (the CPU pressure is
printed), so the same ratio is also given per CPU-second of this process. Page faults are printed too:
on CPU every fresh multi-MB buffer costs one fault per 4 KiB.
No dataset is read: the trainer gets an in-memory `Splits`.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
import importlib
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any

from absl import app
from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for `configs`

from anticipax import losses  # pylint: disable=g-import-not-at-top
from anticipax import sharding
from anticipax import train
from anticipax.data import pipeline

_CONFIG = flags.DEFINE_enum("config", "egtea", ["egtea", "ek55", "demo"], "configs/<name>.py to benchmark.")
_BATCH = flags.DEFINE_integer("batch", 0, "Global batch size; 0: the config's train.batch_size.")
_FRAMES = flags.DEFINE_integer("frames", 0, "Frames per clip; 0: the config's data.num_frames.")
_INPUT_DIM = flags.DEFINE_integer("input_dim", 2048, "Width of the pre-extracted frame features (the "
                                  "dataset's, not in the config: TSN 1024, IG65M 2048).")
_CLASSES = flags.DEFINE_integer("classes", 0, "Action classes; 0: the config module's NUM_CLASSES.")
_VERBS = flags.DEFINE_integer("verbs", 0, "Verb classes (used only with model.verb_noun_heads); 0: NUM_VERBS.")
_NOUNS = flags.DEFINE_integer("nouns", 0, "Noun classes (used only with model.verb_noun_heads); 0: NUM_NOUNS.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed back-to-back steps per round.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls after compilation.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed rounds; medians are reported.")
_PEAK_SIZES = flags.DEFINE_list("peak_sizes", ["2048", "3072", "4096"], "Square matmul sizes for the peak.")
_PEAK_GFLOP = flags.DEFINE_float("peak_gflop", 250.0, "FLOPs per timed peak call, in GFLOP.")
_TARGET = flags.DEFINE_float("target", 80.0, "Target share of the matmul peak, in %.")
_OVERRIDE = flags.DEFINE_list("override", [], "Config overrides, e.g. model.dropout=0,optimizer.name=adamw.")
_BREAKDOWN = flags.DEFINE_bool("breakdown", True, "Also time parts of the step.")
_BREAKDOWN_STEPS = flags.DEFINE_integer("breakdown_steps", 3, "Timed calls per round in the breakdown.")


# -- timing ---------------------------------------------------------------------------------------------
class Usage:
  """Wall time, page faults and CPU seconds of this process over a `with` block."""

  def __enter__(self):
    self._ru, self._t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return self

  def __exit__(self, *exc):
    ru = resource.getrusage(resource.RUSAGE_SELF)
    self.wall = time.perf_counter() - self._t
    self.faults = ru.ru_minflt - self._ru.ru_minflt
    self.cpu = ru.ru_utime - self._ru.ru_utime + ru.ru_stime - self._ru.ru_stime
    self.sys = ru.ru_stime - self._ru.ru_stime
    return False


def run_timed(run: Callable[[int], Any], n: int) -> Usage:
  """`run(n)` makes n calls and returns their last outputs; blocks once, at the end."""
  with Usage() as usage:
    jax.block_until_ready(run(n))
  return usage


def xla_flops(compiled) -> float:
  """FLOPs from `Compiled.cost_analysis()`, a dict or (older JAX) a list holding one dict."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def device_description() -> str:
  dev = jax.devices()[0]
  desc = f"{jax.device_count()} x {dev.platform.upper()} ({dev.device_kind})"
  if dev.platform == "cpu":
    model = platform.processor() or platform.machine()
    try:
      with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
      pass
    desc += f", {model}, {os.cpu_count()} logical cores"
  env = " ".join(f"{k}={os.environ[k]!r}" for k in ("XLA_FLAGS", "GLIBC_TUNABLES") if k in os.environ)
  return f"{desc}; jax {jax.__version__}; {env or 'XLA_FLAGS unset'}"


def load_average() -> str:
  try:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
  except OSError:
    return "load average n/a"


def cpu_pressure() -> str:
  """Linux PSI: the share of the last 10 s in which some runnable task waited for a CPU."""
  try:
    with open("/proc/pressure/cpu") as f:
      some = f.readline().split()
    return f"; CPU pressure {some[1].split('=')[1]} %"
  except (OSError, IndexError):
    return ""


# -- matmul peak ----------------------------------------------------------------------------------------
def peak_chains(sizes: list[int], gflop_per_call: float) -> dict[int, tuple[Callable[[], jax.Array], float]]:
  """Per size n: (compiled call, its FLOPs) looping float32 [n, n] @ [n, n] matmuls ~`gflop_per_call`.

  The matmuls run in one `fori_loop`, so buffers are allocated once per call, not once per matmul.
  """
  calls = {}
  for n in sizes:
    count = max(1, round(gflop_per_call * 1e9 / (2.0 * n**3)))
    kx, kw = jax.random.split(jax.random.key(n))
    x = jax.random.normal(kx, (n, n), jnp.float32)
    w = jax.random.normal(kw, (n, n), jnp.float32) / np.sqrt(n)  # keeps the values O(1), no denormals

    def chain(x, w, count=count):
      return jax.lax.fori_loop(0, count, lambda _, y: y @ w, x)

    compiled = jax.jit(chain).lower(x, w).compile()
    calls[n] = (functools.partial(compiled, x, w), 2.0 * n**3 * count)
  return calls


# -- fake data ------------------------------------------------------------------------------------------
def fake_splits(num_examples: int, frames: int, dim: int, classes: int, verbs: int,
                nouns: int) -> pipeline.Splits:
  """Random examples with the fields the anticipation task trains on, as random-access lists."""
  rng = np.random.default_rng(0)
  actions = np.stack([rng.integers(0, verbs, classes), rng.integers(0, nouns, classes)], 1)
  examples = []
  for _ in range(num_examples):
    a = int(rng.integers(0, classes))
    examples.append({
        "features": rng.standard_normal((frames, dim), dtype=np.float32),
        "past_actions": rng.integers(-1, classes, frames).astype(np.int32),
        "action": np.int32(a), "verb": np.int32(actions[a, 0]), "noun": np.int32(actions[a, 1])})
  info = pipeline.DatasetInfo(num_classes=classes, num_verbs=verbs, num_nouns=nouns, actions=actions,
                              feature_dim=dim, num_frames=frames)
  return pipeline.Splits(train=examples, eval=examples, info=info)


def device_batches(trainer: train.Trainer, splits: pipeline.Splits, count: int) -> list[dict]:
  """`count` distinct global batches already on device, assembled as the training loop does.

  The fields are those the jitted step expects (`trainer.batch_shardings`); one the fake examples lack
  is taken from the task's dummy batch.
  """
  b = trainer.global_batch_size
  dummy = trainer.task.dummy_batch(b)
  out = []
  for i in range(count):
    rows = [splits.train[(i * b + j) % len(splits.train)] for j in range(b)]
    local = {k: np.stack([r[k] for r in rows]) if k in rows[0] else dummy[k]
             for k in trainer.batch_shardings}
    out.append(sharding.global_batch(local, trainer.mesh))
  return jax.block_until_ready(out)


def benchmark_config(name: str, settings: tuple[str, ...] = ()):
  """configs/<name>.py's config at the benchmark's sizes, and its (actions, verbs, nouns) class counts.

  Args:
    name: the config module under configs/.
    settings: `a.b=value` items the caller fixes (e.g. the optimizer), applied before --override.

  Returns:
    `(config, (classes, verbs, nouns))`: batch and frames from the config unless --batch / --frames are
    given; class counts from the module's NUM_CLASSES / NUM_VERBS / NUM_NOUNS unless the flags are.

  Raises:
    app.UsageError: the config fixes no frame count, or its module no class count, and the flag is not
      given (configs/demo.py: its synthetic dataset decides both).
  """
  module = importlib.import_module(f"configs.{name}")
  config = module.get_config()
  if _BATCH.value:
    config.train.batch_size = _BATCH.value
  if _FRAMES.value:
    config.data.num_frames = _FRAMES.value
  for item in (*settings, *_OVERRIDE.value):
    apply_override(config, item)
  if "num_frames" not in config.data:
    raise app.UsageError(f"configs/{name}.py sets no data.num_frames (its dataset's): pass --frames")
  counts = []
  for flag, constant in ((_CLASSES, "NUM_CLASSES"), (_VERBS, "NUM_VERBS"), (_NOUNS, "NUM_NOUNS")):
    count = flag.value or getattr(module, constant, 0)
    if not count:
      raise app.UsageError(f"configs/{name}.py has no {constant} (its dataset's vocabulary is built, not "
                           f"fixed): pass --{flag.name}")
    counts.append(count)
  return config, tuple(counts)


def apply_override(config, item: str) -> None:
  """`a.b.c=value` sets config.a.b.c, cast to the type of its current value."""
  key, value = item.split("=", 1)
  *parents, leaf = key.split(".")
  node = functools.reduce(getattr, parents, config)
  old = getattr(node, leaf)
  if isinstance(old, bool):
    setattr(node, leaf, value.lower() in ("1", "true", "yes"))
  else:
    setattr(node, leaf, type(old)(value) if old is not None else value)


def frozen_args(trainer: train.Trainer) -> tuple:
  """Trailing arguments of the task's loss_fn/predict: the frozen (teacher) params, if the trainer has any."""
  return (trainer.frozen,) if hasattr(trainer, "frozen") else ()


def compile_train_step(trainer: train.Trainer, state, batch):
  """(call(state, batch), compiled executable) of the trainer's jitted train step, compiled once."""
  if hasattr(trainer.train_step, "lower"):  # train_step is the jitted function itself
    compiled = trainer.train_step.lower(state, batch).compile()
    return compiled, compiled
  # train_step is a method around a jitted step that also takes the frozen params.
  extra = frozen_args(trainer)
  compiled = trainer._train_step_jit.lower(state, batch, *extra).compile()  # pylint: disable=protected-access
  return (lambda s, b: compiled(s, b, *extra)), compiled


# -- analytic FLOPs ---------------------------------------------------------------------------------------
def analytic_flops(params, config, batch: int, frames: int) -> tuple[float, int, int]:
  """(6 * matmul params * tokens + attention, matmul params, all params) for one training step.

  Every kernel sees all B*T tokens (the classifier too: the past logits use every position). Attention
  adds QK^T and AV: 2 * 2 * B * T^2 * width FLOPs per layer forward, x3 with the backward.
  """
  leaves = jax.tree_util.tree_leaves_with_path(params)
  kernel = sum(x.size for p, x in leaves if "kernel" in jax.tree_util.keystr(p))
  total = sum(x.size for _, x in leaves)
  head = config.model.head
  attention = 3 * head.num_layers * 4 * batch * frames**2 * head.inter_dim
  return 6.0 * kernel * batch * frames + attention, kernel, total


@dataclasses.dataclass
class PerStep:
  """A figure measured by the wall clock and per CPU-second of this process."""

  wall: float
  cpu: float


# -- parts of the step ------------------------------------------------------------------------------------
def breakdown(trainer: train.Trainer, state, batches, peak: PerStep, step: PerStep) -> None:
  """Times pieces of the step separately (same protocol) to show where its time goes.

  `peak` holds the matmul peak (GFLOP/s in .wall, GFLOP per CPU-second in .cpu); `step` the step's
  seconds and CPU-seconds. Percentages of the step compare like with like (wall or CPU).
  """
  task, tx, nb, extra = trainer.task, trainer.tx, len(batches), frozen_args(trainer)
  n, warmup, repeats = _BREAKDOWN_STEPS.value, _WARMUP.value, _REPEATS.value
  rng = jax.random.key(1)

  def report(name, fn, args_for, donate=()):
    """Times fn; with `donate`, output i is fed back as argument donate[i] (like the train state)."""
    args = list(args_for(0))
    compiled = jax.jit(fn, donate_argnums=donate).lower(*args).compile()

    def run(k):
      out = None
      for i in range(k):
        call = list(args_for(i))
        for a in donate:
          call[a] = args[a]
        out = compiled(*call)
        for j, a in enumerate(donate):
          args[a] = out[j]
      return out

    run_timed(run, warmup)
    rounds = [run_timed(run, n) for _ in range(repeats)]
    sec = statistics.median(u.wall for u in rounds) / n
    cpu = statistics.median(u.cpu for u in rounds) / n
    faults = statistics.median(u.faults for u in rounds) / n
    flops = xla_flops(compiled)
    print(f"  {name:<46s} {sec * 1e3:7.1f} {100 * sec / step.wall:5.1f}  {cpu * 1e3:7.1f} "
          f"{100 * cpu / step.cpu:5.1f} {flops / 1e9:6.1f} {flops / sec / 1e9:7.1f} "
          f"{100 * flops / sec / 1e9 / peak.wall:5.1f} {flops / cpu / 1e9:7.1f} {faults:8.0f}")

  def predict(p, b):
    return task.predict(p, b, *extra)["logits"]

  def loss(p, b):
    return task.loss_fn(p, b, rng, *extra)[0]

  def fwd_bwd(p, b):
    return jax.value_and_grad(task.loss_fn, has_aux=True)(p, b, rng, *extra)[1]

  def update(o, p, g):
    u, o = tx.update(g, o, p)
    return o, optax.apply_updates(p, u)

  def ce(z, batch):  # both cross-entropies over the classes, with their gradient w.r.t. the logits
    def f(z):
      return (losses.next_action_ce(z[:, -1], batch["action"])[0]
              + losses.past_action_ce(z, batch["past_actions"])[0])
    return jax.grad(f)(z)

  params = state.params
  grads = jax.tree.map(lambda x: jnp.full_like(x, 1e-3), params)
  donated = jax.tree.map(jnp.copy, (state.opt_state, params))
  b, t, c = trainer.global_batch_size, trainer.splits.info.num_frames, trainer.splits.info.num_classes
  width = trainer.config.model.head.inter_dim
  logits = jax.random.normal(rng, (b, t, c), jnp.float32)
  x = jax.random.normal(rng, (b * t, width), jnp.float32)
  w = jax.random.normal(rng, (width, 4 * width), jnp.float32)
  dy = jax.random.normal(rng, (b * t, 4 * width), jnp.float32)
  mib = 4 * sum(v.size for v in jax.tree.leaves(params)) / 2**20

  print(f"Breakdown ({n} calls x {repeats} rounds){'':<12s}wall-ms %step   CPU-ms %step  GFLOP GFLOP/s "
        "%peak GFLOP/CPU-s faults")
  with nn.logical_axis_rules(trainer.rules):  # as in Trainer._train_step
    report("forward, eval mode (no dropout)", predict, lambda i: (params, batches[i % nb]))
    report("forward, train mode (dropout) + losses", loss, lambda i: (params, batches[i % nb]))
    report("forward + backward (grads are fresh outputs)", fwd_bwd, lambda i: (params, batches[i % nb]))
  report(f"{trainer.config.optimizer.name} update + apply, state donated", update,
         lambda i: (*donated, grads), (0, 1))
  report("global grad norm (a logged metric)", optax.global_norm, lambda i: (grads,))
  report(f"both CEs over {c} classes + grad", ce, lambda i: (logits, batches[i % nb]))
  report(f"x @ W    [{b * t},{width}]@[{width},{4 * width}] (MLP fc)", jnp.matmul, lambda i: (x, w))
  report(f"dY @ W.T [{b * t},{4 * width}]@[{4 * width},{width}] (its dX)",
         lambda g, w: g @ w.T, lambda i: (dy, w))
  report(f"x.T @ dY [{width},{b * t}]@[{b * t},{4 * width}] (its dW)",
         lambda x, g: x.T @ g, lambda i: (x, dy))
  report(f"p * 0.9 into a fresh {mib:.0f} MiB output", lambda p: jax.tree.map(lambda v: v * 0.9, p),
         lambda i: (params,))


def main(argv):
  del argv
  print(f"Device: {device_description()}")
  config, (classes, verbs, nouns) = benchmark_config(_CONFIG.value)
  b, t = int(config.train.batch_size), int(config.data.num_frames)
  splits = fake_splits(max(2 * b, 64), t, _INPUT_DIM.value, classes, verbs, nouns)

  trainer = train.Trainer(config, splits)
  state = trainer.init_state()
  batches = device_batches(trainer, splits, count=4)
  flops_analytic, kernel_params, num_params = analytic_flops(state.params, config, b, t)
  h, o = config.model.head, config.optimizer
  print(f"Config: {_CONFIG.value}{' ' + ','.join(_OVERRIDE.value) if _OVERRIDE.value else ''}: AVT-h "
        f"{h.num_layers} x {h.inter_dim} wide, {h.num_heads} heads, dropout {h.dropout}/"
        f"{config.model.dropout}; "
        f"backbone {config.model.backbone.dim}; {o.name} (wd {o.weight_decay}); batch {b} x {t} frames x "
        f"{_INPUT_DIM.value}-d, {classes} classes; {num_params / 1e6:.1f} M params "
        f"({kernel_params / 1e6:.1f} M in matmuls)")

  with Usage() as compile_usage:
    step_fn, compiled = compile_train_step(trainer, state, batches[0])
  flops_xla = xla_flops(compiled)
  try:
    temp_mib = compiled.memory_analysis().temp_size_in_bytes / 2**20
  except (AttributeError, NotImplementedError, RuntimeError):
    temp_mib = float("nan")
  peaks = peak_chains([int(s) for s in _PEAK_SIZES.value], _PEAK_GFLOP.value)

  def run_steps(k):
    nonlocal state
    outputs = ()
    for i in range(k):
      state, *outputs = step_fn(state, batches[i % len(batches)])  # (state, metrics[, finite flags])
    return state, outputs

  run_timed(run_steps, _WARMUP.value)
  for call, _ in peaks.values():
    run_timed(lambda k, call=call: call(), 1)
  steps, peak_rounds, peak_cpu_rounds = [], [], []
  for _ in range(_REPEATS.value):
    steps.append(run_timed(run_steps, _STEPS.value))
    per_size, per_size_cpu = {}, {}
    for size, (call, flops) in peaks.items():
      usage = run_timed(lambda k, call=call: call(), 1)
      per_size[size] = flops / usage.wall / 1e9
      per_size_cpu[size] = flops / usage.cpu / 1e9
    peak_rounds.append(per_size)
    peak_cpu_rounds.append(per_size_cpu)

  n = _STEPS.value
  step_s = statistics.median(u.wall for u in steps) / n
  gflops = flops_xla / step_s / 1e9
  round_peak = [max(p.values()) for p in peak_rounds]
  peak = statistics.median(round_peak)
  share = statistics.median(100 * flops_xla / (u.wall / n) / 1e9 / p for u, p in zip(steps, round_peak))
  best_step_s = min(u.wall for u in steps) / n
  best_share = 100 * flops_xla / best_step_s / 1e9 / max(round_peak)
  # Per CPU-second of this process: what the FLOPs cost in CPU time, whoever else shares the cores.
  cpu_peak = statistics.median(max(p.values()) for p in peak_cpu_rounds)
  cpu_gflops = statistics.median(flops_xla * n / u.cpu / 1e9 for u in steps)
  faults = statistics.median(u.faults for u in steps) / n
  cpu = statistics.median(u.cpu for u in steps) / n
  sys_s = statistics.median(u.sys for u in steps) / n

  print(f"Protocol: compile {compile_usage.wall:.1f} s (excluded), {_WARMUP.value} warm-up steps, "
        f"{_REPEATS.value} rounds of {n} back-to-back steps + one call per peak size, "
        f"block_until_ready at the end of each; {load_average()}{cpu_pressure()}")
  print(f"train_step            {step_s * 1e3:9.1f} ms/step    {b / step_s:8.1f} examples/s   "
        f"(rounds: {', '.join(f'{u.wall / n * 1e3:.0f}' for u in steps)} ms)")
  print(f"FLOPs/step, XLA       {flops_xla / 1e9:9.1f} GFLOP")
  print(f"FLOPs/step, analytic  {flops_analytic / 1e9:9.1f} GFLOP   (6 x {kernel_params / 1e6:.1f} M x "
        f"{b * t} tokens + attention)")
  print(f"Achieved              {gflops:9.1f} GFLOP/s  ({flops_analytic / step_s / 1e9:.1f} with the "
        "analytic FLOPs)")
  print("float32 matmul peak   " + "   ".join(
      f"{s}^3: {statistics.median(p[s] for p in peak_rounds):.1f}" for s in peaks)
        + f" GFLOP/s; peak (median of each round's best) {peak:.1f} GFLOP/s")
  met = "MET" if share >= _TARGET.value else "NOT MET"
  print(f"Share of peak         {share:9.1f} %        target >= {_TARGET.value:.0f} %: {met}")
  print(f"Best round            {best_step_s * 1e3:9.1f} ms/step    {flops_xla / best_step_s / 1e9:8.1f} "
        f"GFLOP/s = {best_share:.1f} % of the best peak round ({max(round_peak):.1f} GFLOP/s)")
  print(f"Per CPU-second        {cpu_gflops:9.1f} GFLOP/CPU-s for the step, {cpu_peak:.1f} for the peak: "
        f"{100 * cpu_gflops / cpu_peak:.1f} %   (robust to other processes, blind to idle cores)")
  print(f"Per step              {faults:9.0f} minor page faults, {cpu:.2f} s CPU ({sys_s:.2f} s system) "
        f"for {step_s * os.cpu_count():.2f} s wall x cores; XLA temp buffer {temp_mib:.0f} MiB")

  if _BREAKDOWN.value:
    breakdown(trainer, state, batches, PerStep(peak, cpu_peak), PerStep(step_s, cpu))


if __name__ == "__main__":
  app.run(main)
