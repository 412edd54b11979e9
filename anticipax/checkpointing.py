"""Checkpoints of a run's workdir: save, resume (falling back past a damaged checkpoint), workdir safety.

`<workdir>/checkpoints/<step>/` holds the train state and the data iterator's position, `<workdir>/best/`
the state with the best evaluation metric, `<workdir>/config.json` the config the run was started with.
This module is the one place that knows that layout (`directory`, `CONFIG_FILE`); a workdir may be local
or in a bucket (`gs://...`, see `paths.py`).
"""

from __future__ import annotations

import json
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from anticipax import paths

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
_DIRS = {"latest": "checkpoints", "best": "best"}

# Fields that steer a run but not what it computes: they may change between invocations of one run.
RUN_CONTROL = ("train.max_steps_per_run", "train.log_every", "train.eval_every", "train.checkpoint_every",
               "train.keep_checkpoints", "train.async_checkpointing", "train.profile_steps",
               "train.profile_first_step", "data.num_threads", "data.tfds_data_dir", "data.manual_dir",
               "data.frames_dir",
               "eval.batch_size", "eval.test_split")


class CheckpointError(Exception):
  """A checkpoint that cannot serve this run (incompatible config, nothing restorable)."""


def directory(workdir: paths.PathLike, which: str = "latest"):
  """The folder of a run's `latest` (every kept step) or `best` (one step) checkpoints."""
  return paths.path(workdir) / _DIRS[which]


def stored_config(workdir: paths.PathLike) -> dict | None:
  """The config a run in `workdir` was started with (its `config.json`), or None if there is none."""
  path = paths.path(workdir) / CONFIG_FILE
  return json.loads(path.read_text()) if path.exists() else None


def latest_step(workdir: paths.PathLike, which: str = "latest") -> int | None:
  """The newest saved step in `workdir` (without opening a checkpoint manager), or None."""
  folder = directory(workdir, which)
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(steps) if steps else None


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  """A nested dict (e.g. a config's JSON) as {"a.b.c": value}."""
  if isinstance(d, dict):
    out = {}
    for k, v in d.items():
      out.update(flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: d}


def config_differences(stored: dict, config) -> list[str]:
  """Fields (dotted) whose values differ between a stored config.json and `config`, run control aside."""
  old, new = flatten(stored), flatten(json.loads(config.to_json_best_effort()))
  return sorted(k for k in set(old) | set(new)
                if old.get(k) != new.get(k) and k not in RUN_CONTROL)


def _path_key(path) -> tuple[str, ...]:
  out = []
  for k in path:
    for attr in ("key", "name", "idx"):
      if hasattr(k, attr):
        out.append(str(getattr(k, attr)))
        break
  return tuple(out)


