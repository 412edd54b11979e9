"""Launches a config's hyperparameter sweep as XManager work units: one `anticipax.main` run per trial.

    python -m anticipax.launch --config=configs/demo.py --workdir_root=/tmp/anticipax_sweeps
    python -m anticipax.report /tmp/anticipax_sweeps/demo

A config file declares its sweeps beside `get_config`: functions returning one override dict per trial
(the big_vision / XManager convention), written out or built with `axis`, `product` and `zip_`:

    def sweep(arg=None):
      from anticipax.launch import axis, product
      return product(axis("schedule.peak_lr", [3e-4, 1e-3]), axis("seed", [0, 1]))  # 4 trials

`--sweep=NAME` calls `NAME(arg)` or `sweep_NAME(arg)` instead (`arg` is the `:arg` of `--config`). Trial
`i` runs `python -m anticipax.main --config=<file> --workdir=<root>/<experiment>/<i>_<slug> --config.k=v
...`; `--config.k=v` given to the launcher apply to every trial; `--trials=1,4` launches a subset.

Executors: `local` runs all trials at once as subprocesses of this machine's Python (no Docker), after
preparing each distinct `data` section once (`anticipax.prepare`: trials must not build one dataset
concurrently). `vertex` submits Vertex AI custom jobs running an image built from this source tree (or
`--image`, whose entrypoint runs `python -m anticipax.main`) on `--accelerator=a100 --num_accelerators=8`
(GPUs, `tpu_v2`, `tpu_v3`: what XManager maps); `--workdir_root=gs://b/...` is `/gcs/b/...` to the jobs.
`--dry_run` prints the work units and launches nothing, without XManager; a launch needs
`pip install 'anticipax[launch]'`. `<root>/<experiment>/sweep.json` lists the sweep for the report.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Mapping, Sequence

from absl import app
from absl import flags

MANIFEST = "sweep.json"
INSTALL_HINT = "pip install 'anticipax[launch]'"
EXECUTORS = ("local", "vertex")
_MAIN = ("-m", "anticipax.main")
_SOURCES = ("anticipax", "configs", "pyproject.toml", "README.md")  # what `pip install .` in an image needs
_BASE_IMAGE = "python:3.11-slim"
_MAX_SLUG = 60

Overrides = dict[str, Any]


# ------------------------------------------------------------------------------------------ sweep spec

def _key(key: str) -> str:
  if not isinstance(key, str) or not key.strip("."):
    raise ValueError(f"sweep: override keys are dotted config fields, got {key!r}")
  return key[len("config."):] if key.startswith("config.") else key


def _merge(parts: Sequence[Mapping[str, Any]]) -> Overrides:
  out = {}
  for part in parts:
    for key, value in part.items():
      key = _key(key)
      if key in out:
        raise ValueError(f"sweep: {key} is set twice in one trial ({out[key]!r} and {value!r})")
      out[key] = value
  return out


def axis(key: str, values: Sequence[Any]) -> list[Overrides]:
  """One trial per value of config field `key` (dotted, e.g. "schedule.peak_lr")."""
  return [{_key(key): v} for v in values]


def product(*axes: Sequence[Mapping[str, Any]]) -> list[Overrides]:
  """Every combination of one dict from each axis (the first axis varies slowest)."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zip_(*axes: Sequence[Mapping[str, Any]]) -> list[Overrides]:
  """The i-th dicts of all axes merged, for axes of one length (e.g. lr with its matching warmup)."""
  lengths = sorted({len(a) for a in axes})
  if len(lengths) > 1:
    raise ValueError(f"zip_: the axes have different lengths {lengths}")
  return [_merge(combo) for combo in zip(*axes)]


def _load_module(path: str):
  if not os.path.isfile(path):
    raise FileNotFoundError(f"--config: no file {path}")
  name = "_anticipax_sweep_" + re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_sweep(config: str, name: str = "") -> tuple[Any, list[Overrides]]:
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
  return config_dict, [_merge([t]) for t in trials]


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


# -------------------------------------------------------------------------------- trials -> work units

@dataclasses.dataclass(frozen=True)
class Trial:
  """One work unit: its id, directory name, overrides and `anticipax.main` arguments."""
  id: int
  name: str  # "<id>_<slug>", the trial's directory in the experiment
  overrides: dict[str, Any]
  workdir: str
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
  common = {_key(k): v for k, v in (common or {}).items()}
  short = _short_keys(sorted({k for overrides in sweep for k in overrides}))
  trials = []
  for i, overrides in enumerate(sweep, 1):
    overrides = _merge([overrides])
    clash = sorted(set(common) & set(overrides))
    if clash:
      raise ValueError(f"trial {i} sweeps {', '.join(clash)}, which is also set for every trial")
    slug = ",".join(f"{short[k]}={_slug_value(v)}" for k, v in overrides.items())[:_MAX_SLUG]
    name = f"{i}_{slug}" if slug else str(i)
    workdir = os.path.join(experiment_dir, name)
    args = (f"--config={config}", f"--workdir={workdir}",
            *(f"--config.{k}={tuple(v) if isinstance(v, list) else v}"
              for k, v in {**common, **overrides}.items()))
    trials.append(Trial(i, name, overrides, workdir, args))
  return trials


