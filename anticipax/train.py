"""The one trainer: state init, jitted sharded steps, loop, evaluation, checkpoints, writers.

Follow one batch: `data.pipeline` yields this process's numpy slice -> text tasks cut it to a length
bucket (`cut_padding`) -> `sharding.global_batch` makes it a global array split over the data axes ->
`train_step` (jitted once per shape, state donated) runs the task's loss under `value_and_grad` and the
optimizer -> clu metrics are merged on device and written every `log_every` steps. Evaluation gathers
the outputs of `task.predict` and scores them with `metrics.py`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
import contextlib
import json
import signal
import threading
from typing import Any

from absl import logging
from clu import metrics as clu_metrics
import flax
from flax import traverse_util
import flax.linen as nn
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from anticipax import checkpointing
from anticipax import optimizers
from anticipax import paths
from anticipax import sharding
from anticipax import summaries
from anticipax import tasks
from anticipax.data import buckets
from anticipax.data import datasets
from anticipax.data import pipeline


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training. Dropout keys derive from (seed, step), not stored."""

  step: jax.Array
  params: Any
  opt_state: Any


def _collection(names: tuple[str, ...]) -> type[clu_metrics.Collection]:
  fields = {n: clu_metrics.Average.from_output(n) for n in names}
  fields["learning_rate"] = clu_metrics.LastValue.from_output("learning_rate")
  fields["grad_norm"] = clu_metrics.Average.from_output("grad_norm")
  return clu_metrics.Collection.create(**fields)