def shape_mismatches(metadata, abstract_state) -> list[str]:
  """'path: checkpoint shape vs model shape' for every array that differs (or exists on one side only)."""
  saved = {_path_key(p): tuple(getattr(m, "shape", ()))
           for p, m in jax.tree_util.tree_flatten_with_path(metadata)[0]}
  wanted = {_path_key(p): tuple(x.shape) for p, x in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
  problems = []
  for key in sorted(set(saved) | set(wanted)):
    name = "/".join(key)
    if key not in saved:
      problems.append(f"{name}: missing from the checkpoint (model {wanted[key]})")
    elif key not in wanted:
      problems.append(f"{name}: in the checkpoint {saved[key]}, not in the model")
    elif saved[key] != wanted[key]:
      problems.append(f"{name}: checkpoint {saved[key]} vs model {wanted[key]}")
  return problems


def restore(workdir: paths.PathLike, abstract_state, which: str = "best") -> tuple[int, Any]:
  """(step, state) of `workdir`'s `best` (or newest `latest`) checkpoint, laid out as `abstract_state`."""
  folder = directory(workdir, which)
  with ocp.CheckpointManager(folder, item_names=("state", "data")) as mngr:
    step = mngr.latest_step()  # best/ keeps exactly one
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {folder}")
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
  logging.info("Restored %s checkpoint of step %d from %s.", which, step, folder)
  return step, restored.state


class Checkpoints:
  """The run's checkpoint managers (latest + best) and its workdir bookkeeping."""

  def __init__(self, workdir: paths.PathLike, config, *, overwrite: bool = False):
    self.workdir = workdir = paths.path(workdir)
    stored = stored_config(workdir) if latest_step(workdir) is not None else None
    if stored is not None:
      differences = config_differences(stored, config)
      if differences and not overwrite:
        raise CheckpointError(
            f"{workdir} holds a run with another config (differs in {', '.join(differences[:8])}"
            f"{', ...' if len(differences) > 8 else ''}); use another --workdir, or --overwrite to start afresh")
    if overwrite and jax.process_index() == 0:
      for name in (*_DIRS.values(), METRICS_FILE):
        paths.remove_tree(workdir / name)
    if jax.process_index() == 0:
      paths.write_text(workdir / CONFIG_FILE, config.to_json_best_effort(indent=2))
    handlers = {"state": ocp.StandardCheckpointHandler(), "data": ocp.JsonCheckpointHandler()}
    self.latest = ocp.CheckpointManager(
        directory(workdir, "latest"), item_names=("state", "data"), item_handlers=handlers,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=config.train.get("keep_checkpoints", 2), create=True,
            enable_async_checkpointing=config.train.get("async_checkpointing", True)))
    best_metric = config.eval.best_metric
    self.best = ocp.CheckpointManager(
        directory(workdir, "best"), item_names=("state",),
        item_handlers={"state": ocp.StandardCheckpointHandler()},
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=lambda m: m[best_metric],
                                             best_mode="max", enable_async_checkpointing=False))

  def restore(self, abstract_state) -> tuple[Any, dict] | None:
    """(state, data-iterator state) of the newest checkpoint that restores, or None for a fresh run.

    A checkpoint that fails to read (truncated, corrupted) is skipped with a warning in favour of the one
    before it; one whose arrays do not fit the model stops the run with the mismatches listed.
    """
    steps = sorted(self.latest.all_steps(), reverse=True)
    for i, step in enumerate(steps):
      try:
        metadata = self.latest.item_metadata(step)["state"]
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("Checkpoint %d in %s is unreadable (%s); trying an older one.", step,
                        self.latest.directory, e)
        continue
      problems = shape_mismatches(metadata, abstract_state)
      if problems:
        # The optimizer state mirrors the parameters: list those, and the rest only if nothing else differs.
        shown = [p for p in problems if p.startswith("params/")] or problems
        more = f"\n  ... and {len(shown) - 24} more" if len(shown) > 24 else ""
        raise CheckpointError(f"checkpoint {step} in {self.latest.directory} does not fit this config's "
                              "model:\n  " + "\n  ".join(shown[:24]) + more)
      try:
        restored = self.latest.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except
        logging.warning("Checkpoint %d in %s failed to restore (%s); trying an older one.", step,
                        self.latest.directory, e)
        continue
      for damaged in steps[:i]:  # so that this run can save those steps again
        self.latest.delete(damaged)
      logging.info("Resumed from %s at step %d.", self.latest.directory, step)
      return restored.state, restored.data
    if steps:
      raise CheckpointError(f"no checkpoint in {self.latest.directory} could be restored (tried {steps})")
    return None

  def best_state(self, abstract_state) -> tuple[int, Any] | None:
    """(step, state) of the checkpoint selected on `eval.best_metric`, or None if none was saved."""
    self.best.wait_until_finished()
    step = self.best.best_step()
    if step is None:
      return None
    restored = self.best.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))
    return step, restored.state

  def save(self, step: int, state, data_state: dict, eval_metrics: dict | None = None) -> None:
    self.latest.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                   data=ocp.args.JsonSave(data_state)), force=True)
    if eval_metrics is not None:
      self.best.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)),
                     metrics=eval_metrics, force=True)

  def close(self) -> None:
    self.latest.wait_until_finished()
    self.latest.close()
    self.best.close()
