"""String fields of examples as Python text.

TFDS / array_record sources return `tfds.features.Text` fields as `bytes` (numpy `bytes_` in arrays),
while in-memory sources (tests, benchmarks) hold `str`; code that names a video, a uid or a sentence
reads either through `as_text`.
"""

from __future__ import annotations

from typing import Any


def as_text(value: Any) -> str:
  """`value` as `str`: UTF-8 bytes decoded, anything else through `str()`.

  Args:
    value: a field of an example, e.g. `example["uid"]` (bytes from a prepared dataset, str in memory).

  Returns:
    The text.

  Raises:
    UnicodeDecodeError: bytes that are not UTF-8.
  """
  return value.decode() if isinstance(value, bytes) else str(value)
