"""Hypothesis: `frames.FrameFolder.read` (and the decoding after it) on valid and damaged JPEG frames.

A frame folder either gives back each frame's exact bytes, or stops with one DataError naming the file;
decoding what it gave back either yields an image or one DataError naming the frame. Never another
exception type, whatever the bytes (truncated, flipped, random, empty, missing, a folder).
"""

import io
import pathlib
import tempfile

from hypothesis import given, strategies as st
import numpy as np
from PIL import Image

from anticipax.data import frames
from anticipax.data.errors import DataError
from tests.data.test_fuzz_readers import _settings

VIDEO = "P01_01"


def _jpeg(seed: int, width: int, height: int) -> bytes:
  pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="JPEG", quality=90)
  return out.getvalue()


@st.composite
def damaged(draw, original: bytes):
  op = draw(st.sampled_from(("keep", "truncate", "flip", "random", "empty", "prefix", "missing", "folder")))
  if op == "truncate":
    return op, original[:draw(st.integers(0, len(original) - 1))]
  if op == "flip":
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
      i = draw(st.integers(0, len(data) - 1))
      data[i] = draw(st.integers(0, 255))
    return op, bytes(data)
  if op == "random":
    return op, draw(st.binary(max_size=256))
  if op == "empty":
    return op, b""
  if op == "prefix":  # a valid JPEG start on garbage
    return op, original[:draw(st.integers(2, 64))] + draw(st.binary(max_size=64))
  return op, original


def _expect_clean(call, path):
  """`call()` or a DataError naming `path`; anything else fails."""
  try:
    return call(), None
  except DataError as e:
    assert str(path) in str(e), (str(e), path)
    return None, e


@_settings(150)
@given(seed=st.integers(0, 2**16), size=st.tuples(st.integers(8, 48), st.integers(8, 48)), data=st.data())
def test_frame_folder_read_returns_bytes_or_one_error_naming_the_file(seed, size, data):
  original = _jpeg(seed, *size)
  op, content = data.draw(damaged(original))
  with tempfile.TemporaryDirectory() as tmp:
    folder = pathlib.Path(tmp) / "P01" / "rgb_frames" / VIDEO
    folder.mkdir(parents=True)
    good = folder / frames.frame_name(1)
    good.write_bytes(original)
    path = folder / frames.frame_name(2)
    if op == "folder":
      path.mkdir()
    elif op != "missing":
      path.write_bytes(content)
    reader = frames.FrameFolder(tmp)
    got, error = _expect_clean(lambda: reader.read(VIDEO, [1, 2, 1]), path)
    if op in ("missing", "folder", "empty"):
      assert error is not None
    if op == "keep":
      assert error is None
    if error is None:
      assert got == [original, content, original]  # the bytes as stored, a repeated frame read once
      image, _ = _expect_clean(lambda: frames.decode(content, 16, name=str(path)), path)
      if image is not None:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) == 16
