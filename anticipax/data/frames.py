"""RGB frame folders (DATA_FORMATS.md, section 3) and the clip transforms of AVT-b.

Layouts, 1-based frame numbers of the annotations' 30 fps video:

  {root}/{participant}/rgb_frames/{video}/frame_{frame:010d}.jpg   EPIC-Kitchens (participant = `P01` of `P01_01`)
  {root}/{video}/frame_{frame:010d}.jpg                            EGTEA Gaze+ and any flat extraction

Frame numbers must index the video at the annotations' rate (30 fps, RULSTM's): frames extracted at a
video's native 50 or 60 fps (some EPIC-Kitchens releases) need extracting again at 30 fps.

`FrameFolder` finds a video's folder under either layout and reads frames as JPEG bytes (the datasets store
the bytes; nothing is decoded at build time but a 1/8-scale check that the file is a readable JPEG).
`ClipTransform` decodes a clip's JPEG bytes with Pillow and augments it as AVT does (`func/train.py`):

  train: the short side rescaled to a random size in `train_short_side` (one size per clip), a random
         `crop_size` square (one position per clip), a horizontal flip with probability `flip_prob`;
  eval:  the short side rescaled to `eval_short_side`, then `eval_crops` squares (1: centre; 3: top-left,
         centre, bottom-right, as AVT's `multi_crop`), followed by their mirror images if `eval_flips`.

The output is uint8 (4x less to copy to the device than float32); `normalize` maps it to the backbone's
input range on the device. Training randomness comes from the generator the input pipeline derives from
(seed, epoch, example index), never from global state, so a clip's augmentation is a function of those.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import io
import os
import re

import numpy as np
from PIL import Image

from anticipax.data.errors import DataError

_FRAME_FILE = re.compile(r"frame_([0-9]{10})\.jpg")


def frame_name(frame: int) -> str:
  return f"frame_{frame:010d}.jpg"


class FrameFolder:
  """The frames of every video under `root`, in either layout (EPIC's is tried first).

  Attributes:
    root: the folder holding one folder per video, or one `{participant}/rgb_frames/` per participant.
  """

  def __init__(self, root: str | os.PathLike):
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise DataError(f"frame folder {self.root} does not exist")
    self._dirs: dict[str, str] = {}

  def _candidates(self, video: str) -> tuple[str, str]:
    participant = video.split("_", 1)[0]
    return (os.path.join(self.root, participant, "rgb_frames", video), os.path.join(self.root, video))

  def video_dir(self, video: str) -> str:
    """The folder of `video`'s frames; DataError naming both places looked at if there is none."""
    if video in self._dirs:
      return self._dirs[video]
    candidates = self._candidates(video)
    for path in candidates:
      if os.path.isdir(path):
        self._dirs[video] = path
        return path
    raise DataError(f"no frames of video {video!r}: neither {candidates[0]} nor {candidates[1]} exists")

  def path(self, video: str, frame: int) -> str:
    return os.path.join(self.video_dir(video), frame_name(int(frame)))

  def read(self, video: str, frames: Sequence[int]) -> list[bytes]:
    """The JPEG bytes of 1-based `frames` of `video` (a repeated frame is read once).

    Raises:
      DataError: naming the file, when a frame is missing, cannot be read or is not a decodable JPEG.
    """
    cache: dict[int, bytes] = {}
    out = []
    for frame in frames:
      frame = int(frame)
      if frame not in cache:
        path = self.path(video, frame)
        try:
          with open(path, "rb") as f:
            data = f.read()
        except OSError as e:
          raise DataError(f"frame {frame} of video {video!r}: cannot read {path}: {e.strerror or e}") from e
        check_jpeg(data, path)
        cache[frame] = data
      out.append(cache[frame])
    return out

  def videos(self) -> list[str]:
    """Every video with a frame folder, sorted (EPIC layout: `{participant}/rgb_frames/{video}`)."""
    found = set()
    for entry in sorted(os.listdir(self.root)):
      path = os.path.join(self.root, entry)
      if os.path.isdir(os.path.join(path, "rgb_frames")):
        found.update(v for v in os.listdir(os.path.join(path, "rgb_frames"))
                     if os.path.isdir(os.path.join(path, "rgb_frames", v)))
      elif os.path.isdir(path) and any(_FRAME_FILE.fullmatch(n) for n in os.listdir(path)):
        found.add(entry)
    return sorted(found)

  def frame_numbers(self, video: str) -> np.ndarray:
    """int64 [F]: the sorted 1-based numbers of `video`'s `frame_*.jpg` files."""
    names = os.listdir(self.video_dir(video))
    numbers = sorted(int(m.group(1)) for m in map(_FRAME_FILE.fullmatch, names) if m)
    if not numbers:
      raise DataError(f"video {video!r}: no frame_<10 digits>.jpg files in {self.video_dir(video)}")
    return np.asarray(numbers, np.int64)


def check_jpeg(data: bytes, name: str) -> None:
  """Raises DataError naming `name` unless `data` decodes as an image (checked at 1/8 scale: cheap)."""
  try:
    with Image.open(io.BytesIO(data)) as img:
      img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
      img.load()
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f"{name}: not a readable JPEG ({e})") from e