@dataclasses.dataclass(frozen=True)
class Target:
  """Where work units run: executor, accelerators (Vertex) and container image (Vertex)."""
  executor: str = "local"
  accelerator: str | None = None
  num_accelerators: int = 1
  image: str | None = None  # vertex: a prebuilt image; None builds one from the source tree

  def __post_init__(self):
    if self.executor not in EXECUTORS:
      raise ValueError(f"--executor: {self.executor!r} is not one of {', '.join(EXECUTORS)}")
    if self.executor == "local" and (self.accelerator or self.image):
      raise ValueError("--accelerator and --image apply to --executor=vertex (local trials use this machine)")
    accelerator = (self.accelerator or "").lower()
    if accelerator.startswith("tpu") and accelerator not in ("tpu_v2", "tpu_v3"):
      # xmanager.cloud.vertex maps only these (google-deepmind/xmanager#63).
      raise ValueError(f"--accelerator: XManager's Vertex executor knows tpu_v2 and tpu_v3, "
                       f"not {accelerator}")
    if self.num_accelerators < 1:
      raise ValueError(f"--num_accelerators: must be at least 1, got {self.num_accelerators}")

  def resources(self) -> dict[str, int]:
    """`xm.JobRequirements` keywords, e.g. {"a100": 8}; {} for CPU only."""
    return {self.accelerator.lower(): self.num_accelerators} if self.accelerator else {}

  def devices(self) -> str:
    if self.executor == "local":
      return "this machine's devices"
    return ", ".join(f"{k}={v}" for k, v in self.resources().items()) or "cpu"

  def describe(self) -> str:
    if self.executor == "local":
      return "this machine (local subprocesses)"
    return f"Vertex AI ({self.devices()}; image {self.image or 'built from ' + os.getcwd()})"


def check_requirements(target: Target) -> None:
  """Lets XManager (when installed) reject an unknown accelerator before anything is launched."""
  try:
    from xmanager import xm  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  try:
    xm.JobRequirements(**target.resources())
  except (KeyError, ValueError) as e:
    raise ValueError(f"--accelerator={target.accelerator}: {e}") from e


def command(trial: Trial, target: Target) -> list[str]:
  """The command line a work unit runs (the container's python on Vertex)."""
  python = sys.executable if target.executor == "local" else "python"
  return [python, *_MAIN, *trial.args]


def prepare_commands(config: str, trials: Sequence[Trial]) -> list[list[str]]:
  """`anticipax.prepare` once per distinct `data` section among `trials` (local launches)."""
  groups = dict.fromkeys(tuple(a for a in t.args if a.startswith("--config.data.")) for t in trials)
  return [[sys.executable, "-m", "anticipax.prepare", f"--config={config}", *g] for g in groups]


def describe(trials: Sequence[Trial], target: Target, experiment: str) -> list[str]:
  """The dry run's lines: each work unit's resources and command line."""
  lines = [f"Experiment {experiment}: {len(trials)} work unit(s) on {target.describe()}"]
  for t in trials:
    lines.append(f"[{t.id}] {t.name}  ({target.executor}: {target.devices()})")
    lines.append("  " + shlex.join(command(t, target)))
  return lines


# ------------------------------------------------------------------------------------------- XManager

def _xmanager():
  try:
    from xmanager import xm  # pylint: disable=g-import-not-at-top
    from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"launching work units needs XManager ({e}): {INSTALL_HINT} "
                      "(--dry_run works without it)") from e
  return xm, xm_local


def docker_instructions(target: Target, directory: str = "anticipax") -> list[str]:
  """Dockerfile steps of the image built for Vertex: the source tree pip-installed with a JAX for the
  accelerator (cuda12 keeps V100s supported)."""
  accelerator = (target.accelerator or "").lower()
  jax = "jax[tpu]" if accelerator.startswith("tpu") else "jax[cuda12]" if accelerator else "jax"
  return [
      "ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1",
      # XManager's entrypoint.sh waits for TPU endpoints with netcat.
      "RUN apt-get update && apt-get install -y --no-install-recommends netcat-openbsd "
      "&& rm -rf /var/lib/apt/lists/*",
      "WORKDIR /workdir",
      f"COPY {directory}/ /workdir",
      f'RUN python -m pip install --no-cache-dir . "{jax}"',
  ]


