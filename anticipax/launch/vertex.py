"""Vertex AI work units: a machine Vertex accepts, the image, and one custom job per trial.

Two routes submit the same request. Machines that XManager's Vertex executor requests exactly (A100 40GB
on a2-highgpu, V100/T4/P100/P4 on N1, TPU v2/v3 on cloud-tpu) go through XManager, which also builds and
pushes the image. The others (A100 80GB, H100, TPU v5e, v6e), which XManager would attach to an
n1-standard-4 or cannot express, go as google-cloud-aiplatform CustomJobs with the worker pool of
`machines.py`; the image is `--image`, or built and pushed by XManager first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import tempfile
import time
import types
from typing import Any, Sequence

from anticipax.launch import machines
from anticipax.launch import trials as trials_lib

INSTALL_HINT = "pip install 'anticipax[launch]'"
DEFAULT_REGION = "us-central1"  # XManager's Vertex client default
_MAIN = ("-m", "anticipax.main")
_SOURCES = ("anticipax", "configs", "pyproject.toml", "README.md")  # what `pip install .` in an image needs
_BASE_IMAGE = "python:3.11-slim"


def machine_for(accelerator: str | None, count: int) -> machines.Machine:
  """The Vertex machine for `count` x `accelerator` (an `xm.ResourceType` name), or one ValueError
  naming the counts that exist."""
  if not accelerator:
    return machines.CPU_ONLY
  accelerator = accelerator.lower()
  table = machines.MACHINES.get(accelerator)
  if table is None:
    raise ValueError(f"--accelerator={accelerator}: no Vertex AI machine known for it; known: "
                     f"{', '.join(machines.MACHINES)} (anticipax/launch/machines.py)")
  if count not in table:
    offers = ", ".join(f"{n} ({m.machine_type}{' ' + m.accelerator_type if m.accelerator_type else ''}"
                       f"{' ' + m.tpu_topology if m.tpu_topology else ''})" for n, m in table.items())
    raise ValueError(f"--accelerator={accelerator} --num_accelerators={count}: Vertex AI has no such "
                     f"machine; it offers {accelerator} as {offers}: pass --num_accelerators="
                     f"{' or '.join(map(str, table))}")
  return table[count]


@dataclasses.dataclass(frozen=True)
class VertexTarget:
  """What every work unit of a Vertex launch asks for."""
  accelerator: str | None = None
  num_accelerators: int = 1
  image: str | None = None  # a prebuilt image whose entrypoint runs anticipax.main; None: built here
  image_repository: str | None = None  # where a built image is pushed; None: XManager's gcr.io/<project>
  region: str = DEFAULT_REGION
  service_account: str | None = None  # CustomJob route; None: Vertex AI's default service agent

  def __post_init__(self):
    machine_for(self.accelerator, self.num_accelerators)  # refuse before anything else happens

  @property
  def machine(self) -> machines.Machine:
    return machine_for(self.accelerator, self.num_accelerators)

  @property
  def route(self) -> str:
    return "xmanager" if self.machine.xmanager else "aiplatform"

  @property
  def platform(self) -> str:
    accelerator = (self.accelerator or "").lower()
    return "tpu" if accelerator.startswith("tpu") else "gpu" if accelerator else "cpu"

  def resources(self) -> dict[str, float]:
    """`xm.JobRequirements` keywords that make XManager request `self.machine`."""
    machine = self.machine
    out: dict[str, float] = {self.accelerator.lower(): self.num_accelerators} if self.accelerator else {}
    if machine.vcpus:
      out.update(cpu=machine.vcpus, ram=machine.ram_gib * 2**30)
    return out

  def image_name(self) -> str:
    if self.image:
      return self.image
    repository = self.image_repository or "gcr.io/<project>"
    return f"<built at launch from {os.getcwd()}: {repository}/anticipax:<tag>>"


def gcs_paths(path: str) -> tuple[str, str]:
  """(as Vertex AI jobs see it through Cloud Storage FUSE, as this machine does): (/gcs/b/p, gs://b/p)."""
  if not path.startswith(("gs://", "/gcs/")):
    raise ValueError("--executor=vertex: --workdir_root must be on Cloud Storage (gs://bucket/...)")
  bucket_path = path.split("://", 1)[1] if path.startswith("gs://") else path[len("/gcs/"):]
  return f"/gcs/{bucket_path}", f"gs://{bucket_path}"


def job_spec(trial: trials_lib.Trial, target: VertexTarget, experiment: str,
             image: str | None = None) -> dict[str, Any]:
  """The custom job of one work unit, as google-cloud-aiplatform's `CustomJob` takes it (XManager sends
  the same worker pool, under a display name of its own)."""
  spec: dict[str, Any] = {"route": target.route, "region": target.region}
  if target.route == "aiplatform":
    spec["display_name"] = f"{experiment}_{trial.name}"
  spec["worker_pool_specs"] = [{
      "machine_spec": target.machine.spec(), "replica_count": 1,
      "container_spec": {"image_uri": image or target.image_name(), "args": list(trial.args)}}]
  return spec


def describe(trials: Sequence[trials_lib.Trial], target: VertexTarget, experiment: str) -> list[str]:
  """The dry run's lines: the machine, then per work unit what its container runs and its job as JSON."""
  m = target.machine
  accelerators = f"{target.accelerator} x{target.num_accelerators}" if target.accelerator else "no GPU/TPU"
  via = "XManager's Vertex executor" if target.route == "xmanager" else "google-cloud-aiplatform CustomJob"
  lines = [f"Experiment {experiment}: {len(trials)} work unit(s) on Vertex AI in {target.region}: "
           f"{accelerators} -> {m.machine_type}, submitted through {via}"]
  if m.note:
    lines.append(f"Note: {m.note}")
  for t in trials:
    lines.append(f"[{t.id}] {t.name}")
    lines.append("  runs: " + shlex.join(["python", *_MAIN, *t.args]))
    lines.append("  job: " + json.dumps(job_spec(t, target, experiment)))
  return lines


def xmanager_machine_spec(target: VertexTarget) -> dict[str, Any]:
  """What XManager's Vertex executor would request for `target` (`get_machine_spec`); needs XManager."""
  from xmanager import xm  # pylint: disable=g-import-not-at-top
  from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  from xmanager.cloud import vertex  # pylint: disable=g-import-not-at-top
  executor = xm_local.Vertex(requirements=xm.JobRequirements(**target.resources()))
  job = types.SimpleNamespace(executor=executor)  # get_machine_spec reads only the executor
  return {k: getattr(v, "name", v) for k, v in vertex.get_machine_spec(job).items()}


def check_with_xmanager(target: VertexTarget) -> None:
  """Raises ValueError if XManager (when installed) would request another machine than `target.machine`
  on the XManager route: a newer XManager's mapping must not silently change what is submitted."""
  if target.route != "xmanager":
    return
  try:
    theirs = xmanager_machine_spec(target)
  except ImportError:
    return
  if theirs != target.machine.spec():
    raise ValueError(f"XManager would request {theirs} for {target.accelerator} x{target.num_accelerators}, "
                     f"not {target.machine.spec()} (anticipax/launch/machines.py)")


# ------------------------------------------------------------------------------------------- launching

def xmanager_modules():
  try:
    from xmanager import xm  # pylint: disable=g-import-not-at-top
    from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"building the image and the XManager route need XManager ({e}): {INSTALL_HINT} "
                      "(--dry_run works without it; --image with a TPU v5e/v6e, A100 80GB or H100 "
                      "machine needs only google-cloud-aiplatform)") from e
  return xm, xm_local


