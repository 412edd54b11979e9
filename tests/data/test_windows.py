"""Frame sampling before an action and the action in progress at a frame."""

import numpy as np
import pytest

from anticipax.data import windows


def test_observed_frames_avt_defaults():
  # Action at 10 s (frame 301); 8 frames at 1 fps ending 1 s before: 2 s, 3 s, ..., 9 s.
  frames, clamped = windows.observed_frames(301, num_frames=8, fps=1.0, tau_a=1.0)
  np.testing.assert_array_equal(frames, [61, 91, 121, 151, 181, 211, 241, 271])
  assert frames.dtype == np.int64
  assert not clamped


def test_observed_frames_clamps_before_video_start():
  # t_start = 3.3 s: the frames at -4.7 s ... -0.7 s repeat frame 1.
  frames, clamped = windows.observed_frames(100, num_frames=8, fps=1.0, tau_a=1.0)
  np.testing.assert_array_equal(frames, [1, 1, 1, 1, 1, 10, 40, 70])
  assert clamped
  frames, clamped = windows.observed_frames(1, num_frames=3, fps=2.0, tau_a=0.0)
  np.testing.assert_array_equal(frames, [1, 1, 1])
  assert clamped


def test_observed_frames_clamped_only_when_an_index_fell_below_one():
  frames, clamped = windows.observed_frames(31, num_frames=2, fps=1.0, tau_a=1.0)
  np.testing.assert_array_equal(frames, [1, 1])  # t = -1 s is clamped, t = 0 s is not.
  assert clamped
  frames, clamped = windows.observed_frames(31, num_frames=1, fps=1.0, tau_a=1.0)
  np.testing.assert_array_equal(frames, [1])
  assert not clamped


@pytest.mark.parametrize("start, fps, tau_a, expected", [
    # t_last = 99/30 - 0.5 = 2.8 s; frames every 0.25 s at 61.5, 69, 76.5, 84 video frames;
    # halves round up: 62, 69, 77, 84, then +1 for 1-based indices.
    (100, 4.0, 0.5, [63, 70, 78, 85]),
    # Thirds of a second: positions 59, 69, 79, 89 exactly, despite 1/3 not being a float.
    (100, 3.0, 1.0 / 3.0, [60, 70, 80, 90]),
    # 20 fps over 30 fps video: positions 7, 8.5, 10 -> round half up (not to even 8).
    (11, 20.0, 0.0, [8, 10, 11]),
])
def test_observed_frames_non_integer_steps(start, fps, tau_a, expected):
  frames, clamped = windows.observed_frames(
      start, num_frames=len(expected), fps=fps, tau_a=tau_a)
  np.testing.assert_array_equal(frames, expected)
  assert not clamped


def test_observed_frames_other_video_fps():
  # 25 fps video, action at frame 251 (10 s), last frame 2 s before, 0.5 fps sampling.
  frames, _ = windows.observed_frames(251, num_frames=3, fps=0.5, tau_a=2.0, video_fps=25.0)
  np.testing.assert_array_equal(frames, [101, 151, 201])


def test_observed_frames_rejects_bad_arguments():
  with pytest.raises(ValueError, match="num_frames"):
    windows.observed_frames(100, num_frames=0, fps=1.0, tau_a=1.0)
  with pytest.raises(ValueError, match="fps"):
    windows.observed_frames(100, num_frames=4, fps=0.0, tau_a=1.0)


def test_actions_in_progress_inclusive_segments_and_gaps():
  starts, ends, actions = [10, 30], [20, 40], [5, 7]
  frames = [1, 9, 10, 15, 20, 21, 29, 30, 40, 41]
  got = windows.actions_in_progress(frames, starts, ends, actions)
  np.testing.assert_array_equal(got, [-1, -1, 5, 5, 5, -1, -1, 7, 7, -1])
  assert got.dtype == np.int32


def test_actions_in_progress_latest_start_wins_overlaps():
  # Segment 2 starts inside segment 1 and ends before it; segment 3 is listed first.
  starts, ends, actions = [50, 10, 20], [60, 40, 25], [3, 1, 2]
  got = windows.actions_in_progress([15, 20, 25, 26, 55], starts, ends, actions)
  np.testing.assert_array_equal(got, [1, 2, 2, 1, 3])


def test_actions_in_progress_same_start_later_row_wins():
  got = windows.actions_in_progress([5], [1, 1], [10, 10], [8, 9])
  np.testing.assert_array_equal(got, [9])


def test_actions_in_progress_without_segments():
  got = windows.actions_in_progress(np.array([1, 2, 3]), [], [], [])
  np.testing.assert_array_equal(got, [-1, -1, -1])
  assert got.dtype == np.int32


def test_actions_in_progress_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match="same length"):
    windows.actions_in_progress([1], [1, 2], [3], [0])