def stage_source(source_dir: str, staging_dir: str) -> str:
  """Copies what an image needs (package, configs, pyproject) to `<staging_dir>/anticipax`; returns it.
  Building from the checkout itself would send its virtualenv and data to Docker."""
  if not os.path.isfile(os.path.join(source_dir, "pyproject.toml")):
    raise FileNotFoundError(f"{os.path.abspath(source_dir)} is not the anticipax repository root "
                            "(no pyproject.toml): launch from there or pass --image")
  out = os.path.join(staging_dir, "anticipax")
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
  for name in _SOURCES:
    src = os.path.join(source_dir, name)
    if os.path.isdir(src):
      shutil.copytree(src, os.path.join(out, name), ignore=ignore)
    elif os.path.isfile(src):
      os.makedirs(out, exist_ok=True)
      shutil.copy2(src, os.path.join(out, name))
  return out


def add_work_units(experiment, trials: Sequence[Trial], target: Target, *, source_dir: str = ".") -> None:
  """Packages the executable once and adds one work unit per trial to an entered `xm.Experiment`."""
  xm, xm_local = _xmanager()
  with tempfile.TemporaryDirectory() as staging:
    if target.executor == "local":
      executor = xm_local.Local()
      packageable = xm.binary(xm_local.Local.Spec(), path=sys.executable, args=list(_MAIN))
    else:
      executor = xm_local.Vertex(requirements=xm.JobRequirements(**target.resources()))
      if target.image:
        packageable = xm.container(xm_local.Vertex.Spec(), image_path=target.image)
      else:
        packageable = xm.python_container(
            xm_local.Vertex.Spec(), entrypoint=xm.ModuleName("anticipax.main"),
            path=stage_source(source_dir, staging), base_image=_BASE_IMAGE,
            docker_instructions=docker_instructions(target))
    [executable] = experiment.package([packageable])
  for t in trials:
    experiment.add(xm.Job(executable, executor, name=t.name, args=list(t.args)))


def launch(trials: Sequence[Trial], target: Target, experiment_name: str, *, source_dir: str = ".") -> None:
  """Runs `trials` as an `xm_local` experiment; returns once local trials ended / Vertex jobs are queued."""
  _, xm_local = _xmanager()
  with xm_local.create_experiment(experiment_title=experiment_name) as experiment:
    add_work_units(experiment, trials, target, source_dir=source_dir)


