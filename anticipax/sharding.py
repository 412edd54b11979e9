"""Device mesh, logical-axis rules and global batch assembly.

The mesh has three named axes: `data` (pure data parallelism), `fsdp` (data parallelism with parameters
and optimizer state sharded) and `tensor` (model parallelism inside layers). Modules name their
parameter and activation axes logically ("embed", "mlp", "heads", ...); the config's rules map logical
names onto mesh axes, so the same code runs on one CPU, fake CPU devices, a GPU or a TPU pod slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import math
from typing import Any

import flax.linen as nn
import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

MESH_AXES = ("data", "fsdp", "tensor")
# Batch dimensions are split over every data-parallel axis.
BATCH_AXES = ("data", "fsdp")


def mesh_shape(spec: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves the config's axis sizes (one may be -1: fill) into a shape over `num_devices`."""
  sizes = [int(spec.get(axis, 1)) for axis in MESH_AXES]
  unknown = [i for i, s in enumerate(sizes) if s == -1]
  if len(unknown) > 1:
    raise ValueError(f"mesh: at most one axis may be -1, got {dict(spec)}")
  known = math.prod(s for s in sizes if s != -1)
  if unknown:
    if num_devices % known:
      raise ValueError(f"mesh: {num_devices} devices do not divide by the fixed axes {dict(spec)}")
    sizes[unknown[0]] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"mesh: axes {dict(zip(MESH_AXES, sizes))} need {math.prod(sizes)} devices, "
                     f"{num_devices} available")
  return tuple(sizes)


def make_mesh(spec: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh; `devices` defaults to all global devices."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(spec, len(devices))
  try:
    grid = mesh_utils.create_device_mesh(shape, devices)
  except (AssertionError, NotImplementedError, ValueError):
    grid = np.asarray(devices).reshape(shape)  # CPU / unknown topologies
  return Mesh(grid, MESH_AXES)


def rules_from_config(rules: Sequence[Sequence[Any]]) -> tuple[tuple[str, Any], ...]:
  """ConfigDict lists -> the tuple-of-pairs form flax expects (lists become tuples of mesh axes)."""
  out = []
  for name, axes in rules:
    if isinstance(axes, (list, tuple)):
      axes = tuple(axes)
    out.append((name, axes))
  return tuple(out)


def logical_shardings(abstract_tree: Any, mesh: Mesh, rules) -> Any:
  """NamedShardings for a tree whose leaves may be `nn.Partitioned` boxes (unboxed leaves replicate)."""
  specs = nn.get_partition_spec(abstract_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh, ndim: int = 1) -> NamedSharding:
  """Leading (batch) axis split across all data-parallel mesh axes, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_parallel_size(mesh: Mesh) -> int:
  return math.prod(mesh.shape[a] for a in BATCH_AXES)


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's slice of the batch into global arrays sharded along the batch axes."""
  return {
      k: jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(v)), np.asarray(v))
      for k, v in local_batch.items()
  }
