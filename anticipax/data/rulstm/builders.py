"""TFDS builders for EGTEA Gaze+, EPIC-Kitchens-55 and EPIC-Kitchens-100 from the RULSTM files.

The user downloads the RULSTM annotation CSVs and LMDB features (registration required) and puts them
in the manual dir; `prepare` turns them into array_record files read by the grain pipeline. One example
= one annotated segment: the `num_frames` feature vectors AVT observes (`windows.observed_frames`:
`fps` frames per second, ending `tau_a` seconds before the action starts), the action in progress at
each of those frames, the labels and the ids of the previous actions in the video.

No label leaks from evaluation into training: a training example's history and per-frame labels come
from the training annotations only; an evaluation example sees the training annotations plus those of
its own split (the ground-truth past of that video, never its own label).

The frames variant (`inputs="frames"`, for AVT-b) stores, instead of `features`, the JPEG bytes of the
observed frames read from a frame folder (`anticipax.data.frames`, DATA_FORMATS.md section 3):
`frames` (object [T] of bytes) and `frame_numbers` (int32 [T], 1-based); decoding and augmentation
happen in the input pipeline's workers. A missing or unreadable frame stops the build with an error
naming the file.
"""

from __future__ import annotations

import dataclasses

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from anticipax import metrics
from anticipax import paths
from anticipax.data.rulstm import reader as rulstm
from anticipax.data import windows
from anticipax.data.errors import DataError
from anticipax.data.frames import FrameFolder
from anticipax.data.rulstm.lmdb_features import LmdbFeatures

INPUTS = ("features", "frames")


@dataclasses.dataclass
class RulstmConfig(tfds.core.BuilderConfig):
  """How examples are cut: which split files, modalities and observation window."""

  split_id: int = 1  # EGTEA's three splits; ignored elsewhere
  modalities: tuple[str, ...] = ("rgb",)
  num_frames: int = 10
  fps: float = 1.0
  tau_a: float = 1.0
  video_fps: float = 30.0
  inputs: str = "features"  # "features": LMDB feature vectors; "frames": JPEG bytes from a frame folder


def make_config(*, split_id: int = 1, modalities=("rgb",), num_frames: int = 10, fps: float = 1.0,
                tau_a: float = 1.0, inputs: str = "features") -> RulstmConfig:
  """A builder config whose name encodes every field, so different windows never share files."""
  if inputs not in INPUTS:
    raise ValueError(f"config key data.inputs: unknown {inputs!r}; known: {', '.join(INPUTS)}")
  mods = tuple(modalities) if inputs == "features" else ()
  what = "-".join(mods) if inputs == "features" else "frames"
  name = f"s{split_id}_{what}_t{num_frames}_fps{fps:g}_ta{tau_a:g}".replace(".", "p")
  return RulstmConfig(name=name, split_id=split_id, modalities=mods, num_frames=num_frames, fps=fps,
                      tau_a=tau_a, inputs=inputs,
                      description=f"{num_frames} {inputs} at {fps:g} fps, {tau_a:g} s ahead")