def write_manifest(experiment_dir: str, config: str, sweep_name: str, trials: Sequence[Trial]) -> str:
  """Writes `<experiment_dir>/sweep.json` (every trial of the sweep), which `anticipax.report` reads."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  path = epath.Path(experiment_dir) / MANIFEST
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps({
      "config": config, "sweep": sweep_name,
      "trials": [{"id": t.id, "name": t.name, "overrides": t.overrides} for t in trials],
  }, indent=2, default=str))
  return str(path)


# ------------------------------------------------------------------------------------------------ CLI

def _gcs_paths(path: str) -> tuple[str, str]:
  """(as Vertex AI jobs see it through gcsfuse, as this machine does): (/gcs/b/p, gs://b/p)."""
  bucket_path = path.split("://", 1)[1] if path.startswith("gs://") else path[len("/gcs/"):]
  return f"/gcs/{bucket_path}", f"gs://{bucket_path}"


def _parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's parsing; `--config.k=v` overrides (as `anticipax.main` takes them) go on to `main`."""
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  return flags.FLAGS([a for a in argv if a not in overrides]) + overrides


def parse_common(argv: Sequence[str]) -> dict[str, str]:
  """`--config.k=v` arguments -> {"k": "v"} (values stay strings: the trials parse them)."""
  out = {}
  for arg in argv:
    match = re.fullmatch(r"--config\.([\w.]+)=(.*)", arg, re.DOTALL)
    if not match:
      raise app.UsageError(f"overrides are --config.key=value (one argument each), got {arg!r}")
    out[match[1]] = match[2]
  return out


def _default_name(config: str, sweep_name: str) -> str:
  path, _, arg = config.partition(":")
  parts = [os.path.splitext(os.path.basename(path))[0], arg, sweep_name]
  return re.sub(r"[^A-Za-z0-9._+-]", "-", "-".join(p for p in parts if p))


def _define_flags() -> None:
  """Only when run as a program: configs may import this module for `axis`/`product`/`zip_`."""
  flags.DEFINE_string("config", None, "Config file with a sweep function: configs/x.py[:arg].")
  flags.DEFINE_string("sweep", "", "Sweep function: '' -> sweep(), NAME -> NAME() or sweep_NAME().")
  flags.DEFINE_string("workdir_root", None, "Trials run in <workdir_root>/<experiment>/<id>_<slug>.")
  flags.DEFINE_string("experiment_name", None, "Default: the config's name (+ :arg, + sweep name).")
  flags.DEFINE_enum("executor", "local", EXECUTORS, "Where the work units run.")
  flags.DEFINE_bool("dry_run", False, "Print the work units; launch nothing.")
  flags.DEFINE_string("accelerator", None, "Vertex: an xm.ResourceType, e.g. v100, a100, h100, tpu_v3.")
  flags.DEFINE_integer("num_accelerators", 1, "Vertex: accelerators per trial.")
  flags.DEFINE_string("image", None, "Vertex: a prebuilt image whose entrypoint runs anticipax.main.")
  flags.DEFINE_list("trials", [], "Launch only these trial ids (e.g. 1,4); default all.")
  flags.DEFINE_bool("prepare", True, "Local: prepare each distinct dataset once before the trials start.")
  flags.mark_flags_as_required(["config", "workdir_root"])


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a launch command asks for, checked against the config."""
  name: str  # the experiment
  experiment_dir: str  # as this machine sees it (gs:// for Vertex)
  config: str  # the --config the trials get
  trials: list[Trial]  # the whole sweep (sweep.json)
  selected: list[Trial]  # the ones to launch (--trials)
  target: Target


def _plan(f, argv: Sequence[str]) -> Plan:
  common = parse_common(argv)
  target = Target(f.executor, f.accelerator, f.num_accelerators, f.image)
  check_requirements(target)
  config_dict, sweep = load_sweep(f.config, f.sweep)
  check_overrides(config_dict, common, check_types=False)
  for i, overrides in enumerate(sweep, 1):
    try:
      check_overrides(config_dict, overrides)
    except ValueError as e:
      raise ValueError(f"trial {i}: {e}") from e
  name = f.experiment_name or _default_name(f.config, f.sweep)
  experiment_dir = os.path.join(f.workdir_root, name)
  config = f.config
  if target.executor == "vertex":
    if not experiment_dir.startswith(("gs://", "/gcs/")):
      raise ValueError("--executor=vertex: --workdir_root must be on Cloud Storage (gs://bucket/...)")
    path, sep, arg = config.partition(":")
    config = os.path.relpath(path) + sep + arg  # the image holds the tree rooted at the current dir
    if config.startswith(".."):
      raise ValueError(f"--config: {path} is outside {os.getcwd()}, the tree the image is built from")
    job_dir, experiment_dir = _gcs_paths(experiment_dir)
  else:
    job_dir = experiment_dir = os.path.abspath(experiment_dir)
  trials = make_trials(config, sweep, experiment_dir=job_dir, common=common)
  unknown = sorted(set(f.trials) - {str(t.id) for t in trials})
  if unknown:
    raise ValueError(f"--trials: no trial {', '.join(unknown)} (the sweep has 1..{len(trials)})")
  selected = [t for t in trials if not f.trials or str(t.id) in f.trials]
  return Plan(name, experiment_dir, config, trials, selected, target)


def main(argv):
  f = flags.FLAGS
  try:
    plan = _plan(f, argv[1:])
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e
  target, selected = plan.target, plan.selected
  prepare = prepare_commands(plan.config, selected) if target.executor == "local" and f.prepare else []
  if f.dry_run:
    print("\n".join(describe(selected, target, plan.name)))
    print("".join(f"prepare: {shlex.join(cmd)}\n" for cmd in prepare), end="")
    return
  try:
    _xmanager()  # before anything is written or run
  except ImportError as e:
    sys.exit(f"anticipax.launch: {e}")
  manifest = write_manifest(plan.experiment_dir, plan.config, f.sweep, plan.trials)
  print(f"Experiment {plan.name}: {len(selected)} work unit(s) on {target.describe()}; sweep in {manifest}")
  for cmd in prepare:
    if subprocess.run(cmd, check=False).returncode:
      sys.exit(f"anticipax.launch: preparing the data failed: {shlex.join(cmd)}")
  try:
    launch(selected, target, plan.name)
  except Exception as e:  # pylint: disable=broad-except
    # A failed local trial ends the experiment (XManager stops the others).
    unfinished = [t.name for t in selected if target.executor == "local"
                  and not os.path.isfile(os.path.join(t.workdir, "metrics.json"))]
    sys.exit(f"anticipax.launch: {type(e).__name__}: {e}" + (
        f"\nNo metrics.json (output above, prefixed with the trial's name): {', '.join(unfinished)}"
        if unfinished else ""))
  print(f"Results: python -m anticipax.report {plan.experiment_dir}")


if __name__ == "__main__":
  _define_flags()
  try:
    import xmanager.xm_local  # pylint: disable=g-import-not-at-top,unused-import  # its --xm_* flags
  except ImportError:
    pass
  app.run(main, flags_parser=_parse_flags)