def decode(data: bytes, short_side: int, *, name: str = "frame") -> np.ndarray:
  """JPEG bytes -> uint8 [H, W, 3] with the short side rescaled to `short_side` (bilinear).

  As AVT's `Resize`: the scale is short_side / min(H, W) and each side becomes max(int(side * scale),
  short_side). Pillow's JPEG draft mode first decodes at 1/2, 1/4 or 1/8 scale when that still leaves at
  least the target size, which makes large frames cheap.
  """
  try:
    with Image.open(io.BytesIO(data)) as img:
      h, w = img.height, img.width
      scale = short_side / min(h, w)
      size = (max(int(w * scale), short_side), max(int(h * scale), short_side))
      img.draft("RGB", size)
      img = img.convert("RGB")
      if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
      return np.asarray(img)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(f"{name}: cannot decode the JPEG ({e})") from e


@dataclasses.dataclass(frozen=True)
class ClipTransform:
  """Decoding and augmentation of a clip: a sequence of JPEG bytes, one per frame (see the module doc).

  Attributes:
    crop_size: side of the square crops (the backbone's image size).
    train_short_side: (min, max) of the random short side in training, both included.
    eval_short_side: short side in evaluation.
    eval_crops: 1 (centre) or 3 (top-left, centre, bottom-right) crops in evaluation.
    eval_flips: also evaluate the mirror image of every crop.
    flip_prob: probability of a horizontal flip of a training clip.
  """

  crop_size: int = 224
  train_short_side: tuple[int, int] = (248, 280)
  eval_short_side: int = 248
  eval_crops: int = 3
  eval_flips: bool = True
  flip_prob: float = 0.5

  def __post_init__(self):
    lo, hi = self.train_short_side
    if not self.crop_size <= lo <= hi or self.eval_short_side < self.crop_size:
      raise ValueError(f"short sides {self.train_short_side} / {self.eval_short_side} must be >= the "
                       f"crop size {self.crop_size}")
    if self.eval_crops not in (1, 3):
      raise ValueError(f"eval_crops must be 1 or 3, got {self.eval_crops}")

  @classmethod
  def from_config(cls, data) -> ClipTransform:
    """From a config's `data` section (`crop_size`, `train_short_side`, `eval_short_side`, ...)."""
    defaults = cls()
    return cls(crop_size=int(data.get("crop_size", defaults.crop_size)),
               train_short_side=tuple(int(s) for s in data.get("train_short_side", defaults.train_short_side)),
               eval_short_side=int(data.get("eval_short_side", defaults.eval_short_side)),
               eval_crops=int(data.get("eval_crops", defaults.eval_crops)),
               eval_flips=bool(data.get("eval_flips", defaults.eval_flips)),
               flip_prob=float(data.get("flip_prob", defaults.flip_prob)))

  @property
  def num_views(self) -> int:
    """Views per clip in evaluation: crops, times 2 with flips."""
    return self.eval_crops * (2 if self.eval_flips else 1)

  def train(self, jpegs: Sequence[bytes], rng: np.random.Generator, *, name: str = "clip",
            frame_numbers: Sequence[int] | None = None) -> np.ndarray:
    """One random view: uint8 [T, crop, crop, 3]; the same scale, crop and flip for every frame.

    `name` and `frame_numbers` (e.g. the video and its 1-based frames) name a frame that fails to decode.
    """
    lo, hi = self.train_short_side
    short_side = int(rng.integers(lo, hi + 1))
    fy, fx = rng.random(2)
    flip = rng.random() < self.flip_prob
    c = self.crop_size
    out = np.empty((len(jpegs), c, c, 3), np.uint8)
    for t, frame in enumerate(_decode_all(jpegs, short_side, name, frame_numbers)):
      h, w = frame.shape[:2]
      i, j = int(fy * (h - c + 1)), int(fx * (w - c + 1))
      view = frame[i:i + c, j:j + c]
      out[t] = view[:, ::-1] if flip else view
    return out

  def eval(self, jpegs: Sequence[bytes], *, name: str = "clip",
           frame_numbers: Sequence[int] | None = None) -> np.ndarray:
    """All evaluation views: uint8 [V, T, crop, crop, 3], crops first, then their flips."""
    c = self.crop_size
    out = np.empty((self.num_views, len(jpegs), c, c, 3), np.uint8)
    for t, frame in enumerate(_decode_all(jpegs, self.eval_short_side, name, frame_numbers)):
      for v, (i, j) in enumerate(self.crop_positions(*frame.shape[:2])):
        out[v, t] = frame[i:i + c, j:j + c]
    if self.eval_flips:
      out[self.eval_crops:] = out[:self.eval_crops, :, :, ::-1]
    return out

  def crop_positions(self, h: int, w: int) -> list[tuple[int, int]]:
    """(row, column) of the evaluation crops' top-left corners in an h x w frame (AVT's `multi_crop`)."""
    c = self.crop_size
    centre = (int(round((h - c) / 2.0)), int(round((w - c) / 2.0)))
    return [centre] if self.eval_crops == 1 else [(0, 0), centre, (h - c, w - c)]


def _decode_all(jpegs: Sequence[bytes], short_side: int, name: str, frame_numbers=None):
  """Decodes each distinct frame once (windows near a video's start repeat its first frame)."""
  done: dict[bytes, np.ndarray] = {}
  for t, data in enumerate(jpegs):
    data = bytes(data)
    if data not in done:
      frame = f"frame {int(frame_numbers[t])}" if frame_numbers is not None else f"frame {t} of the clip"
      done[data] = decode(data, short_side, name=f"{name}, {frame}")
    yield done[data]


def normalize(pixels, mean: Sequence[float], std: Sequence[float]):
  """uint8 pixels (numpy or jax) -> float32 `(pixels / 255 - mean) / std`, per channel (last axis)."""
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  return (pixels.astype(np.float32) * np.float32(1 / 255) - mean) / std
