"""`python -m anticipax.launch`: a config's sweep as work units, on this machine or on Vertex AI.

    python -m anticipax.launch --config=configs/demo.py --workdir_root=/tmp/anticipax_sweeps
    python -m anticipax.launch --config=configs/demo.py --workdir_root=gs://BUCKET/sweeps \
        --executor=vertex --accelerator=a100 --num_accelerators=8 --dry_run
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from absl import app
from absl import flags

from anticipax import paths
from anticipax.launch import devices as devices_lib
from anticipax.launch import local
from anticipax.launch import trials as trials_lib
from anticipax.launch import vertex

EXECUTORS = ("local", "vertex")
_VERTEX_ONLY = ("accelerator", "image", "image_repository", "service_account")


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
  """Only when run as a program."""
  flags.DEFINE_string("config", None, "Config file with a sweep function: configs/x.py[:arg].")
  flags.DEFINE_string("sweep", "", "Sweep function: '' -> sweep(), NAME -> NAME() or sweep_NAME().")
  flags.DEFINE_string("workdir_root", None, "Trials run in <workdir_root>/<experiment>/<id>_<slug>.")
  flags.DEFINE_string("experiment_name", None, "Default: the config's name (+ :arg, + sweep name).")
  flags.DEFINE_enum("executor", "local", EXECUTORS, "Where the work units run.")
  flags.DEFINE_bool("dry_run", False, "Print the work units (and Vertex job specs); launch nothing.")
  flags.DEFINE_list("trials", [], "Launch only these trial ids (e.g. 1,4); default all.")
  flags.DEFINE_integer("parallel", 0, "Local: trials at a time, each on its own 1/N of the GPUs or TPU "
                       "chips; 0: one at a time on accelerators, all at once on a CPU-only machine.")
  flags.DEFINE_bool("prepare", True, "Local: prepare each distinct dataset once before the trials start.")
  flags.DEFINE_string("accelerator", None, "Vertex: an xm.ResourceType name: a100, a100_80gib, h100, "
                      "v100, t4, p100, p4, tpu_v2, tpu_v3, tpu_v5e, tpu_v6e.")
  flags.DEFINE_integer("num_accelerators", 1, "Vertex: GPUs, TPU chips (v5e, v6e) or cores (v2, v3: 8).")
  flags.DEFINE_string("image", None, "Vertex: a prebuilt image whose entrypoint runs anticipax.main.")
  flags.DEFINE_string("image_repository", None, "Vertex: where the image built from this tree is pushed, "
                      "e.g. us-central1-docker.pkg.dev/PROJECT/anticipax; default gcr.io/PROJECT.")
  flags.DEFINE_string("region", vertex.DEFAULT_REGION, "Vertex: the region the jobs run in.")
  flags.DEFINE_string("service_account", None, "Vertex CustomJob route: the service account jobs run as "
                      "(default: Vertex AI's custom code service agent).")
  flags.mark_flags_as_required(["config", "workdir_root"])


@dataclasses.dataclass(frozen=True)
class Plan:
  """What a launch command asks for, checked against the config and the machines."""
  name: str  # the experiment
  experiment_dir: str  # as this machine sees it (gs:// for Vertex)
  config: str  # the --config the trials get
  trials: list[trials_lib.Trial]  # the whole sweep (sweep.json)
  selected: list[trials_lib.Trial]  # the ones to launch (--trials)
  executor: str
  target: vertex.VertexTarget | None = None  # vertex
  devices: devices_lib.Devices | None = None  # local
  slots: list[devices_lib.Slot] | None = None  # local


def plan(f, argv: Sequence[str], *,
         discover: Callable[[], devices_lib.Devices] = devices_lib.discover) -> Plan:
  """Checks the flags, the sweep and the machine; raises ValueError naming what is wrong."""
  common = parse_common(argv)
  if f.executor == "local":
    given = [n for n in _VERTEX_ONLY if getattr(f, n)]
    if given:
      raise ValueError(f"{', '.join('--' + n for n in given)} appl{'ies' if len(given) == 1 else 'y'} to "
                       "--executor=vertex (local trials use this machine)")
  elif f.parallel:
    raise ValueError("--parallel applies to --executor=local (each Vertex work unit is its own job)")
  config_dict, sweep = trials_lib.load_sweep(f.config, f.sweep)
  trials_lib.check_overrides(config_dict, common, check_types=False)
  for i, overrides in enumerate(sweep, 1):
    try:
      trials_lib.check_overrides(config_dict, overrides)
    except ValueError as e:
      raise ValueError(f"trial {i}: {e}") from e
  name = f.experiment_name or _default_name(f.config, f.sweep)
  experiment_dir = f"{f.workdir_root.rstrip('/')}/{name}"
  config = f.config
  target = devices = slots = None
  if f.executor == "vertex":
    target = vertex.VertexTarget(f.accelerator, f.num_accelerators, f.image, f.image_repository, f.region,
                                 f.service_account)
    vertex.check_with_xmanager(target)
    path, sep, arg = config.partition(":")
    config = os.path.relpath(path) + sep + arg  # the image holds the tree rooted at the current dir
    if config.startswith(".."):
      raise ValueError(f"--config: {path} is outside {os.getcwd()}, the tree the image is built from")
    job_dir, experiment_dir = vertex.gcs_paths(experiment_dir)
  else:
    job_dir = experiment_dir = str(paths.path(experiment_dir))
  trials = trials_lib.make_trials(config, sweep, experiment_dir=job_dir, common=common)
  unknown = sorted(set(f.trials) - {str(t.id) for t in trials})
  if unknown:
    raise ValueError(f"--trials: no trial {', '.join(unknown)} (the sweep has 1..{len(trials)})")
  selected = [t for t in trials if not f.trials or str(t.id) in f.trials]
  if f.executor == "local":
    devices = discover()
    parallel = f.parallel or (1 if devices.platform != "cpu" else len(selected))
    slots = devices_lib.slots(devices, parallel)
  return Plan(name, experiment_dir, config, trials, selected, f.executor, target, devices, slots)


def prepare_commands(config: str, trials: Sequence[trials_lib.Trial]) -> list[list[str]]:
  """`anticipax.prepare` once per distinct `data` section among `trials` (local launches)."""
  groups = dict.fromkeys(tuple(a for a in t.args if a.startswith("--config.data.")) for t in trials)
  return [[sys.executable, "-m", "anticipax.prepare", f"--config={config}", *g] for g in groups]


def describe_local(p: Plan) -> list[str]:
  """The dry run's lines for this machine: devices, slots, each trial's command line."""
  lines = [f"Experiment {p.name}: {len(p.selected)} work unit(s) on this machine (local subprocesses), "
           f"{len(p.slots)} at a time; {p.devices.describe()}"]
  lines += [f"  {s.describe()}: " + " ".join(f"{k}={v}" for k, v in s.env.items())
            for s in p.slots if s.env]
  for t in p.selected:
    lines.append(f"[{t.id}] {t.name}")
    lines.append("  " + shlex.join(local.trial_command(t)))
  return lines


def _run_local(p: Plan, prepare: Sequence[Sequence[str]]) -> None:
  for cmd in prepare:
    if subprocess.run(cmd, check=False).returncode:
      sys.exit(f"anticipax.launch: preparing the data failed: {shlex.join(cmd)}")
  outcomes = local.run(p.selected, p.slots)
  print("\n".join(local.summary(outcomes)))
  print(f"Results: python -m anticipax.report {p.experiment_dir}")
  failed = [o for o in outcomes if o.returncode]
  if failed:
    sys.exit(f"anticipax.launch: {len(failed)} trial(s) failed: {', '.join(o.trial.name for o in failed)}")


def main(argv):
  f = flags.FLAGS
  try:
    p = plan(f, argv[1:])
  except (ValueError, FileNotFoundError) as e:
    raise app.UsageError(str(e)) from e
  prepare = prepare_commands(p.config, p.selected) if p.executor == "local" and f.prepare else []
  if f.dry_run:
    lines = describe_local(p) if p.executor == "local" else vertex.describe(p.selected, p.target, p.name)
    print("\n".join(lines))
    print("".join(f"prepare: {shlex.join(cmd)}\n" for cmd in prepare), end="")
    return
  if p.executor == "vertex" and vertex.needs_xmanager(p.target):
    try:
      vertex.xmanager_modules()  # before anything is written
    except ImportError as e:
      sys.exit(f"anticipax.launch: {e}")
  manifest = trials_lib.write_manifest(p.experiment_dir, p.config, f.sweep, p.trials)
  print(f"Experiment {p.name}: {len(p.selected)} work unit(s); sweep in {manifest}")
  if p.executor == "local":
    _run_local(p, prepare)
    return
  try:
    vertex.launch(p.selected, p.target, p.name, experiment_dir=p.experiment_dir)
  except Exception as e:  # pylint: disable=broad-except
    sys.exit(f"anticipax.launch: {type(e).__name__}: {e}")
  print(f"Results, once the jobs end: python -m anticipax.report {p.experiment_dir}")


if __name__ == "__main__":
  _define_flags()
  try:
    import xmanager.xm_local  # pylint: disable=g-import-not-at-top,unused-import  # its --xm_* flags
  except ImportError:
    pass
  app.run(main, flags_parser=_parse_flags)
