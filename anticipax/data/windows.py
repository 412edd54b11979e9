"""Which frames an anticipation model observes, and what is happening in them.

Anticipative Video Transformer (AVT) style sampling: to anticipate an action starting at
time `t_start`, the model sees `num_frames` frames sampled at `fps`, the last one `tau_a`
seconds before the action starts. Frame numbers follow the RULSTM convention: 1-based
indices into `video_fps` (30 fps) video. Shared by the synthetic dataset and the readers
of the public EGTEA / EPIC-Kitchens annotations.
"""

from __future__ import annotations

import numpy as np


def observed_frames(
    start_frame: int,
    *,
    num_frames: int,
    fps: float,
    tau_a: float,
    video_fps: float = 30.0,
) -> tuple[np.ndarray, bool]:
  """1-based indices of the frames observed before an action starts.

  The action starts at 1-based frame `start_frame`, i.e. at
  `t_start = (start_frame - 1) / video_fps` seconds. The last observed frame is at
  `t_last = t_start - tau_a` and frame `i` at `t_i = t_last - (num_frames - 1 - i) / fps`.
  Its index is `floor(t_i * video_fps + 0.5) + 1` (round half up, not to even, so that
  results do not depend on the parity of the frame number). Windows reaching before the
  start of the video repeat its first frame.

  Args:
    start_frame: 1-based index of the first frame of the action.
    num_frames: number of observed frames.
    fps: sampling rate of the observed frames, frames per second.
    tau_a: anticipation time in seconds between the last observed frame and the
      start of the action.
    video_fps: frame rate of the video that `start_frame` indexes.

  Returns:
    `(frames, clamped)`: `frames` is an int64 `[num_frames]` ascending array of
    1-based frame indices; `clamped` is True when some index fell below 1 and was
    replaced by 1.
  """
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
  if fps <= 0 or video_fps <= 0:
    raise ValueError(f"fps and video_fps must be > 0, got {fps} and {video_fps}.")
  # Positions in units of video frames (`t_i * video_fps`), computed so that exact
  # halves such as 61.5 stay exact; the rounding to 1e-6 absorbs the float error of
  # fractions like 1/3 s that would otherwise flip a half-way case.
  steps = num_frames - 1 - np.arange(num_frames)
  pos = (start_frame - 1) - tau_a * video_fps - steps * (video_fps / fps)
  frames = np.floor(np.round(pos, 6) + 0.5).astype(np.int64) + 1
  clamped = bool(frames[0] < 1)  # Ascending, so the first frame is the smallest.
  return np.maximum(frames, 1), clamped


def actions_in_progress(frames, starts, ends, actions) -> np.ndarray:
  """The annotated action in progress at each frame.

  Segments are inclusive (`start <= frame <= end`). Where several segments overlap a
  frame, the one that started latest wins (ties: the later segment in the input).

  Args:
    frames: `[F]` frame indices.
    starts: `[S]` first frame of each segment.
    ends: `[S]` last frame of each segment (inclusive).
    actions: `[S]` action id of each segment.

  Returns:
    int32 `[F]`: the action id in progress at each frame, -1 where there is none.
  """
  frames = np.asarray(frames)
  starts, ends, actions = (np.asarray(x).reshape(-1) for x in (starts, ends, actions))
  if not starts.shape == ends.shape == actions.shape:
    raise ValueError(
        "starts, ends and actions must have the same length, got "
        f"{starts.shape}, {ends.shape}, {actions.shape}.")
  if starts.size == 0:
    return np.full(frames.shape, -1, np.int32)
  inside = (starts <= frames[..., None]) & (frames[..., None] <= ends)  # [F, S]
  # Rank segments by start (stable, so later input rows win ties); the winner is the
  # highest-ranked segment covering the frame.
  order = np.argsort(starts, kind="stable")
  ranked = inside[..., order]
  last = ranked.shape[-1] - 1 - np.argmax(ranked[..., ::-1], axis=-1)
  found = ranked.any(axis=-1)
  return np.where(found, actions[order][last], -1).astype(np.int32)