class _RulstmBuilder(tfds.core.GeneratorBasedBuilder):
  """Shared logic; subclasses name their files and vocabulary variant."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [make_config()]
  url_infos = None  # nothing to download (also avoids TFDS's importlib_resources lookup)
  DATASET: str = ""
  LABELED_SPLITS: dict[str, str] = {}  # split name -> csv file
  UNLABELED_SPLITS: dict[str, str] = {}
  frames_dir: str | None = None  # frames variant: the frame folder (default: <manual dir>/frames)

  def _info(self) -> tfds.core.DatasetInfo:
    t = self.builder_config.num_frames
    if self.builder_config.inputs == "frames":
      inputs = {"frames": tfds.features.Tensor(shape=(t,), dtype=np.object_),  # JPEG bytes
                "frame_numbers": tfds.features.Tensor(shape=(t,), dtype=np.int32)}
    else:
      inputs = {"features": tfds.features.Tensor(shape=(t, None), dtype=np.float32)}
    features = {
        "uid": tfds.features.Text(), "video": tfds.features.Text(),
        "start_frame": tfds.features.Scalar(np.int32), **inputs,
        "past_actions": tfds.features.Tensor(shape=(t,), dtype=np.int32),
        "action": tfds.features.Scalar(np.int32), "verb": tfds.features.Scalar(np.int32),
        "noun": tfds.features.Scalar(np.int32),
        "history": tfds.features.Tensor(shape=(None,), dtype=np.int32),
    }
    features.update({flag: tfds.features.Scalar(np.int32) for flag in self._flag_names()})
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                 metadata=tfds.core.MetadataDict())

  def _flag_names(self) -> tuple[str, ...]:
    return ()

  def _flags(self, root: epath.Path, split: str, uids: list[str]) -> dict[str, dict[str, int]]:
    del root, split
    return {u: {} for u in uids}

  def _extra_metadata(self, root: epath.Path, vocab: rulstm.Vocabulary) -> dict:
    del root, vocab
    return {}

  def _file(self, root: epath.Path, name: str) -> epath.Path:
    path = root / name
    if not path.exists():
      raise DataError(f"{self.name}: missing {path} (put the RULSTM files for {self.name} in {root})")
    return path

  def _split_generators(self, dl_manager):
    root = epath.Path(dl_manager.manual_dir)
    cfg = self.builder_config
    vocab = rulstm.read_actions(self._file(root, "actions.csv"), self.DATASET)
    splits = {}
    for split, name in {**self.LABELED_SPLITS, **self.UNLABELED_SPLITS}.items():
      path = self._file(root, name.format(split=cfg.split_id))
      segments = rulstm.read_segments(path, labeled=split in self.LABELED_SPLITS)
      vocab.check(segments, path)
      splits[split] = segments
    if cfg.inputs == "frames":
      features = FrameFolder(self.frames_dir or root / "frames")
      dim = 0
    else:
      features = LmdbFeatures(root, cfg.modalities)
      dim = features.dim
    self.info.metadata.update({
        "verbs": list(vocab.verb_names), "nouns": list(vocab.noun_names),
        "actions": vocab.actions.tolist(), "action_names": list(vocab.action_names),
        "feature_dim": dim, **self._extra_metadata(root, vocab)})
    train = splits["train"]
    return {split: self._generate_examples(root, split, segments, train if split == "train" else
                                           train + segments, features)
            for split, segments in splits.items()}

  def _generate_examples(self, root, split, segments, context, features: LmdbFeatures | FrameFolder):
    cfg = self.builder_config
    past = rulstm.HistoryIndex([s for s in context if s.labeled])
    by_video: dict[str, list[rulstm.Segment]] = {}
    for s in context:
      if s.labeled:
        by_video.setdefault(s.video, []).append(s)
    flags = self._flags(root, split, [s.uid for s in segments])
    clamped = 0
    for s in segments:
      frames, was_clamped = windows.observed_frames(s.start_frame, num_frames=cfg.num_frames, fps=cfg.fps,
                                                    tau_a=cfg.tau_a, video_fps=cfg.video_fps)
      clamped += was_clamped
      video_segments = by_video.get(s.video, [])
      in_progress = windows.actions_in_progress(
          frames, np.array([v.start_frame for v in video_segments], np.int64),
          np.array([v.end_frame for v in video_segments], np.int64),
          np.array([v.action for v in video_segments], np.int64))
      # A frame belongs to the past only if it is before this segment starts (the window ends tau_a
      # earlier, but a segment overlapping the window must not reveal this segment's own label).
      in_progress = np.where(frames < s.start_frame, in_progress, -1).astype(np.int32)
      if cfg.inputs == "frames":
        inputs = {"frames": np.array(features.read(s.video, frames), dtype=object),
                  "frame_numbers": frames.astype(np.int32)}
      else:
        inputs = {"features": features.read(s.video, frames)}
      yield s.uid, {
          "uid": s.uid, "video": s.video, "start_frame": s.start_frame, **inputs, "past_actions": in_progress,
          "action": s.action, "verb": s.verb, "noun": s.noun,
          "history": past.before(s.video, s.start_frame).astype(np.int32), **flags[s.uid]}
    logging.info("%s/%s: %d of %d segments start less than %.2f s into their video; their windows "
                 "repeat the first frame.", self.name, split, clamped, len(segments),
                 (cfg.num_frames - 1) / cfg.fps + cfg.tau_a)


class EgteaGazePlus(_RulstmBuilder):
  """EGTEA Gaze+ (RULSTM splits 1-3: trainingN.csv / validationN.csv)."""

  name = "egtea_gaze_plus"
  DATASET = "egtea"
  LABELED_SPLITS = {"train": "training{split}.csv", "validation": "validation{split}.csv"}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the RULSTM EGTEA files in the manual dir: training{1,2,3}.csv, validation{1,2,3}.csv,
  actions.csv and one LMDB directory per feature modality (rgb/, flow/, obj/).
  """


