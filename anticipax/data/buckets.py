"""Length bucketing: a batch of right-padded token rows is cut to the shortest of a few lengths that
holds its longest row, so a text model computes on (nearly) real tokens with a handful of static shapes,
each compiled once.

Cutting padding changes no result beyond float noise: padded positions are masked out of attention and
of every loss, and each batch keeps the same rows in the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

MIN_BUCKET = 16


def bucket_lengths(max_len: int, spec: str | Sequence[int] | None = "auto") -> tuple[int, ...]:
  """The padded lengths batches may take, ascending, always ending at `max_len`.

  `spec`: "auto" = four lengths per octave, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, ... (2^k x 1, 1.25,
  1.5, 1.75) below `max_len`, so a batch carries at most 25 % padding beyond its longest row (only the
  lengths batches actually reach get compiled); "none" (or empty) = `max_len` only (static padding); or
  explicit lengths ("32,64" or a sequence), each in [1, max_len].
  """
  if spec is None or (isinstance(spec, str) and spec.strip().lower() in ("", "none", "off")):
    return (max_len,)
  if isinstance(spec, str) and spec.strip().lower() == "auto":
    lengths = {2**k * q // 4 for k in range(4, 32) for q in (4, 5, 6, 7) if MIN_BUCKET <= 2**k * q // 4 < max_len}
  else:
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
      lengths = {int(x) for x in items if str(x).strip()}
    except ValueError:
      raise ValueError(f"config key text.length_buckets: {spec!r} is not 'auto', 'none' or a comma-separated "
                       "list of lengths") from None
    bad = sorted(n for n in lengths if not 1 <= n <= max_len)
    if bad:
      raise ValueError(f"config key text.length_buckets: lengths {bad} are outside [1, text.max_len={max_len}]")
  return tuple(sorted(lengths | {max_len}))


def longest_row(mask: np.ndarray) -> int:
  """1 + the last position any row of `mask` [B, L] attends to (at least 1)."""
  used = np.flatnonzero(np.asarray(mask).reshape(mask.shape[0], -1).any(axis=0) if mask.size else [])
  return int(used[-1]) + 1 if used.size else 1


def bucket_for(length: int, lengths: Sequence[int]) -> int:
  """The shortest of `lengths` (ascending) that is >= `length`."""
  for n in lengths:
    if n >= length:
      return n
  raise ValueError(f"a row of {length} tokens is longer than the longest bucket {lengths[-1]}")


def cut(batch: Mapping[str, np.ndarray], keys: Sequence[str], length: int) -> dict[str, np.ndarray]:
  """`batch` with the fields `keys` ([B, L, ...]) cut to their first `length` positions."""
  return {k: (v[:, :length] if k in keys else v) for k, v in batch.items()}
