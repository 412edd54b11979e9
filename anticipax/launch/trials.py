"""A config's sweep -> checked trials -> work units' arguments and workdirs, and the sweep manifest."""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import os
import re
from typing import Any, Mapping, Sequence


from anticipax import paths
from anticipax import sweeps

MANIFEST = "sweep.json"  # <experiment>/sweep.json: every trial of the sweep, read by anticipax.report
_MAX_SLUG = 60


def _load_module(path: str):
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--config: no file {path}")
  name = "_anticipax_sweep_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(config: str, name: str = "") -> tuple[Any, list[sweeps.Overrides]]:
  """Loads `config` ("file.py" or "file.py:arg") and calls its sweep function.

  Args:
    config: the config file, with the optional argument of its `get_config` and sweep functions.
    name: "" for `sweep`, else the function `name` or `sweep_<name>`.

  Returns:
    `get_config(arg)` and the sweep's override dicts (keys normalised to "a.b", no "config." prefix).
  """
  path, _, arg = config.partition(":")
  module = _load_module(path)
  candidates = [name, f"sweep_{name}"] if name else ["sweep"]
  fn = next((getattr(module, c) for c in candidates if callable(getattr(module, c, None))), None)
  if fn is None:
    found = sorted(n for n, v in vars(module).items() if n.startswith("sweep") and callable(v))
    raise ValueError(f"{path} has no sweep function {' or '.join(c + '()' for c in candidates)}; "
                     f"it has: {', '.join(found) or 'none'}")
  trials = fn(arg or None) if inspect.signature(fn).parameters else fn()
  if not isinstance(trials, (list, tuple)) or not all(isinstance(t, Mapping) for t in trials):
    raise ValueError(f"{path}: {fn.__name__}() must return a list of override dicts, got {trials!r}")
  if not trials:
    raise ValueError(f"{path}: {fn.__name__}() returned no trials")
  config_dict = module.get_config(arg) if arg else module.get_config()
  return config_dict, [sweeps.merge([t]) for t in trials]


def check_overrides(config, overrides: Mapping[str, Any], *, check_types: bool = True) -> None:
  """Raises ValueError naming the key if an override is no field of `config` or (optionally) has the wrong
  type, so that a typo fails here rather than in every launched trial."""
  probe = config.copy_and_resolve_references() if check_types else config
  for key, value in overrides.items():
    node = probe
    *parents, leaf = key.split(".")
    for i, part in enumerate(parents):
      if not hasattr(node, "keys") or part not in node:
        raise ValueError(f"override {key}: the config has no section {'.'.join(parents[:i + 1])}")
      node = node[part]
    if not hasattr(node, "keys") or leaf not in node:
      raise ValueError(f"override {key}: the config has no such field")
    if check_types:
      try:
        node[leaf] = value
      except (TypeError, ValueError) as e:
        raise ValueError(f"override {key}={value!r}: {e}") from e


@dataclasses.dataclass(frozen=True)
class Trial:
  """One work unit: its id, directory name, overrides and `anticipax.main` arguments."""
  id: int
  name: str  # "<id>_<slug>", the trial's directory in the experiment
  overrides: dict[str, Any]
  workdir: str  # as the work unit sees it (/gcs/... on Vertex)
  args: tuple[str, ...]


def _slug_value(value: Any) -> str:
  if isinstance(value, float):
    text = f"{value:g}"
  elif isinstance(value, (list, tuple)):
    text = "-".join(map(str, value))
  else:
    text = str(value)
  return re.sub(r"[^A-Za-z0-9._+-]", "-", text)


def _short_keys(keys: Sequence[str]) -> dict[str, str]:
  """Each dotted key's shortest tail that no other key ends with (schedule.peak_lr -> peak_lr)."""
  out = {}
  for key in keys:
    parts = key.split(".")
    for n in range(1, len(parts) + 1):
      tail = ".".join(parts[-n:])
      if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
        break
    out[key] = tail
  return out


def make_trials(config: str, sweep: Sequence[Mapping[str, Any]], *, experiment_dir: str,
                common: Mapping[str, Any] | None = None) -> list[Trial]:
  """The work units of a sweep (pure: no file is read or written).

  Args:
    config: the `--config` value the trials get ("configs/x.py" or "configs/x.py:arg").
    sweep: one override dict per trial (dotted keys).
    experiment_dir: the directory holding the trials' workdirs, as the trials see it.
    common: overrides every trial gets (before its own); a key may not be in both.

  Returns:
    Trials numbered from 1, in sweep order.
  """
  common = {sweeps.key(k): v for k, v in (common or {}).items()}
  short = _short_keys(sorted({k for overrides in sweep for k in overrides}))
  trials = []
  for i, overrides in enumerate(sweep, 1):
    overrides = sweeps.merge([overrides])
    clash = sorted(set(common) & set(overrides))
    if clash:
      raise ValueError(f"trial {i} sweeps {', '.join(clash)}, which is also set for every trial")
    slug = ",".join(f"{short[k]}={_slug_value(v)}" for k, v in overrides.items())[:_MAX_SLUG]
    name = f"{i}_{slug}" if slug else str(i)
    workdir = os.fspath(paths.path(experiment_dir) / name)
    args = (f"--config={config}", f"--workdir={workdir}",
            *(f"--config.{k}={tuple(v) if isinstance(v, list) else v}"
              for k, v in {**common, **overrides}.items()))
    trials.append(Trial(i, name, overrides, workdir, args))
  return trials


def write_manifest(experiment_dir: str, config: str, sweep_name: str, trials: Sequence[Trial]) -> str:
  """Writes `<experiment_dir>/sweep.json` (every trial of the sweep), which `anticipax.report` reads."""
  path = paths.path(experiment_dir) / MANIFEST
  paths.write_text(path, json.dumps({
      "config": config, "sweep": sweep_name,
      "trials": [{"id": t.id, "name": t.name, "overrides": t.overrides} for t in trials],
  }, indent=2, default=str))
  return os.fspath(path)