class EpicKitchens55(_RulstmBuilder):
  """EPIC-Kitchens-55, RULSTM's train/validation split of the public train set, plus the test sets."""

  name = "epic_kitchens_55"
  DATASET = "ek55"
  LABELED_SPLITS = {"train": "training.csv", "validation": "validation.csv"}
  UNLABELED_SPLITS = {"test_seen": "test_seen.csv", "test_unseen": "test_unseen.csv"}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the RULSTM EK55 files in the manual dir: training.csv, validation.csv, test_seen.csv,
  test_unseen.csv, actions.csv, EPIC_many_shot_verbs.csv, EPIC_many_shot_nouns.csv and one LMDB
  directory per feature modality (rgb/, flow/, obj/).
  """

  def _extra_metadata(self, root, vocab):
    verbs = rulstm.read_many_shot(self._file(root, "EPIC_many_shot_verbs.csv"))
    nouns = rulstm.read_many_shot(self._file(root, "EPIC_many_shot_nouns.csv"))
    actions = metrics.many_shot_actions(vocab.actions, verbs, nouns)
    return {"many_shot": {"verb": verbs.tolist(), "noun": nouns.tolist(), "action": actions.tolist()}}


class EpicKitchens100(_RulstmBuilder):
  """EPIC-Kitchens-100 train/validation, the unlabeled test set, and the validation subsets."""

  name = "epic_kitchens_100"
  DATASET = "ek100"
  LABELED_SPLITS = {"train": "training.csv", "validation": "validation.csv"}
  UNLABELED_SPLITS = {"test": "test_timestamps.csv"}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the RULSTM EK100 files in the manual dir: training.csv, validation.csv, test_timestamps.csv,
  actions.csv, validation_tail_{verbs,nouns,actions}_ids.csv,
  validation_unseen_participants_ids.csv and one LMDB directory per modality (rgb/, flow/, obj/).
  """
  # Per-example validation subsets: (flag, file of segment uids). "<subset>_<part>" flags apply to
  # one part's metric, "<subset>" flags to all parts.
  _SUBSETS = (("unseen", "validation_unseen_participants_ids.csv"),
              ("tail_verb", "validation_tail_verbs_ids.csv"),
              ("tail_noun", "validation_tail_nouns_ids.csv"),
              ("tail_action", "validation_tail_actions_ids.csv"))

  def _flag_names(self):
    return tuple(flag for flag, _ in self._SUBSETS)

  def _flags(self, root, split, uids):
    members = {flag: set(rulstm.read_uid_list(self._file(root, name))) if split == "validation" else set()
               for flag, name in self._SUBSETS}
    return {u: {flag: int(u in m) for flag, m in members.items()} for u in uids}

  def _extra_metadata(self, root, vocab):
    return {"eval_flags": list(self._flag_names())}


BUILDERS = {"egtea_gaze_plus": EgteaGazePlus, "epic_kitchens_55": EpicKitchens55,
            "epic_kitchens_100": EpicKitchens100}


def default_manual_dir(name: str, data_dir: str | None) -> str:
  return str(paths.path(data_dir or "~/tensorflow_datasets") / "downloads" / "manual" / name)


def load(name: str, *, data_dir: str | None, manual_dir: str | None, config: RulstmConfig,
         frames_dir: str | None = None):
  """Prepares (once) and returns the builder of dataset `name` for `config`.

  `frames_dir`: the frame folder of a frames config (default: `<manual_dir>/frames`).
  """
  # TFDS refuses a config named like a registered one unless it is that very object; the name encodes
  # every field, so the same name is the same config.
  config = {c.name: c for c in BUILDERS[name].BUILDER_CONFIGS}.get(config.name, config)
  builder = BUILDERS[name](data_dir=data_dir, config=config, file_format="array_record")
  builder.frames_dir = paths.local(frames_dir, "data.frames_dir (JPEG frames)") if frames_dir else None
  if not builder.is_prepared():
    manual_dir = manual_dir or default_manual_dir(name, data_dir)
    if not paths.path(manual_dir).is_dir():
      raise DataError(f"{name}: manual dir {manual_dir} does not exist; put the RULSTM files there "
                      f"(see configs/) or set --config.data.manual_dir")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
