"""Sweep specs for configs' `sweep()` functions: one override dict per trial, built from axes.

    def sweep(arg=None):
      from anticipax.sweeps import axis, product
      return product(axis("schedule.peak_lr", [3e-4, 1e-3]), axis("seed", [0, 1]))  # 4 trials

This module imports nothing from `anticipax.launch`: a config that declares a sweep must load without
pulling in an entry point (its flags, XManager, subprocesses).
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

Overrides = dict[str, Any]


def key(name: str) -> str:
  """A dotted config field as overrides spell it: "config.a.b" and "a.b" are both "a.b"."""
  if not isinstance(name, str) or not name.strip("."):
    raise ValueError(f"sweep: override keys are dotted config fields, got {name!r}")
  return name[len("config."):] if name.startswith("config.") else name


def merge(parts: Sequence[Mapping[str, Any]]) -> Overrides:
  """One trial's overrides from several dicts; a field set twice is an error, not a silent overwrite."""
  out = {}
  for part in parts:
    for name, value in part.items():
      name = key(name)
      if name in out:
        raise ValueError(f"sweep: {name} is set twice in one trial ({out[name]!r} and {value!r})")
      out[name] = value
  return out


def axis(name: str, values: Sequence[Any]) -> list[Overrides]:
  """One trial per value of config field `name` (dotted, e.g. "schedule.peak_lr")."""
  return [{key(name): v} for v in values]


def product(*axes: Sequence[Mapping[str, Any]]) -> list[Overrides]:
  """Every combination of one dict from each axis (the first axis varies slowest)."""
  return [merge(combo) for combo in itertools.product(*axes)]


def zip_(*axes: Sequence[Mapping[str, Any]]) -> list[Overrides]:
  """The i-th dicts of all axes merged, for axes of one length (e.g. lr with its matching warmup)."""
  lengths = sorted({len(a) for a in axes})
  if len(lengths) > 1:
    raise ValueError(f"zip_: the axes have different lengths {lengths}")
  return [merge(combo) for combo in zip(*axes)]