class Trainer:
  """Builds the task, mesh, optimizer and jitted steps for one config."""

  def __init__(self, config, splits: pipeline.Splits | None = None, devices=None):
    self.config = config
    self.splits = splits if splits is not None else tasks.load_data(config)
    self.task = tasks.get(config, self.splits)
    self.mesh = sharding.make_mesh(config.mesh, devices)
    self.rules = sharding.rules_from_config(config.logical_axis_rules)
    self.total_steps = int(config.train.steps)
    self.schedule = optimizers.create_schedule(config.schedule, self.total_steps)
    self.tx = optimizers.create_optimizer(config.optimizer, self.schedule)
    self.metrics_cls = _collection(self.task.train_metric_names)
    init_rng, self.train_rng = jax.random.split(jax.random.key(config.seed))

    self.global_batch_size = int(config.train.batch_size)
    dp = sharding.data_parallel_size(self.mesh)
    if self.global_batch_size % dp or self.global_batch_size % jax.process_count():
      raise ValueError(f"config.train.batch_size {self.global_batch_size} must divide by the data-parallel "
                       f"mesh size {dp} and the process count {jax.process_count()}")
    # Gradient accumulation: the batch runs as `grad_accum_steps` microbatches, one optimizer update.
    self.grad_accum = int(config.train.get("grad_accum_steps", 1))
    if self.grad_accum < 1 or self.global_batch_size % (self.grad_accum * dp):
      raise ValueError(f"config.train.grad_accum_steps {self.grad_accum}: the batch {self.global_batch_size} "
                       f"must divide into that many microbatches, each divisible by the data-parallel size {dp}")
    self.local_batch_size = self.global_batch_size // jax.process_count()
    self.eval_batch_size = int(config.eval.get("batch_size") or self.global_batch_size)
    dummy = self.task.dummy_batch(self.global_batch_size)
    self.batch_shardings = {k: sharding.batch_sharding(self.mesh, v.ndim) for k, v in dummy.items()}
    eval_dummy = {**self.task.dummy_batch(self.eval_batch_size, eval=True),
                  "mask": np.zeros(self.eval_batch_size), "index": np.zeros(self.eval_batch_size, np.int32)}
    eval_shardings = {k: sharding.batch_sharding(self.mesh, v.ndim) for k, v in eval_dummy.items()}

    def init_boxed(rng):
      params = self.task.init(rng, jax.tree.map(jnp.asarray, dummy))
      return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=self.tx.init(params))

    with self.mesh, nn.logical_axis_rules(self.rules):
      abstract = jax.eval_shape(init_boxed, init_rng)
      self.state_shardings = sharding.logical_shardings(abstract, self.mesh, self.rules)
      self.abstract_state = jax.tree.map(
          lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
          nn.unbox(abstract), self.state_shardings)
      self._init = jax.jit(lambda r: nn.unbox(init_boxed(r)), out_shardings=self.state_shardings)
    self._init_rng = init_rng
    self.frozen, frozen_shardings = self._place_frozen()
    self._train_step_jit = jax.jit(
        self._train_step, in_shardings=(self.state_shardings, self.batch_shardings, frozen_shardings),
        out_shardings=(self.state_shardings, None, None), donate_argnums=(0,))
    self._eval_step_jit = jax.jit(
        self._eval_step, in_shardings=(self.state_shardings.params, eval_shardings, frozen_shardings),
        out_shardings=sharding.replicated(self.mesh))

  def _place_frozen(self):
    """Frozen models (e.g. an online teacher): sharded by their logical axes, never optimized or saved."""
    frozen = self.task.frozen_params()
    if frozen is None:
      return {}, {}
    params, specs = frozen
    shardings = nn.logical_to_mesh_sharding(specs, self.mesh, self.rules)
    return jax.device_put(params, shardings), shardings

  def train_step(self, state: TrainState, batch):
    """One optimizer step (jitted once; `state` is donated)."""
    return self._train_step_jit(state, batch, self.frozen)

  def eval_step(self, params, batch):
    return self._eval_step_jit(params, batch, self.frozen)

  # -- jitted bodies -------------------------------------------------------------------------------
  def _train_step(self, state: TrainState, batch, frozen):
    rng = jax.random.fold_in(self.train_rng, state.step)
    frozen = jax.lax.stop_gradient(frozen)
    with nn.logical_axis_rules(self.rules):
      terms, grads = self._loss_and_grads(state.params, batch, rng, frozen)
    # Every gradient is complete before any parameter is overwritten: the update then runs in place on
    # the donated buffers (without the barrier XLA copies every parameter it cannot prove unread).
    grads, old_params = jax.lax.optimization_barrier((grads, state.params))
    updates, opt_state = self.tx.update(grads, state.opt_state, old_params)
    params = optax.apply_updates(old_params, updates)
    grad_norm = optax.global_norm(grads)
    finite = {**{k: jnp.isfinite(v) for k, v in terms.items()}, "gradient": jnp.isfinite(grad_norm)}
    if self.config.train.get("skip_nonfinite", False):  # keep the old state where anything blew up
      ok = jnp.all(jnp.stack(list(finite.values())))
      params, opt_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old),
                                       (params, opt_state), (state.params, state.opt_state))
    step_metrics = self.metrics_cls.single_from_model_output(
        **terms, grad_norm=grad_norm, learning_rate=self.schedule(state.step))
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), step_metrics, finite

  def _loss_and_grads(self, params, batch, rng, frozen):
    """Loss terms and gradients of the batch; with accumulation, their mean over microbatches (a scan, so
    only one microbatch's activations are live). Microbatch i holds rows i, i + k, ...: every device keeps
    its share of each. Dropout keys fold in the microbatch index. A term averaged over a varying number of
    entries (the past-action CE over labelled frames) becomes the mean of the microbatches' means, as
    under data parallelism over k processes."""
    grad_fn = jax.value_and_grad(self.task.loss_fn, has_aux=True)
    k = self.grad_accum
    if k == 1:
      (_, terms), grads = grad_fn(params, batch, rng, frozen)
      return terms, grads
    micro = jax.tree.map(lambda x: x.reshape(x.shape[0] // k, k, *x.shape[1:]).swapaxes(0, 1), batch)

    def body(total, i):
      mb = jax.tree.map(lambda x, s: jax.lax.with_sharding_constraint(x[i], s), micro, self.batch_shardings)
      (_, terms), grads = grad_fn(params, mb, jax.random.fold_in(rng, i), frozen)
      return jax.tree.map(jnp.add, total, (terms, grads)), None

    shapes = jax.eval_shape(lambda: grad_fn(params, jax.tree.map(lambda x: x[0], micro), rng, frozen))
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (shapes[0][1], shapes[1]))
    total, _ = jax.lax.scan(body, zeros, jnp.arange(k))
    return jax.tree.map(lambda x: x / k, total)

  def _eval_step(self, params, batch, frozen):
    with nn.logical_axis_rules(self.rules):
      outputs = self.task.predict(params, batch, frozen)
    return {**outputs, "mask": batch["mask"], "index": batch["index"]}

  # -- host side -------------------------------------------------------------------------------------
  def init_state(self) -> TrainState:
    """Fresh state; parameters the task brings pretrained replace their random init."""
    with self.mesh:
      state = self._init(self._init_rng)
    pretrained = self.task.pretrained_params()
    if pretrained is None:
      return state
    flat = traverse_util.flatten_dict(state.params)
    new = traverse_util.flatten_dict(pretrained)
    problems = [f"{'/'.join(k)}: {'not in the model' if k not in flat else f'{np.shape(v)} vs {flat[k].shape}'}"
                for k, v in new.items() if k not in flat or np.shape(v) != flat[k].shape]
    if problems:
      raise ValueError("pretrained parameters do not fit the model:\n  " + "\n  ".join(problems))
    for k, v in new.items():
      flat[k] = jax.device_put(np.asarray(v, flat[k].dtype), flat[k].sharding)
    logging.info("Loaded %d pretrained parameter arrays.", len(new))
    return state.replace(params=traverse_util.unflatten_dict(flat))

  def train_iterator(self):
    return pipeline.train_iterator(
        self.splits.train, keys=self.task.train_keys, preprocess=self.task.preprocess,
        batch_size=self.local_batch_size,
        seed=self.config.seed, process_index=jax.process_index(), process_count=jax.process_count(),
        num_threads=self.config.data.get("num_threads", 4))

  def cut_padding(self, local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """This process's batch cut to the task's length bucket (every process agrees on one length)."""
    lengths = self.task.length_buckets
    if not lengths:
      return local
    longest = buckets.longest_row(local[self.task.length_mask_key])
    if jax.process_count() > 1:
      longest = int(np.max(multihost_utils.process_allgather(np.int32(longest))))
    return buckets.cut(local, self.task.padded_keys, buckets.bucket_for(longest, lengths))

  def batches(self, iterator, prefetch: int = 2) -> Iterator[tuple[dict, dict]]:
    """(iterator state after this batch, global device batch), `prefetch` batches transferred ahead."""
    queue = collections.deque()

    def put():
      local = next(iterator)
      queue.append((iterator.get_state(), sharding.global_batch(self.cut_padding(local), self.mesh)))

    for _ in range(prefetch):
      put()
    while True:
      put()
      yield queue.popleft()

  def predict(self, params, source) -> dict[str, np.ndarray]:
    """`task.predict` over every example of `source`, gathered on every host, in source order."""
    outputs = []
    for local in pipeline.eval_batches(
        source, keys=self.task.eval_keys, preprocess=self.task.preprocess,
        batch_size=self.eval_batch_size // jax.process_count(),
        process_index=jax.process_index(), process_count=jax.process_count()):
      outputs.append(self.eval_step(params, sharding.global_batch(self.cut_padding(local), self.mesh)))
    host = jax.device_get(outputs)
    cat = {k: np.concatenate([o[k] for o in host]) for k in host[0]}
    keep = cat.pop("mask") > 0
    order = np.argsort(cat["index"][keep], kind="stable")
    return {k: v[keep][order] for k, v in cat.items()}

  def evaluate(self, params, source=None) -> dict[str, float]:
    """The task's metrics on `source` (default the evaluation split)."""
    if source is None:
      return self.task.evaluate(self.predict(params, self.splits.eval))
    return self.task.evaluate(self.predict(params, source), source)


class NumericalError(FloatingPointError):
  """A loss term or the gradient became NaN/Inf."""


class _Preemption:
  """Turns SIGTERM (a preemption notice) into a flag the loop checks after every step."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning("SIGTERM received: saving a checkpoint and stopping.")
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def reached(self, checkpoints, step: int) -> bool:
    if jax.process_count() > 1:  # every process must stop at the same step
      return checkpoints.latest.reached_preemption(step)
    return self.requested


def _check_finite(pending: list, skip: bool) -> None:
  """Raises for the first step whose loss terms or gradient were not finite (unless skipped)."""
  for step, flags in jax.device_get(pending):
    bad = sorted(k for k, ok in flags.items() if not ok)
    if bad and not skip:
      raise NumericalError(f"non-finite {', '.join(bad)} at step {step}; the last good checkpoint is kept "
                           "(set train.skip_nonfinite=True to skip such updates instead)")
    if bad:
      logging.warning("Step %d: non-finite %s; the update was skipped.", step, ", ".join(bad))
  pending.clear()


def run(config, workdir: str, *, splits: pipeline.Splits | None = None,
        overwrite: bool = False) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint, and returns the final metrics.

  Stops early (with a checkpoint) on SIGTERM; raises `NumericalError` on NaN/Inf before any bad state is
  saved; refuses a workdir holding a run of another config unless `overwrite`.
  """
  with _Preemption() as preemption:  # from the start: a notice during setup stops after the first step
    return _run(config, paths.path(workdir), splits, overwrite, preemption)


def _run(config, workdir, splits, overwrite, preemption) -> dict[str, Any]:
  trainer = Trainer(config, splits)
  checkpoints = checkpointing.Checkpoints(workdir, config, overwrite=overwrite)
  writer = summaries.Writer(workdir if jax.process_index() == 0 else None)  # other processes: the log only
  try:
    iterator = trainer.train_iterator()
    data_state = iterator.get_state()
    restored = checkpoints.restore(trainer.abstract_state)
    if restored is not None:
      state, data_state = restored
      iterator.set_state(data_state)
    else:
      state = trainer.init_state()
    step = int(jax.device_get(state.step))

    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    logging.info("Model: %s parameters; mesh %s; global batch %d.", f"{num_params:,}",
                 dict(trainer.mesh.shape), trainer.global_batch_size)

    tcfg = config.train
    hooks, progress = [], None
    if jax.process_index() == 0:
      progress = summaries.Progress(trainer.total_steps, writer, tcfg.log_every)
      hooks.append(progress)
      if tcfg.get("profile_steps", 0):
        hooks.append(summaries.Profile(str(workdir), tcfg.profile_steps, tcfg.get("profile_first_step", 10)))
    skip_nonfinite = tcfg.get("skip_nonfinite", False)

    eval_metrics = None
    train_metrics = None
    pending_finite = []  # (step, {term: finite}) not yet looked at: checked at log and save time only
    # A run may stop early (time-limited jobs): the schedule still spans train.steps, so resuming later
    # reproduces an uninterrupted run exactly.
    stop = trainer.total_steps
    if tcfg.get("max_steps_per_run", 0):
      stop = min(stop, step + tcfg.max_steps_per_run)
    batches = trainer.batches(iterator) if step < stop else iter(())
    while step < stop:
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        data_state, batch = next(batches)
        state, step_metrics, finite = trainer.train_step(state, batch)
      step += 1
      pending_finite.append((step, finite))
      train_metrics = step_metrics if train_metrics is None else train_metrics.merge(step_metrics)
      for hook in hooks:
        hook(step)
      preempted = preemption.reached(checkpoints, step)
      last = step == stop or preempted
      if step % tcfg.log_every == 0 or last:
        _check_finite(pending_finite, skip_nonfinite)
        writer.write_scalars(step, {f"train/{k}": v for k, v in train_metrics.compute().items()})
        train_metrics = None
      evaluated = (tcfg.eval_every and step % tcfg.eval_every == 0) or (last and not preempted)
      if evaluated:
        with progress.timed("eval") if progress else contextlib.nullcontext():
          eval_metrics = trainer.evaluate(state.params)
        writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
      if step % tcfg.checkpoint_every == 0 or last or evaluated:
        _check_finite(pending_finite, skip_nonfinite)  # never save a bad state
        checkpoints.save(step, state, data_state, eval_metrics if evaluated else None)
      if preempted:
        logging.warning("Preempted: checkpoint of step %d saved; rerun the same command to continue.", step)
        break

    if eval_metrics is None:  # resumed a finished run: score the restored state again
      eval_metrics = trainer.evaluate(state.params)
    checkpoints.latest.wait_until_finished()
    result = {"step": step, **{f"eval/{k}": float(v) for k, v in eval_metrics.items()}}
    if step == trainer.total_steps:
      trainer.task.finalize(trainer, state, workdir)
      if config.eval.get("test_split"):
        result.update(_evaluate_test(trainer, checkpoints, state, config.eval.test_split, workdir))
        writer.write_scalars(step, {k: v for k, v in result.items() if k.startswith("test/")})
    trainer.task.close()
    writer.flush()  # the summaries in place before metrics.json says the run is done
    if jax.process_index() == 0:
      paths.write_text(workdir / checkpointing.METRICS_FILE, json.dumps(result, indent=2, sort_keys=True))
    checkpoints.close()
    return result
  finally:
    writer.close()  # waits for the queued scalars, puts the event file in place


def _evaluate_test(trainer: Trainer, checkpoints: checkpointing.Checkpoints, state: TrainState, split: str,
                   workdir: str) -> dict[str, Any]:
  """`test/...` metrics of the checkpoint selected on validation (`eval.best_metric`; the final state if no
  evaluation was saved as best), and `test_step`, the step of that checkpoint."""
  best = checkpoints.best_state(trainer.abstract_state)
  step, params = (best[0], best[1].params) if best else (int(jax.device_get(state.step)), state.params)
  metrics = trainer.evaluate(params, datasets.source(trainer.config.data, split))
  logging.info("Test split %r with the checkpoint of step %d (selected on %s).", split, step,
               trainer.config.eval.best_metric)
  if hasattr(trainer.task, "write_predictions"):  # generated sentences: predictions_<split>.jsonl
    trainer.task.write_predictions(workdir, f"predictions_{split}.jsonl")
  return {"test_step": step, **{f"test/{k}": float(v) for k, v in metrics.items()}}


def format_metrics(result: dict[str, Any]) -> str:
  """A readable table of the final evaluation (percentages)."""
  lines = [f"Validation after step {result['step']}:"]
  for key in sorted(k for k in result if k.startswith("eval/")):
    lines.append(f"  {key[5:]:<32s} {100 * result[key]:6.2f} %")
  if "test_step" in result:
    lines.append(f"Test, checkpoint of step {result['test_step']} (best on validation):")
    for key in sorted(k for k in result if k.startswith("test/")):
      lines.append(f"  {key[5:]:<32s} {100 * result[key]:6.2f} %")
  return "\n".join(lines)


def restore_state(trainer: Trainer, workdir: str, which: str = "best") -> TrainState:
  """The train state of `workdir`'s best (or latest) checkpoint, sharded as `trainer` wants it."""
  return checkpointing.restore(workdir, trainer.abstract_state, which)[1]
