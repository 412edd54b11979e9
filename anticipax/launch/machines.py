"""The machines Vertex AI custom training accepts, per accelerator and count (data only).

`--accelerator` names are XManager's `xm.ResourceType` names. A count missing from an accelerator's table
is refused before anything is submitted, naming the counts that exist.

Sources (read when these tables were written):
- Vertex AI custom training, machine types, GPUs and TPUs of a worker pool:
  https://cloud.google.com/vertex-ai/docs/training/configure-compute
- The GPU each machine series carries (A2 Standard: A100 40GB, A2 Ultra: A100 80GB, A3 High: H100 80GB;
  N1 takes V100, T4, P100, P4 attached 1, 2, 4 or 8 at a time):
  https://cloud.google.com/compute/docs/accelerator-optimized-machines and
  https://cloud.google.com/compute/docs/gpus
- TPU v5e/v6e worker pools name the TPU VM by machine type plus `tpuTopology`, with no acceleratorType
  (google-cloud-aiplatform's CustomJob: "tpu_topology ... required for TPU v5 versions"):
  https://cloud.google.com/vertex-ai/docs/training/training-with-tpu-vm
- What XManager itself requests: xmanager/cloud/vertex.py `get_machine_spec` (google-deepmind/xmanager):
  A100 counts round up to the next a2-highgpu machine (a100 x3 -> a2-highgpu-4g), H100 and A100 80GB
  get its default n1-standard-4 (a pairing Vertex rejects), and TPUs other than v2/v3 are unknown to it.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Machine:
  """One Vertex AI `MachineSpec` and how it is submitted.

  Attributes:
    machine_type: `machineSpec.machineType`.
    accelerator_type: `machineSpec.acceleratorType` (an `AcceleratorType` enum name); None for TPU VMs
      that the machine type names on its own (v5e, v6e).
    accelerator_count: `machineSpec.acceleratorCount` (0: not sent).
    tpu_topology: `machineSpec.tpuTopology` (v5e, v6e).
    devices: what the trial's JAX sees: GPUs, TPU chips, or TPU cores for v2/v3.
    xmanager: XManager's Vertex executor requests exactly this spec (its `get_machine_spec`); the other
      machines are submitted as google-cloud-aiplatform CustomJobs.
    vcpus, ram_gib: N1 host size, sent to XManager as cpu/ram requirements so that it picks this
      machine type rather than its n1-standard-4 default.
    note: shown in the dry run.
  """
  machine_type: str
  accelerator_type: str | None
  accelerator_count: int
  devices: int
  tpu_topology: str | None = None
  xmanager: bool = False
  vcpus: int | None = None
  ram_gib: float | None = None
  note: str = ""

  def spec(self) -> dict[str, object]:
    """The `machineSpec` of a worker pool, only the fields that are set."""
    out: dict[str, object] = {"machine_type": self.machine_type}
    if self.accelerator_type:
      out.update(accelerator_type=self.accelerator_type, accelerator_count=self.accelerator_count)
    if self.tpu_topology:
      out["tpu_topology"] = self.tpu_topology
    return out


def _a2(count: int) -> Machine:
  name = "a2-megagpu-16g" if count == 16 else f"a2-highgpu-{count}g"
  return Machine(name, "NVIDIA_TESLA_A100", count, count, xmanager=True)


def _n1(gpu: str, count: int, vcpus: int) -> Machine:
  # An N1 host with 8 vCPUs per GPU up to 64, inside Compute Engine's vCPU limits for every N1 GPU.
  return Machine(f"n1-standard-{vcpus}", f"NVIDIA_TESLA_{gpu.upper()}", count, count, xmanager=True,
                 vcpus=vcpus, ram_gib=3.75 * vcpus)


_PARTIAL_A3 = ("Google lists a3-highgpu-1g/2g/4g for Spot VMs and Flex-start; an on-demand request may "
               "wait for capacity")

MACHINES: dict[str, dict[int, Machine]] = {
    "a100": {n: _a2(n) for n in (1, 2, 4, 8, 16)},
    "a100_80gib": {n: Machine(f"a2-ultragpu-{n}g", "NVIDIA_A100_80GB", n, n) for n in (1, 2, 4, 8)},
    "h100": {n: Machine(f"a3-highgpu-{n}g", "NVIDIA_H100_80GB", n, n, note="" if n == 8 else _PARTIAL_A3)
             for n in (1, 2, 4, 8)},
    "v100": {n: _n1("v100", n, 8 * n) for n in (1, 2, 4, 8)},
    "t4": {n: _n1("t4", n, 8 * n) for n in (1, 2, 4)},
    "p100": {n: _n1("p100", n, 8 * n) for n in (1, 2, 4)},
    "p4": {n: _n1("p4", n, 8 * n) for n in (1, 2, 4)},
    # v2/v3 come as one host of 4 chips = 8 cores (cloud-tpu, acceleratorCount 8); JAX sees 8 devices.
    "tpu_v2": {8: Machine("cloud-tpu", "TPU_V2", 8, 8, xmanager=True)},
    "tpu_v3": {8: Machine("cloud-tpu", "TPU_V3", 8, 8, xmanager=True)},
    # Single-host v5e/v6e slices: 1 chip (1x1), 4 chips (2x2), 8 chips (2x4).
    "tpu_v5e": {1: Machine("ct5lp-hightpu-1t", None, 0, 1, "1x1"),
                4: Machine("ct5lp-hightpu-4t", None, 0, 4, "2x2"),
                8: Machine("ct5lp-hightpu-8t", None, 0, 8, "2x4")},
    "tpu_v6e": {1: Machine("ct6e-standard-1t", None, 0, 1, "1x1"),
                4: Machine("ct6e-standard-4t", None, 0, 4, "2x2"),
                8: Machine("ct6e-standard-8t", None, 0, 8, "2x4")},
}

# No --accelerator: XManager's default CPU machine.
CPU_ONLY = Machine("n1-standard-4", None, 0, 0, xmanager=True)
