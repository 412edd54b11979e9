"""Vertex AI work units: machines Vertex accepts (checked against the published tables and against what
XManager would send), the dry run's job specs, and both submission routes with fakes (no network)."""

import json
import os
import subprocess
import sys

import pytest

from anticipax.launch import machines
from anticipax.launch import trials as trials_lib
from anticipax.launch import vertex

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WITHOUT_XMANAGER = ("import runpy, sys; sys.modules['xmanager'] = None; "
                     "runpy.run_module('anticipax.launch', run_name='__main__', alter_sys=True)")


def _dry_run(*args):
  """`python -m anticipax.launch --dry_run --executor=vertex ...` without XManager: (lines, job specs)."""
  cmd = [sys.executable, "-c", _WITHOUT_XMANAGER, "--config=configs/demo.py",
         "--workdir_root=gs://bucket/sweeps", "--executor=vertex", "--dry_run", *args]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.splitlines()
  return lines, [json.loads(l[len("  job: "):]) for l in lines if l.startswith("  job: ")]


# Machine types, accelerator types and counts as Vertex AI custom training lists them:
# https://cloud.google.com/vertex-ai/docs/training/configure-compute (GPUs: A2 Standard = A100 40GB,
# A3 High = H100 80GB; TPU v5e: ct5lp-hightpu-{1,4,8}t with tpuTopology 1x1 / 2x2 / 2x4).
@pytest.mark.parametrize("accelerator,count,route,machine_spec", [
    ("a100", 8, "xmanager",
     {"machine_type": "a2-highgpu-8g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 8}),
    ("h100", 8, "aiplatform",
     {"machine_type": "a3-highgpu-8g", "accelerator_type": "NVIDIA_H100_80GB", "accelerator_count": 8}),
    ("tpu_v5e", 8, "aiplatform", {"machine_type": "ct5lp-hightpu-8t", "tpu_topology": "2x4"}),
])
def test_dry_run_prints_the_job_vertex_accepts(accelerator, count, route, machine_spec):
  lines, jobs = _dry_run(f"--accelerator={accelerator}", f"--num_accelerators={count}", "--trials=1,4",
                         "--image=us-docker.pkg.dev/p/r/anticipax:1")
  assert lines[0].startswith(f"Experiment demo: 2 work unit(s) on Vertex AI in us-central1: "
                             f"{accelerator} x{count} -> {machine_spec['machine_type']}, submitted through")
  assert lines[lines.index("[4] 4_peak_lr=0.001,seed=1") + 1] == (
      "  runs: python -m anticipax.main --config=configs/demo.py "
      "--workdir=/gcs/bucket/sweeps/demo/4_peak_lr=0.001,seed=1 --config.schedule.peak_lr=0.001 "
      "--config.seed=1")
  assert len(jobs) == 2
  for job in jobs:
    assert job["route"] == route and job["region"] == "us-central1"
    [pool] = job["worker_pool_specs"]
    assert pool["machine_spec"] == machine_spec and pool["replica_count"] == 1
    assert pool["container_spec"]["image_uri"] == "us-docker.pkg.dev/p/r/anticipax:1"
  assert jobs[1]["worker_pool_specs"][0]["container_spec"]["args"] == [
      "--config=configs/demo.py", "--workdir=/gcs/bucket/sweeps/demo/4_peak_lr=0.001,seed=1",
      "--config.schedule.peak_lr=0.001", "--config.seed=1"]
  if route == "aiplatform":
    assert jobs[1]["display_name"] == "demo_4_peak_lr=0.001,seed=1"


def test_dry_run_of_an_image_built_here_and_of_n1_gpus():
  lines, [job] = _dry_run("--accelerator=v100", "--num_accelerators=2", "--trials=4", "--region=europe-west4",
                          "--image_repository=europe-west4-docker.pkg.dev/p/anticipax")
  [pool] = job["worker_pool_specs"]
  assert pool["machine_spec"] == {"machine_type": "n1-standard-16", "accelerator_type": "NVIDIA_TESLA_V100",
                                  "accelerator_count": 2}
  assert job["region"] == "europe-west4"
  assert pool["container_spec"]["image_uri"] == (
      f"<built at launch from {REPO}: europe-west4-docker.pkg.dev/p/anticipax/anticipax:<tag>>")
  lines, _ = _dry_run("--accelerator=h100", "--num_accelerators=4", "--trials=1")
  assert lines[1].startswith("Note: Google lists a3-highgpu-1g/2g/4g for Spot VMs and Flex-start")


@pytest.mark.parametrize("accelerator,count,message", [
    ("tpu_v3", 1, r"tpu_v3 --num_accelerators=1: Vertex AI has no such machine; it offers tpu_v3 as "
                  r"8 \(cloud-tpu TPU_V3\): pass --num_accelerators=8"),
    ("a100", 3, r"offers a100 as 1 \(a2-highgpu-1g NVIDIA_TESLA_A100\), 2 .* 16 \(a2-megagpu-16g "
                r"NVIDIA_TESLA_A100\): pass --num_accelerators=1 or 2 or 4 or 8 or 16"),
    ("tpu_v5e", 2, r"1 \(ct5lp-hightpu-1t 1x1\), 4 \(ct5lp-hightpu-4t 2x2\), 8 \(ct5lp-hightpu-8t 2x4\)"),
    ("tpu_v4", 4, r"--accelerator=tpu_v4: no Vertex AI machine known for it; known: a100, a100_80gib"),
])
def test_requests_vertex_would_reject_are_refused_before_submission(accelerator, count, message):
  with pytest.raises(ValueError, match=message):
    vertex.VertexTarget(accelerator, count)


def test_every_machine_is_a_valid_custom_job_spec():
  aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")  # CustomJob's request types
  [trial] = trials_lib.make_trials("configs/demo.py", [{"seed": 0}], experiment_dir="/gcs/b/e")
  for accelerator, table in machines.MACHINES.items():
    for count, machine in table.items():
      spec = vertex.job_spec(trial, vertex.VertexTarget(accelerator, count, image="img"), "demo")
      proto = aiplatform_v1.CustomJobSpec(worker_pool_specs=spec["worker_pool_specs"])
      got = proto.worker_pool_specs[0].machine_spec
      assert (got.machine_type, got.accelerator_count, got.tpu_topology) == (
          machine.machine_type, machine.accelerator_count, machine.tpu_topology or "")
      assert got.accelerator_type.name == (machine.accelerator_type or "ACCELERATOR_TYPE_UNSPECIFIED")


def test_xmanager_route_only_where_xmanager_sends_the_same_machine():
  pytest.importorskip("xmanager.cloud.vertex")
  for accelerator, table in machines.MACHINES.items():
    for count, machine in table.items():
      target = vertex.VertexTarget(accelerator, count)
      if machine.xmanager:
        assert vertex.xmanager_machine_spec(target) == machine.spec()
        vertex.check_with_xmanager(target)
      else:  # XManager would attach H100 / A100 80GB to an n1-standard-4; it knows no v5e/v6e machine
        assert target.route == "aiplatform"
        try:
          theirs = vertex.xmanager_machine_spec(target)
        except KeyError:
          continue
        assert theirs["machine_type"] == "n1-standard-4" != machine.machine_type
  assert vertex.xmanager_machine_spec(vertex.VertexTarget()) == machines.CPU_ONLY.spec()


def _mock_launch(target, trials):
  """Adds `trials` to XManager's mock experiment; returns its jobs and what was packaged."""
  xm_mock = pytest.importorskip("xmanager.xm_mock")
  packaged = []
  with xm_mock.MockExperiment() as experiment:
    package = experiment.package

    def spy(packageables):
      for p in packageables:  # the staged source tree exists only during packaging
        path = getattr(p.executable_spec, "path", None)
        listing = sorted(os.listdir(path)) if path and os.path.isdir(path) else None
        packaged.append((p, listing))
      return package(packageables)

    experiment.package = spy
    vertex.add_work_units(experiment, trials, target, source_dir=REPO)
  return experiment.launched_jobs, packaged


@pytest.mark.parametrize("accelerator,count,machine,jax", [
    ("a100", 8, "a2-highgpu-8g", "jax[cuda12]"), ("tpu_v3", 8, "cloud-tpu", "jax[tpu]"),
    ("t4", 1, "n1-standard-8", "jax[cuda12]")])
def test_xmanager_work_units_request_the_machine(accelerator, count, machine, jax):
  xm = pytest.importorskip("xmanager.xm")
  from xmanager import xm_local  # pylint: disable=g-import-not-at-top
  from xmanager.cloud import vertex as xm_vertex  # pylint: disable=g-import-not-at-top
  trials = trials_lib.make_trials("configs/demo.py", [{"seed": 0}, {"seed": 1}], experiment_dir="/gcs/b/e")
  target = vertex.VertexTarget(accelerator, count, image_repository="us-docker.pkg.dev/p/r")
  jobs, [(packageable, listing)] = _mock_launch(target, trials)
  spec = packageable.executable_spec
  assert isinstance(spec, xm.PythonContainer) and spec.entrypoint == xm.ModuleName("anticipax.main")
  assert listing == ["README.md", "anticipax", "configs", "pyproject.toml"]  # no .venv, no data
  assert any(jax in step for step in spec.docker_instructions)
  assert packageable.executor_spec.push_image_tag.startswith("us-docker.pkg.dev/p/r/anticipax:")
  assert [j.args.to_list() for j in jobs] == [list(t.args) for t in trials]
  for job in jobs:
    assert isinstance(job.executor, xm_local.Vertex)
    machine_spec = xm_vertex.get_machine_spec(job)  # what Vertex AI would be asked for
    assert machine_spec["machine_type"] == machine and machine_spec["accelerator_count"] == count


def test_xmanager_route_with_a_prebuilt_image():
  xm = pytest.importorskip("xmanager.xm")
  trials = trials_lib.make_trials("configs/demo.py", [{"seed": 0}], experiment_dir="/gcs/b/e")
  _, [(packageable, _)] = _mock_launch(vertex.VertexTarget(image="gcr.io/p/anticipax:1"), trials)
  assert isinstance(packageable.executable_spec, xm.Container)
  assert packageable.executable_spec.image_path == "gcr.io/p/anticipax:1"


class _FakeAiplatform:
  """google.cloud.aiplatform's CustomJob as far as submission goes."""

  def __init__(self):
    self.submitted = []

  def CustomJob(self, **kwargs):  # pylint: disable=invalid-name
    fake = self

    class Job:
      resource_name = f"projects/p/locations/{kwargs['location']}/customJobs/{len(fake.submitted)}"

      def submit(self, service_account=None):
        fake.submitted.append((kwargs, service_account))

    return Job()


def test_custom_job_route_submits_one_job_per_trial_without_xmanager(monkeypatch, capsys):
  monkeypatch.setitem(sys.modules, "xmanager", None)  # a prebuilt image needs no XManager
  trials = trials_lib.make_trials("configs/demo.py", [{"seed": 0}, {"seed": 1}],
                                  experiment_dir="/gcs/bucket/sweeps/demo")
  target = vertex.VertexTarget("tpu_v5e", 8, image="us-docker.pkg.dev/p/r/anticipax:1", region="us-west4",
                               service_account="trainer@p.iam.gserviceaccount.com")
  assert not vertex.needs_xmanager(target)
  fake, submitted, real = _FakeAiplatform(), [], vertex.submit_custom_jobs

  def submit(specs, **kwargs):
    submitted.append(kwargs)
    return real(specs, aiplatform=fake, **kwargs)

  monkeypatch.setattr(vertex, "submit_custom_jobs", submit)
  monkeypatch.delenv("GOOGLE_CLOUD_BUCKET_NAME", raising=False)
  vertex.launch(trials, target, "demo", experiment_dir="gs://bucket/sweeps/demo")
  assert submitted == [{"staging_bucket": "gs://bucket",
                        "service_account": "trainer@p.iam.gserviceaccount.com"}]
  assert os.environ["GOOGLE_CLOUD_BUCKET_NAME"] == "bucket"
  assert [(kw["display_name"], kw["location"], kw["staging_bucket"], sa) for kw, sa in fake.submitted] == [
      ("demo_1_seed=0", "us-west4", "gs://bucket", "trainer@p.iam.gserviceaccount.com"),
      ("demo_2_seed=1", "us-west4", "gs://bucket", "trainer@p.iam.gserviceaccount.com")]
  [pool] = fake.submitted[1][0]["worker_pool_specs"]
  assert pool == {"machine_spec": {"machine_type": "ct5lp-hightpu-8t", "tpu_topology": "2x4"},
                  "replica_count": 1,
                  "container_spec": {"image_uri": "us-docker.pkg.dev/p/r/anticipax:1",
                                     "args": list(trials[1].args)}}
  assert "demo_2_seed=1: submitted projects/p/locations/us-west4/customJobs/1" in capsys.readouterr().out



def test_launch_that_needs_xmanager_says_what_to_install():
  cmd = [sys.executable, "-c", _WITHOUT_XMANAGER, "--config=configs/demo.py", "--workdir_root=gs://bucket/s",
         "--executor=vertex", "--accelerator=h100", "--num_accelerators=8"]  # no --image: built by XManager
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0 and "pip install 'anticipax[launch]'" in proc.stderr
  assert "--image with a TPU v5e/v6e, A100 80GB or H100 machine needs only google-cloud-aiplatform" in proc.stderr