def needs_xmanager(target: VertexTarget) -> bool:
  return target.route == "xmanager" or not target.image


def docker_instructions(target: VertexTarget, directory: str = "anticipax") -> list[str]:
  """Dockerfile steps of the image built for Vertex: the source tree pip-installed with a JAX for the
  accelerator (cuda12 keeps V100s supported)."""
  jax = {"tpu": "jax[tpu]", "gpu": "jax[cuda12]", "cpu": "jax"}[target.platform]
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


def package(experiment, target: VertexTarget, *, source_dir: str = "."):
  """The executable of every work unit: `--image`, or an image built from the source tree and pushed."""
  xm, xm_local = xmanager_modules()
  push = (f"{target.image_repository.rstrip('/')}/anticipax:{time.strftime('%Y%m%d-%H%M%S')}"
          if target.image_repository else None)
  spec = xm_local.Vertex.Spec(push_image_tag=push)
  with tempfile.TemporaryDirectory() as staging:
    if target.image:
      packageable = xm.container(spec, image_path=target.image)
    else:
      packageable = xm.python_container(
          spec, entrypoint=xm.ModuleName("anticipax.main"), path=stage_source(source_dir, staging),
          base_image=_BASE_IMAGE, docker_instructions=docker_instructions(target))
    [executable] = experiment.package([packageable])
  return executable


def add_work_units(experiment, trials: Sequence[trials_lib.Trial], target: VertexTarget, *,
                   source_dir: str = ".") -> None:
  """XManager route: packages the image once and adds one Vertex work unit per trial to `experiment`."""
  xm, xm_local = xmanager_modules()
  executable = package(experiment, target, source_dir=source_dir)
  executor = xm_local.Vertex(requirements=xm.JobRequirements(**target.resources()))
  for t in trials:
    experiment.add(xm.Job(executable, executor, name=t.name, args=list(t.args)))


def submit_custom_jobs(specs: Sequence[dict[str, Any]], *, staging_bucket: str,
                       service_account: str | None = None, aiplatform=None) -> list[str]:
  """CustomJob route: submits one google-cloud-aiplatform CustomJob per spec; returns their names."""
  if aiplatform is None:
    from google.cloud import aiplatform  # pylint: disable=g-import-not-at-top
  names = []
  for spec in specs:
    job = aiplatform.CustomJob(display_name=spec["display_name"], worker_pool_specs=spec["worker_pool_specs"],
                               location=spec["region"], staging_bucket=staging_bucket)
    job.submit(service_account=service_account)
    names.append(job.resource_name)
    print(f"{spec['display_name']}: submitted {job.resource_name}")
  return names


def launch(trials: Sequence[trials_lib.Trial], target: VertexTarget, experiment_name: str, *,
           experiment_dir: str, source_dir: str = ".") -> None:
  """Submits one Vertex AI custom job per trial; returns once they are queued."""
  bucket = gcs_paths(experiment_dir)[1].split("/")[2]
  os.environ.setdefault("GOOGLE_CLOUD_BUCKET_NAME", bucket)  # XManager stages files there
  image = target.image
  if needs_xmanager(target):
    _, xm_local = xmanager_modules()
    if target.route == "xmanager":
      from xmanager.cloud import vertex  # pylint: disable=g-import-not-at-top
      vertex.set_default_client(vertex.Client(location=target.region))
    with xm_local.create_experiment(experiment_title=experiment_name) as experiment:
      if target.route == "xmanager":
        add_work_units(experiment, trials, target, source_dir=source_dir)
        return
      image = package(experiment, target, source_dir=source_dir).image_path
  submit_custom_jobs([job_spec(t, target, experiment_name, image) for t in trials],
                     staging_bucket=f"gs://{bucket}", service_account=target.service_account)

