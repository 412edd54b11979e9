"""Tiny EGTEA Gaze+ / EPIC-Kitchens-55 / EPIC-Kitchens-100 datasets in the public RULSTM formats.

Each `write_*` function writes, into one directory laid out like RULSTM's `data/<dataset>/`,
the annotation CSVs with their quirks (EK55: spaces after commas, zero padding; EK100: string
uids, rows in uid order), `actions.csv`, the class/uid/video lists, and one LMDB per modality
in which some frames have no key. Everything is a deterministic function of the arguments.

Within a video, segment `j` starts at frame `16 + 30 j` (segment 3 shares its start with
segment 2, and every third segment overlaps the next one) and has action
`(3 v + 7 j) % num_actions`, `v` being the video's position in `info["videos"]`; the video
ends 12 frames after its last segment ends. Feature keys exist for frames `1..length`
except: the first modality (`rgb` by default) lacks frames `f % 5 == 3`, the modality at
position `i > 0` keeps only frames with `(f - 1) % (i + 1) == 0` (`obj`, the second by
default, has odd frames only). The feature of frame `f` is
`(v * 10000 + f) * (i + 1) + arange(dim) / 8`, exact in float32.

Each function returns `info`, a dict: `root`, `dataset`, `videos` (every video with features,
in order), `segments` ({csv file name: [Segment] in file order}), `actions` ([(id, verb,
noun, name)]), `verb_names`, `noun_names` (as `read_actions` should give them), `lists`
({file name: [lines]}), `modalities`, `dims` ({modality: dim}), `frames` ({modality: {video: int64
array of frames with a key}}).
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np

from anticipax.data.rulstm import lmdb_features
from anticipax.data.rulstm.reader import Segment

DIMS = {"rgb": 6, "obj": 4, "flow": 5}

# (verb, noun, name) as in each dataset's actions.csv; the id is the position.
EGTEA_ACTIONS = (
    (0, 0, "Inspect/Read_recipe"), (1, 1, "Open_fridge"), (2, 2, "Take_eating:utensil"),
    (3, 3, "Cut_tomato"), (4, 4, "Turn on_faucet"), (5, 2, "Put_eating:utensil"),
    (2, 5, "Take_cheese:container"), (1, 5, "Open_cheese:container"), (3, 6, "Cut_bell:pepper"),
    (6, 1, "Close_fridge"),
)
EGTEA_VERBS = ("Inspect/Read", "Open", "Take", "Cut", "Turn on", "Put", "Close")
EGTEA_NOUNS = ("recipe", "fridge", "eating utensil", "tomato", "faucet", "cheese container", "bell pepper")

# Verb 0 has the synonym "get" (as in the real file, where the first name seen wins); noun 2 is unused.
EK55_ACTIONS = (
    (0, 1, "take_pan"), (0, 4, "take_fridge"), (0, 3, "get_curry:fish"), (1, 1, "put_pan"),
    (2, 4, "open_fridge"), (3, 5, "pick-up_jug:measuring"), (4, 1, "wash_pan"), (5, 3, "transfer_curry:fish"),
    (6, 0, "turn-on_tap"), (7, 4, "close_fridge"),
)
EK55_VERBS = ("take", "put", "open", "pick-up", "wash", "transfer", "turn-on", "close")
EK55_NOUNS = ("tap", "pan", "", "fish curry", "fridge", "measuring jug")
EK55_MANY_SHOT = {"EPIC_many_shot_verbs.csv": ("verb_class,verb", [(0, "take"), (1, "put"), (2, "open")]),
                  "EPIC_many_shot_nouns.csv": ("noun_class,noun", [(1, "pan"), (4, "fridge")])}

EK100_ACTIONS = (
    (0, 0, "take tap"), (0, 1, "take spoon"), (1, 1, "put spoon"), (2, 2, "open drawer"),
    (3, 3, "wash board:chopping"), (1, 3, "put board:chopping"), (4, 4, "pour liquid:washing"),
    (5, 2, "close drawer"), (2, 5, "open fridge"),
)
EK100_VERBS = ("take", "put", "open", "wash", "pour", "close")
EK100_NOUNS = ("tap", "spoon", "drawer", "chopping board", "washing liquid", "fridge")

_RECIPES = ("PastaSalad", "GreekSalad", "BaconAndEggs", "Pizza", "TurkeySandwich", "Cheeseburger",
            "ContinentalBreakfast")


def _spans(v: int, n: int) -> list[tuple[int, int]]:
  """(start, end) of the `n` segments of the video at position `v`."""
  starts = [16 + 30 * j for j in range(n)]
  if n > 3:
    starts[3] = starts[2]  # A tie, ordered by uid.
  return [(s, s + 20 + 7 * ((j + v) % 3)) for j, s in enumerate(starts)]


def _segments(video: str, v: int, n: int, actions, uid) -> list[Segment]:
  """The `n` segments of `video`, at position `v`; `uid(v, j)` names segment `j`."""
  out = []
  for j, (start, end) in enumerate(_spans(v, n)):
    a = (3 * v + 7 * j) % len(actions)
    out.append(Segment(uid(v, j), video, start, end, actions[a][0], actions[a][1], a))
  return out


def has_key(modality_index: int, frame: int) -> bool:
  """Whether the fixture LMDB of the modality at `modality_index` has a key for `frame`."""
  if modality_index == 0:
    return frame % 5 != 3
  return (frame - 1) % (modality_index + 1) == 0


def feature(video_index: int, frame: int, modality_index: int, dim: int) -> np.ndarray:
  """The fixture feature of `frame` (which must have a key) of the video at `video_index`."""
  return ((video_index * 10000 + frame) * (modality_index + 1) + np.arange(dim) / 8).astype(np.float32)


def expected_features(info, modalities: Sequence[str], video: str, frames) -> np.ndarray:
  """What `LmdbFeatures(info["root"], modalities).read(video, frames)` must return."""
  v = info["videos"].index(video)
  rows = []
  for frame in frames:
    row = []
    for modality in modalities:
      i = info["modalities"].index(modality)
      keys = info["frames"][modality][video]
      k = min(np.searchsorted(keys, frame), len(keys) - 1)  # At or after; else the last frame.
      row.append(feature(v, int(keys[k]), i, info["dims"][modality]))
    rows.append(np.concatenate(row))
  return np.array(rows, np.float32).reshape(len(rows), -1)


def _write_lmdbs(root: pathlib.Path, segments_by_video, modalities, dims) -> dict:
  frames = {m: {} for m in modalities}
  for i, modality in enumerate(modalities):
    items = {}
    for v, (video, segments) in enumerate(segments_by_video.items()):
      length = max(s.end_frame for s in segments) + 12
      keys = np.array([f for f in range(1, length + 1) if has_key(i, f)], np.int64)
      frames[modality][video] = keys
      for f in keys:
        items[f"{video}_frame_{f:010d}.jpg"] = feature(v, int(f), i, dims[modality])
    lmdb_features.write_lmdb(root / modality, items)
  return frames


def _write(path: pathlib.Path, lines: Sequence[str]) -> None:
  path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _finish(root, dataset, by_video, files, actions, verbs, nouns, lists, modalities, dims) -> dict:
  dims = {m: {**DIMS, **(dims or {})}[m] for m in modalities}
  for name, lines in lists.items():
    _write(root / name, lines)
  return dict(root=root, dataset=dataset, videos=list(by_video), segments=files,
              actions=[(i, v, n, name) for i, (v, n, name) in enumerate(actions)], verb_names=verbs,
              noun_names=nouns, lists=lists, modalities=list(modalities), dims=dims,
              frames=_write_lmdbs(root, by_video, modalities, dims))


def write_egtea(root, *, num_videos: int = 3, segments_per_video: int = 6, splits: Sequence[int] = (1, 2, 3),
                modalities: Sequence[str] = ("rgb", "obj"), dims: dict | None = None) -> dict:
  """Writes `training{s}.csv`, `validation{s}.csv` for each split `s`, `actions.csv` and LMDBs.

  Integer uids, no spaces, rows not in video order (as in the real files). Every video has
  training and validation segments, interleaved; which ones differs per split.
  """
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  by_video = {}
  for v in range(num_videos):
    video = f"{'OP' if v % 2 else 'P'}{v + 1:02d}-R{v % 7 + 1:02d}-{_RECIPES[v % 7]}"
    by_video[video] = _segments(video, v, segments_per_video, EGTEA_ACTIONS,
                                lambda v, j: str(1 + 7 * (j * num_videos + v)))
  files, lists = {}, {}
  for split in splits:
    for name, keep in (("training", lambda j, v: (j + v + split) % 3 != 2),
                       ("validation", lambda j, v: (j + v + split) % 3 == 2)):
      rows = [s for v, segs in enumerate(by_video.values()) for j, s in enumerate(segs) if keep(j, v)]
      rows.sort(key=lambda s: int(s.uid))
      files[f"{name}{split}.csv"] = rows
      lists[f"{name}{split}.csv"] = [
          f"{s.uid},{s.video},{s.start_frame},{s.end_frame},{s.verb},{s.noun},{s.action}" for s in rows]
  lists["actions.csv"] = [f"{i}, {v}_{n}, {name}" for i, (v, n, name) in enumerate(EGTEA_ACTIONS)]
  return _finish(root, "egtea", by_video, files, EGTEA_ACTIONS, EGTEA_VERBS, EGTEA_NOUNS, lists, modalities,
                 dims)


def _epic_splits(by_video, interleave: bool):
  """(training, validation) segments: by video (odd positions validate), or alternating within videos."""
  train, val = [], []
  for v, segs in enumerate(by_video.values()):
    for j, s in enumerate(segs):
      (val if (j % 2 if interleave else v % 2) else train).append(s)
  return train, val


def write_ek55(root, *, num_videos: int = 4, segments_per_video: int = 6, num_test_videos: int = 1,
               interleave: bool = False, modalities: Sequence[str] = ("rgb", "obj"),
               dims: dict | None = None) -> dict:
  """Writes EK55's `training.csv`, `validation.csv`, `test_seen.csv`, `test_unseen.csv`, `actions.csv`,
  `EPIC_many_shot_{verbs,nouns}.csv`, `{training,validation}_videos.csv` and LMDBs.

  Zero-padded integer uids (unique over all files) and numbers, spaces after commas. As in
  RULSTM's split, training and validation videos differ (odd positions validate) unless
  `interleave`, where segments of each video alternate between the two files.
  """
  if not 1 <= num_videos <= 60:  # Participants P01..P30; P31 is the unseen test participant.
    raise ValueError(f"num_videos must be in [1, 60], got {num_videos}")
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  videos = [f"P{1 + v // 2:02d}_{1 + v % 2:02d}" for v in range(num_videos)]
  videos += [f"P01_{11 + k:02d}" for k in range(num_test_videos)]  # test_seen: seen participant P01.
  videos += [f"P31_{1 + k:02d}" for k in range(num_test_videos)]  # test_unseen.
  by_video = {video: _segments(video, v, segments_per_video, EK55_ACTIONS,
                               lambda v, j: f"{100 + v * segments_per_video + j:05d}")
              for v, video in enumerate(videos)}
  labeled = dict(list(by_video.items())[:num_videos])
  train, val = _epic_splits(labeled, interleave)
  seen = [s for video in videos[num_videos:num_videos + num_test_videos] for s in by_video[video]]
  unseen = [s for video in videos[num_videos + num_test_videos:] for s in by_video[video]]
  files = {"training.csv": train, "validation.csv": val,
           "test_seen.csv": [Segment(s.uid, s.video, s.start_frame, s.end_frame) for s in seen],
           "test_unseen.csv": [Segment(s.uid, s.video, s.start_frame, s.end_frame) for s in unseen]}
  lists = {}
  for name, rows in files.items():
    lists[name] = [f"{s.uid}, {s.video}, {s.start_frame:010d}, {s.end_frame:010d}"
                   + (f", {s.verb:03d}, {s.noun:03d}, {s.action:04d}" if s.labeled else "") for s in rows]
  lists["actions.csv"] = ["id,action,verb,noun"] + [
      f"{i}, {name},{v},{n}" for i, (v, n, name) in enumerate(EK55_ACTIONS)]
  for name, (header, rows) in EK55_MANY_SHOT.items():
    lists[name] = [header] + [f"{i},{n}" for i, n in rows]
  lists["training_videos.csv"] = sorted({s.video for s in train})
  lists["validation_videos.csv"] = sorted({s.video for s in val})
  return _finish(root, "ek55", by_video, files, EK55_ACTIONS, EK55_VERBS, EK55_NOUNS, lists, modalities, dims)


def write_ek100(root, *, num_videos: int = 4, segments_per_video: int = 6, num_test_videos: int = 1,
                interleave: bool = False, modalities: Sequence[str] = ("rgb", "obj"),
                dims: dict | None = None) -> dict:
  """Writes EK100's `training.csv`, `validation.csv`, `test_timestamps.csv`, `actions.csv`,
  `validation_tail_{verbs,nouns,actions}_ids.csv`, `validation_unseen_participants_ids.csv`,
  `{training,validation}_videos.csv` and LMDBs.

  String uids `<video>_<index>`, rows in uid (string) order as in the real files. The last
  validation video's participant (P32) is the unseen one. As in the public files, the tail
  lists hold validation segment uids: those whose verb >= 4, noun >= 4 or action >= 6.
  """
  if not 1 <= num_videos <= 60:  # Participants P01..P30; P32 and up are unseen.
    raise ValueError(f"num_videos must be in [1, 60], got {num_videos}")
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  # Every fourth video has a 3-digit number, as the videos EK100 added to EK55's.
  videos = [f"P{1 + v // 2:02d}_{101 + v % 2}" if v % 4 == 3 else f"P{1 + v // 2:02d}_{1 + v % 2:02d}"
            for v in range(num_videos)]
  if num_videos > 1 and not interleave:
    videos[-1 if num_videos % 2 == 0 else -2] = "P32_01"  # A validation video of an unseen participant.
  videos += [f"P{33 + k}_01" for k in range(num_test_videos)]
  by_video = {video: _segments(video, v, segments_per_video, EK100_ACTIONS, lambda v, j, video=video: f"{video}_{j}")
              for v, video in enumerate(videos)}
  train, val = _epic_splits(dict(list(by_video.items())[:num_videos]), interleave)
  test = [Segment(s.uid, s.video, s.start_frame, s.end_frame) for video in videos[num_videos:]
          for s in by_video[video]]
  files = {"training.csv": train, "validation.csv": val, "test_timestamps.csv": test}
  files = {name: sorted(rows, key=lambda s: s.uid) for name, rows in files.items()}
  lists = {name: [f"{s.uid},{s.video},{s.start_frame},{s.end_frame}" + (f",{s.verb},{s.noun},{s.action}"
                                                                        if s.labeled else "") for s in rows]
           for name, rows in files.items()}
  lists["actions.csv"] = ["id,verb,noun,action"] + [
      f"{i},{v},{n},{name}" for i, (v, n, name) in enumerate(EK100_ACTIONS)]
  val_rows = files["validation.csv"]
  lists["validation_tail_verbs_ids.csv"] = [s.uid for s in val_rows if s.verb >= 4]
  lists["validation_tail_nouns_ids.csv"] = [s.uid for s in val_rows if s.noun >= 4]
  lists["validation_tail_actions_ids.csv"] = [s.uid for s in val_rows if s.action >= 6]
  lists["validation_unseen_participants_ids.csv"] = [s.uid for s in val_rows if s.video.startswith("P32_")]
  lists["training_videos.csv"] = sorted({s.video for s in train})
  lists["validation_videos.csv"] = sorted({s.video for s in val})
  return _finish(root, "ek100", by_video, files, EK100_ACTIONS, EK100_VERBS, EK100_NOUNS, lists, modalities,
                 dims)


def write(dataset: str, root: str | os.PathLike, **kwargs) -> dict:
  """`write_egtea`, `write_ek55` or `write_ek100` by dataset name."""
  return {"egtea": write_egtea, "ek55": write_ek55, "ek100": write_ek100}[dataset](root, **kwargs)
