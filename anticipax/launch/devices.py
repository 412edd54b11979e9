"""This machine's accelerators, found without importing JAX, split into slots that trials run in.

A local sweep with `--parallel=N` runs N trials at a time, each pinned to its own 1/N of the devices
through environment variables that the trial's JAX reads when it starts:

- GPUs: `CUDA_VISIBLE_DEVICES`.
- TPU VMs: each trial is a one-process TPU "slice" of its chips. The variables and the chip bounds are
  the ones JAX's own multi-process test runner sets to run several processes on one TPU VM
  (jax-ml/jax, jax/_src/test_multiprocess.py: TPU_VISIBLE_CHIPS, TPU_CHIPS_PER_PROCESS_BOUNDS 1,1,1 /
  1,2,1 / 2,2,1 for 1 / 2 / 4 chips, TPU_PROCESS_BOUNDS, TPU_PROCESS_ADDRESSES, TPU_PROCESS_PORT,
  CLOUD_TPU_TASK_ID, ALLOW_MULTIPLE_LIBTPU_LOAD). There the processes form one job; here every trial is
  its own job, so its process bounds are 1,1,1, its address list is its own port and its task id is 0.
  Ports count up from 8476, libtpu's default TPU_PROCESS_PORT, so that concurrent trials do not collide.

Every trial on accelerators also gets ANTICIPAX_EXPECT_BACKEND (gpu or tpu), which `anticipax.runtime`
checks right after JAX starts: a trial that silently fell back to the CPU fails instead.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import subprocess
from typing import Callable, Mapping, Sequence

EXPECT_BACKEND = "ANTICIPAX_EXPECT_BACKEND"
_TPU_BASE_PORT = 8476
# Chips per process -> TPU_CHIPS_PER_PROCESS_BOUNDS (jax/_src/test_multiprocess.py). Half of an 8-chip
# host (2,2,1) assumes a 2x4 host, as JAX's runner notes.
_CHIP_BOUNDS = {1: "1,1,1", 2: "1,2,1", 4: "2,2,1"}
# Google's PCI vendor id and the device ids of TPU chips (jax/_src/hardware_utils.py).
_GOOGLE_PCI_VENDOR = "0x1ae0"
_TPU_PCI_DEVICES = ("0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076")


@dataclasses.dataclass(frozen=True)
class Devices:
  """The accelerators a local sweep may use.

  Attributes:
    platform: "gpu", "tpu" or "cpu" (no accelerator).
    ids: CUDA device indices (or UUIDs), or TPU chip indices.
    source: how they were found, for the dry run.
    pci_order: the ids are nvidia-smi's, which number GPUs by PCI bus; CUDA numbers them fastest first
      unless CUDA_DEVICE_ORDER=PCI_BUS_ID, which the trials then get.
  """
  platform: str
  ids: tuple[str, ...] = ()
  source: str = ""
  pci_order: bool = False

  def describe(self) -> str:
    if self.platform == "cpu":
      return f"no accelerator ({self.source})" if self.source else "no accelerator"
    unit = "TPU chip" if self.platform == "tpu" else "GPU"
    return f"{len(self.ids)} {unit}(s) {','.join(self.ids)} ({self.source})"


def _listed(value: str) -> tuple[str, ...]:
  return tuple(v.strip() for v in value.split(",") if v.strip() and v.strip() != "-1")


def _nvidia_smi(run: Callable[..., subprocess.CompletedProcess]) -> tuple[str, ...]:
  """GPU indices from `nvidia-smi -L` ("GPU 0: NVIDIA H100 ... (UUID: ...)"); () without a driver."""
  try:
    proc = run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=False)
  except (OSError, subprocess.SubprocessError):
    return ()
  if proc.returncode:
    return ()
  return tuple(m[1] for m in re.finditer(r"^GPU (\d+):", proc.stdout, re.MULTILINE))


def _read(path: str) -> str:
  try:
    with open(path) as f:
      return f.read().strip()
  except OSError:  # a sysfs entry we may not read is no TPU of ours
    return ""


def _tpu_chips(pci_root: str, dev_root: str) -> tuple[int, str]:
  """(count, where found): TPU chips on the PCI bus (as JAX counts them), else /dev/accel* nodes."""
  chips = sum(_read(os.path.join(os.path.dirname(vendor), "device")) in _TPU_PCI_DEVICES
              for vendor in glob.glob(os.path.join(pci_root, "*", "vendor"))
              if _read(vendor) == _GOOGLE_PCI_VENDOR)
  if chips:
    return chips, "PCI bus"
  return len(glob.glob(os.path.join(dev_root, "accel[0-9]*"))), "/dev/accel*"


def discover(env: Mapping[str, str] | None = None, *,
             run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
             pci_root: str = "/sys/bus/pci/devices", dev_root: str = "/dev") -> Devices:
  """This machine's accelerators, as the trials' JAX would find them.

  Args:
    env: the environment the trials inherit (default `os.environ`); CUDA_VISIBLE_DEVICES and
      TPU_VISIBLE_CHIPS there limit what the sweep may use, JAX_PLATFORMS=cpu means no accelerator.
    run: runs `nvidia-smi -L` (tests pass a fake).
    pci_root, dev_root: where TPU chips are looked for (tests pass a fake tree).

  Returns:
    GPUs if any are visible, else TPU chips, else "cpu".
  """
  env = os.environ if env is None else env
  if env.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
    return Devices("cpu", source="JAX_PLATFORMS=cpu")
  if "CUDA_VISIBLE_DEVICES" in env:  # the user's own numbering, in the CUDA_DEVICE_ORDER they set
    gpus = _listed(env["CUDA_VISIBLE_DEVICES"])
    if gpus:
      return Devices("gpu", gpus, "CUDA_VISIBLE_DEVICES")
  elif gpus := _nvidia_smi(run):
    return Devices("gpu", gpus, "nvidia-smi -L", pci_order=True)
  if "TPU_VISIBLE_CHIPS" in env:
    chips, source = _listed(env["TPU_VISIBLE_CHIPS"]), "TPU_VISIBLE_CHIPS"
  else:
    count, source = _tpu_chips(pci_root, dev_root)
    chips = tuple(map(str, range(count)))
  if chips:
    return Devices("tpu", chips, source)
  return Devices("cpu")


@dataclasses.dataclass(frozen=True)
class Slot:
  """Where one trial at a time runs: its devices and the environment that pins the trial to them."""
  index: int
  devices: tuple[str, ...]
  env: dict[str, str]

  def describe(self) -> str:
    return f"slot {self.index}: " + (",".join(self.devices) if self.devices else "shared CPU")


def _tpu_env(chips: Sequence[str], index: int) -> dict[str, str]:
  bounds = _CHIP_BOUNDS.get(len(chips))
  if bounds is None:
    raise ValueError(f"a trial on {len(chips)} TPU chips has no known chip layout; "
                     f"split the chips into slots of {', '.join(map(str, _CHIP_BOUNDS))} chips")
  port = str(_TPU_BASE_PORT + index)
  return {"TPU_VISIBLE_CHIPS": ",".join(chips), "TPU_CHIPS_PER_PROCESS_BOUNDS": bounds,
          "TPU_PROCESS_BOUNDS": "1,1,1", "TPU_PROCESS_ADDRESSES": f"localhost:{port}",
          "TPU_PROCESS_PORT": port, "CLOUD_TPU_TASK_ID": "0", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}


def slots(devices: Devices, parallel: int) -> list[Slot]:
  """`parallel` slots, each with its own equal share of `devices`.

  Args:
    devices: what `discover` found.
    parallel: trials at a time; on accelerators it must divide the devices evenly.

  Returns:
    One slot per concurrent trial. On a CPU-only machine the slots only limit concurrency.
  """
  if parallel < 1:
    raise ValueError(f"--parallel must be at least 1, got {parallel}")
  if devices.platform == "cpu":
    return [Slot(i, (), {}) for i in range(parallel)]
  count = len(devices.ids)
  if count % parallel:
    fits = [n for n in range(1, count + 1) if count % n == 0]
    raise ValueError(f"--parallel={parallel} does not split this machine's {devices.describe()} evenly; "
                     f"use --parallel={' or '.join(map(str, fits))}")
  share = count // parallel
  out = []
  for i in range(parallel):
    ids = devices.ids[i * share:(i + 1) * share]
    env = {EXPECT_BACKEND: devices.platform}
    if devices.platform == "gpu":
      env["CUDA_VISIBLE_DEVICES"] = ",".join(ids)
      if devices.pci_order:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    elif parallel > 1:  # one trial on the whole TPU VM keeps libtpu's own defaults
      env.update(_tpu_env(ids, i))
    out.append(Slot(i, ids, env))
  return out
