"""TFDS builders of EGTEA Gaze+, EPIC-Kitchens-55 and -100 from the RULSTM files (tests/data/rulstm/fixtures.py).

Fixture recap (see `tests.data.rulstm.fixtures`): in the video at position `v`, segment `j` starts at `16 + 30 j`
(segment 3 shares segment 2's start) and ends `20 + 7 ((j + v) % 3)` frames later; `rgb` (modality 0)
has keys for every frame but `f % 5 == 3`, `obj` (modality 1) for odd frames only; the feature of frame
`f` of modality `i` is `(10000 v + f) (i + 1) + arange(dim) / 8` with dims rgb 6, obj 4. Windows are
`observed_frames`: frame `k` of `T` sits at `(start - 1) - 30 tau_a - (T - 1 - k) 30 / fps`, rounded
half up, plus 1, clamped to 1.
"""

import os
import pathlib
import shutil

import ml_collections
import numpy as np
import pytest

from anticipax.data import datasets
from anticipax.data.rulstm import builders as rulstm_builders
from anticipax.data import windows
from anticipax.data.errors import DataError
from tests.data.rulstm import fixtures as fx

MODALITIES = ("rgb", "obj")
# name -> (fixture dataset, num_frames, fps, tau_a)
WINDOWS = {"egtea_gaze_plus": ("egtea", 4, 2.0, 0.5), "epic_kitchens_55": ("ek55", 4, 2.0, 1.0),
           "epic_kitchens_100": ("ek100", 4, 1.0, 1.0)}


def _config(name, manual_dir, data_dir, modalities=MODALITIES, **overrides):
  _, num_frames, fps, tau_a = WINDOWS[name]
  c = ml_collections.ConfigDict(dict(name=name, modalities=list(modalities), num_frames=num_frames, fps=fps,
                                     tau_a=tau_a, manual_dir=str(manual_dir), tfds_data_dir=str(data_dir)))
  c.update(overrides)
  return c


def _text(value):
  return value.decode() if isinstance(value, bytes) else str(value)


def _examples(builder, split):
  """uid -> example of a prepared split."""
  source = builder.as_data_source(split=split)
  return {_text(source[i]["uid"]): source[i] for i in range(len(source))}


def _csv_rows(path):
  return sum(1 for line in pathlib.Path(path).read_text().splitlines() if line.strip())


class Built:
  """A fixture written to disk and built with the config of WINDOWS[name]."""

  def __init__(self, tmp, name, **fixture_kwargs):
    dataset, self.num_frames, self.fps, self.tau_a = WINDOWS[name]
    self.info = fx.write(dataset, tmp / "manual", **fixture_kwargs)
    self.data_dir = tmp / "tfds"
    self.builder = datasets.builder(_config(name, tmp / "manual", self.data_dir))
    self.segments = {s.uid: s for rows in self.info["segments"].values() for s in rows}

  def split(self, split):
    return _examples(self.builder, split)

  def expected(self, video, frames):
    return fx.expected_features(self.info, MODALITIES, video, frames)


@pytest.fixture(scope="module")
def egtea(tmp_path_factory):
  return Built(tmp_path_factory.mktemp("egtea"), "egtea_gaze_plus")


@pytest.fixture(scope="module")
def ek55(tmp_path_factory):
  return Built(tmp_path_factory.mktemp("ek55"), "epic_kitchens_55")


@pytest.fixture(scope="module")
def ek100(tmp_path_factory):
  return Built(tmp_path_factory.mktemp("ek100"), "epic_kitchens_100")


# -- hand-computed windows -------------------------------------------------------------------------------

def test_egtea_training_window_features_past_and_history(egtea):
  # uid 106: video P01-R01-PastaSalad (v = 0), segment j = 5: start 16 + 150 = 166, training1.
  # fps 2, tau_a 0.5, 4 frames: positions (166 - 1) - 15 - {45, 30, 15, 0} = 105, 120, 135, 150
  # -> frames 106, 121, 136, 151.
  ex = egtea.split("train")["106"]
  assert _text(ex["video"]) == "P01-R01-PastaSalad" and int(ex["start_frame"]) == 166
  frames = [106, 121, 136, 151]
  # rgb: 106 % 5 == 1, 121 % 5 == 1, ... all have keys -> features 106, 121, 136, 151 (times 1).
  # obj (odd frames): 106 -> 107, 121, 136 -> 137, 151 -> features 2 * (107, 121, 137, 151).
  np.testing.assert_array_equal(ex["features"][:, 0], [106, 121, 136, 151])
  np.testing.assert_array_equal(ex["features"][:, 6], [214, 242, 274, 302])
  np.testing.assert_array_equal(ex["features"][0], [106, 106.125, 106.25, 106.375, 106.5, 106.625,
                                                    214, 214.125, 214.25, 214.375])
  np.testing.assert_array_equal(ex["features"], egtea.expected("P01-R01-PastaSalad", frames))
  # Training segments of this video (training1.csv): 1 (16-36, a0), 43 (76-110, a4), 64 (76-96, a1),
  # 106 (166-200, a5); validation1.csv has 22 (46-73, a7) and 85 (136-163, a8).
  # Frame 106: only 43 covers it -> 4. Frames 121, 136, 151: no training segment (85 covers 136 and 151
  # but is a validation segment) -> -1. With validation leaking it would read [4, -1, 8, 8].
  np.testing.assert_array_equal(ex["past_actions"], [4, -1, -1, -1])
  # History: training segments starting before 166, by (start, uid): 1 (a0), 43 (a4), 64 (a1).
  # Not 22 (a7) nor 85 (a8), which are validation-only.
  np.testing.assert_array_equal(ex["history"], [0, 4, 1])
  assert (int(ex["action"]), int(ex["verb"]), int(ex["noun"])) == (5, 5, 2)  # (5, 2, Put_eating:utensil)


def test_egtea_validation_window_sees_training_and_validation_past(egtea):
  # uid 85: P01-R01-PastaSalad, j = 4, start 136, validation1. Positions 135 - 15 - {45, 30, 15, 0} =
  # 75, 90, 105, 120 -> frames 76, 91, 106, 121.
  ex = egtea.split("validation")["85"]
  np.testing.assert_array_equal(ex["features"][:, 0], [76, 91, 106, 121])
  # obj: 76 -> 77, 91, 106 -> 107, 121 -> 2 * (77, 91, 107, 121).
  np.testing.assert_array_equal(ex["features"][:, 6], [154, 182, 214, 242])
  np.testing.assert_array_equal(ex["features"], egtea.expected("P01-R01-PastaSalad", [76, 91, 106, 121]))
  # Frames 76 and 91: 43 (76-110, a4) and 64 (76-96, a1) start together; the later row (64) wins -> 1.
  # Frame 106: 43 only -> 4. Frame 121: nothing.
  np.testing.assert_array_equal(ex["past_actions"], [1, 1, 4, -1])
  # History before 136 over training + validation: 1 (16, a0), 22 (46, a7), 43 (76, a4), 64 (76, a1).
  np.testing.assert_array_equal(ex["history"], [0, 7, 4, 1])
  assert int(ex["action"]) == 8


def test_egtea_early_segments_repeat_the_first_frame(egtea):
  # uid 1: start 16 -> positions 15 - 15 - {45, 30, 15, 0} = -45, -30, -15, 0 -> frames -44, -29, -14, 1,
  # clamped to 1, 1, 1, 1: every row is frame 1 (rgb 1, obj 2 * 1).
  ex = egtea.split("train")["1"]
  np.testing.assert_array_equal(ex["features"], np.tile(
      [1, 1.125, 1.25, 1.375, 1.5, 1.625, 2, 2.125, 2.25, 2.375], (4, 1)).astype(np.float32))
  np.testing.assert_array_equal(ex["past_actions"], [-1, -1, -1, -1])
  assert ex["history"].shape == (0,)
  # uid 22 (validation): start 46 -> 45 - 15 - {45, ...} = -15, 0, 15, 30 -> frames -14 -> 1, 1, 16, 31.
  # rgb 16 has a key; obj 16 does not -> 17 (value 34).
  ex = egtea.split("validation")["22"]
  np.testing.assert_array_equal(ex["features"][:, 0], [1, 1, 16, 31])
  np.testing.assert_array_equal(ex["features"][:, 6], [2, 2, 34, 62])
  np.testing.assert_array_equal(ex["features"], egtea.expected("P01-R01-PastaSalad", [1, 1, 16, 31]))
  # Frames 16 and 31 are in uid 1 (16-36, a0): it is a training segment, seen by validation examples.
  np.testing.assert_array_equal(ex["past_actions"], [-1, -1, 0, 0])
  np.testing.assert_array_equal(ex["history"], [0])


def test_ek55_windows_ties_and_history(ek55):
  # 00103: P01_01 (v = 0), j = 3, start 76 (= j = 2's start), training. fps 2, tau_a 1:
  # positions 75 - 30 - {45, 30, 15, 0} = 0, 15, 30, 45 -> frames 1, 16, 31, 46 (0 rounds to frame 1
  # exactly: not a clamp).
  train = ek55.split("train")
  for uid in ("00102", "00103"):
    ex = train[uid]
    # rgb keys 1, 16, 31, 46; obj keys 1, 17, 31, 47 (-> 2, 34, 62, 94).
    np.testing.assert_array_equal(ex["features"][:, 0], [1, 16, 31, 46])
    np.testing.assert_array_equal(ex["features"][:, 6], [2, 34, 62, 94])
    np.testing.assert_array_equal(ex["features"], ek55.expected("P01_01", [1, 16, 31, 46]))
    # Frame 1: nothing; 16, 31: 00100 (16-36, a0); 46: 00101 (46-73, a7).
    np.testing.assert_array_equal(ex["past_actions"], [-1, 0, 0, 7])
    # Strictly before 76: 00100 (a0), 00101 (a7); the tied segment (00102 / 00103) is not history.
    np.testing.assert_array_equal(ex["history"], [0, 7])
  assert [int(train["00103"][k]) for k in ("action", "verb", "noun")] == [1, 0, 4]  # take_fridge
  # 00109: P01_02 (v = 1, a validation video), start 76 -> frames 1, 16, 31, 46 again, but features of
  # v = 1: rgb 10000 + f, obj 2 * (10000 + f) at keys 1, 17, 31, 47.
  ex = ek55.split("validation")["00109"]
  np.testing.assert_array_equal(ex["features"][:, 0], [10001, 10016, 10031, 10046])
  np.testing.assert_array_equal(ex["features"][:, 6], [20002, 20034, 20062, 20094])
  # 00106 (16-43, a3) covers 16 and 31; 00107 (46-80, a0) covers 46.
  np.testing.assert_array_equal(ex["past_actions"], [-1, 3, 3, 0])
  np.testing.assert_array_equal(ex["history"], [3, 0])


def test_ek100_windows(ek100):
  # P01_01_5: P01_01 (v = 0), start 166, training. fps 1, tau_a 1: positions 165 - 30 - {90, 60, 30, 0}
  # = 45, 75, 105, 135 -> frames 46, 76, 106, 136; obj keys 47, 77, 107, 137.
  ex = ek100.split("train")["P01_01_5"]
  np.testing.assert_array_equal(ex["features"][:, 0], [46, 76, 106, 136])
  np.testing.assert_array_equal(ex["features"][:, 6], [94, 154, 214, 274])
  np.testing.assert_array_equal(ex["features"], ek100.expected("P01_01", [46, 76, 106, 136]))
  # 46: _1 (46-73, a7); 76: _2 (76-110, a5) and _3 (76-96, a3) tie, the later row _3 wins -> 3;
  # 106: _2 -> 5; 136: _4 (136-163, a1).
  np.testing.assert_array_equal(ex["past_actions"], [7, 3, 5, 1])
  # By (start, uid): _0 a0, _1 a7, _2 a5, _3 a3, _4 a1.
  np.testing.assert_array_equal(ex["history"], [0, 7, 5, 3, 1])
  # P01_01_1: start 46 -> 45 - 30 - {90, 60, 30, 0} = -75, -45, -15, 15 -> frames 1, 1, 1, 16.
  ex = ek100.split("train")["P01_01_1"]
  np.testing.assert_array_equal(ex["features"][:, 0], [1, 1, 1, 16])
  np.testing.assert_array_equal(ex["features"][:, 6], [2, 2, 2, 34])
  np.testing.assert_array_equal(ex["past_actions"], [-1, -1, -1, 0])
  np.testing.assert_array_equal(ex["history"], [0])


def test_window_past_the_last_key_and_over_a_missing_key(tmp_path):
  # Two extra test_unseen rows in P31_01 (the video at position 5 of the EK55 fixture; its last segment
  # j = 5 starts 166 and ends 166 + 20 + 7 * ((5 + 5) % 3) = 193, so the video ends at 205):
  # - 00998 starts 400: positions 399 - 30 - {45, 30, 15, 0} = 324, 339, 354, 369 -> frames 325 .. 370, all
  #   past the end -> the last key: rgb 205 (205 % 5 == 0), obj 205 (odd).
  # - 00999 starts 44: 43 - 30 - {45, ...} = -32, -17, -2, 13 -> frames 1, 1, 1, 14: rgb 14, obj 15.
  # - 00997 starts 43: frames 1, 1, 1, 13: rgb has no 13 (13 % 5 == 3) -> 14; obj 13.
  manual = tmp_path / "manual"
  info = fx.write_ek55(manual)
  assert info["videos"][5] == "P31_01" and info["frames"]["rgb"]["P31_01"][-1] == 205
  with open(manual / "test_unseen.csv", "a") as f:
    f.write("00997, P31_01, 0000000043, 0000000050\n00998, P31_01, 0000000400, 0000000420\n"
            "00999, P31_01, 0000000044, 0000000060\n")
  examples = _examples(datasets.builder(_config("epic_kitchens_55", manual, tmp_path / "tfds")), "test_unseen")
  assert len(examples) == 6 + 3
  base = 50000  # 10000 * 5
  for uid, rgb, obj in (("00998", [205] * 4, [205] * 4), ("00999", [1, 1, 1, 14], [1, 1, 1, 15]),
                        ("00997", [1, 1, 1, 14], [1, 1, 1, 13])):
    ex = examples[uid]
    np.testing.assert_array_equal(ex["features"][:, 0], np.add(base, rgb), err_msg=uid)
    np.testing.assert_array_equal(ex["features"][:, 6], 2 * np.add(base, obj), err_msg=uid)
  np.testing.assert_array_equal(examples["00998"]["features"],
                                fx.expected_features(info, MODALITIES, "P31_01", [325, 340, 355, 370]))


# -- every example against the fixture's lists -----------------------------------------------------------

def _expected_past_and_history(context, s, frames):
  """Reference for one example: `context` = the labeled segments it may see, in builder input order."""
  same = [c for c in context if c.video == s.video]
  past = []
  for f in frames:
    covering = [(c.start_frame, k, c.action) for k, c in enumerate(same) if c.start_frame <= f <= c.end_frame]
    past.append(max(covering)[2] if covering and f < s.start_frame else -1)
  history = [c.action for c in sorted(same, key=lambda c: (c.start_frame, c.uid)) if c.start_frame < s.start_frame]
  return past, history


CASES = {  # name -> (fixture, {split: (segment csv, context csvs)})
    "egtea_gaze_plus": ("egtea", {"train": ("training1.csv", ("training1.csv",)),
                                  "validation": ("validation1.csv", ("training1.csv", "validation1.csv"))}),
    "epic_kitchens_55": ("ek55", {"train": ("training.csv", ("training.csv",)),
                                  "validation": ("validation.csv", ("training.csv", "validation.csv")),
                                  "test_seen": ("test_seen.csv", ("training.csv",)),
                                  "test_unseen": ("test_unseen.csv", ("training.csv",))}),
    "epic_kitchens_100": ("ek100", {"train": ("training.csv", ("training.csv",)),
                                    "validation": ("validation.csv", ("training.csv", "validation.csv")),
                                    "test": ("test_timestamps.csv", ("training.csv",))}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_example_matches_the_fixture(name, request):
  built = request.getfixturevalue(CASES[name][0])
  files = built.info["segments"]
  assert set(built.builder.info.splits) == set(CASES[name][1])
  for split, (csv, context_files) in CASES[name][1].items():
    examples = built.split(split)
    # One example per CSV row, with the row's labels (-1 in the unlabeled test files).
    assert len(examples) == _csv_rows(built.info["root"] / csv) == len(files[csv]), split
    assert built.builder.info.splits[split].num_examples == len(files[csv])
    context = [c for f in context_files for c in files[f]]
    for s in files[csv]:
      ex = examples[s.uid]
      assert _text(ex["video"]) == s.video and int(ex["start_frame"]) == s.start_frame
      assert [int(ex[k]) for k in ("action", "verb", "noun")] == [s.action, s.verb, s.noun], s.uid
      frames, _ = windows.observed_frames(s.start_frame, num_frames=built.num_frames, fps=built.fps,
                                          tau_a=built.tau_a)
      np.testing.assert_array_equal(ex["features"], built.expected(s.video, frames), err_msg=s.uid)
      assert ex["features"].dtype == np.float32 and ex["features"].shape == (built.num_frames, 10)
      past, history = _expected_past_and_history(context, s, frames)
      np.testing.assert_array_equal(ex["past_actions"], past, err_msg=f"{split} {s.uid}")
      np.testing.assert_array_equal(ex["history"], history, err_msg=f"{split} {s.uid}")


@pytest.mark.parametrize("name", ["egtea_gaze_plus", "epic_kitchens_100"])
def test_training_examples_never_see_validation_segments(name, request):
  # EGTEA interleaves training and validation segments within every video, so a builder that took the
  # past from all annotations would differ on many training examples; prove the fixture would catch it.
  built = request.getfixturevalue(CASES[name][0])
  files = built.info["segments"]
  train_csv, val_csv = ("training1.csv", "validation1.csv") if name == "egtea_gaze_plus" else (
      "training.csv", "validation.csv")
  train, val = files[train_csv], files[val_csv]
  examples = built.split("train")
  leaky_examples = 0
  for s in train:
    frames, _ = windows.observed_frames(s.start_frame, num_frames=built.num_frames, fps=built.fps,
                                        tau_a=built.tau_a)
    clean = _expected_past_and_history(train, s, frames)
    leaky = _expected_past_and_history(train + val, s, frames)
    np.testing.assert_array_equal(examples[s.uid]["past_actions"], clean[0])
    np.testing.assert_array_equal(examples[s.uid]["history"], clean[1])
    leaky_examples += clean != leaky
  if name == "egtea_gaze_plus":
    assert leaky_examples >= 6  # of 12: the check above has teeth
    # And the validation segments' own ids: no training history lists a validation-only action of its
    # video (actions present only in that video's validation rows).
    for s in train:
      val_only = ({v.action for v in val if v.video == s.video}
                  - {t.action for t in train if t.video == s.video})
      assert not val_only & set(examples[s.uid]["history"].tolist()), s.uid
      assert not val_only & set(examples[s.uid]["past_actions"].tolist()), s.uid


def test_egtea_other_split_reads_its_own_files(tmp_path):
  manual = tmp_path / "manual"
  info = fx.write_egtea(manual, splits=(2,))
  builder = datasets.builder(_config("egtea_gaze_plus", manual, tmp_path / "tfds", split=2))
  assert sorted(_examples(builder, "train")) == sorted(s.uid for s in info["segments"]["training2.csv"])
  assert sorted(_examples(builder, "validation")) == sorted(s.uid for s in info["segments"]["validation2.csv"])


# -- metadata --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(CASES))
def test_vocabulary_metadata(name, request):
  built = request.getfixturevalue(CASES[name][0])
  meta = built.builder.info.metadata
  info = built.info
  assert meta["actions"] == [[v, n] for _, v, n, _ in info["actions"]]
  assert meta["action_names"] == [a for _, _, _, a in info["actions"]]
  assert meta["verbs"] == list(info["verb_names"]) and meta["nouns"] == list(info["noun_names"])
  assert meta["feature_dim"] == 6 + 4
  split_info = datasets.info_from_metadata(meta, built.split("train")[next(iter(built.split("train")))])
  assert (split_info.num_classes, split_info.feature_dim, split_info.num_frames) == (len(info["actions"]), 10, 4)


def test_names_as_read_from_each_actions_csv(egtea, ek55, ek100):
  # Hand-picked rows: EGTEA "2, 2_2, Take_eating:utensil", EK55 "7, transfer_curry:fish,5,3",
  # EK100 "4,3,3,wash board:chopping".
  m = egtea.builder.info.metadata
  assert m["actions"][2] == [2, 2] and m["action_names"][2] == "Take_eating:utensil"
  assert m["nouns"][2] == "eating utensil" and m["verbs"][4] == "Turn on"
  m = ek55.builder.info.metadata
  assert m["actions"][7] == [5, 3] and m["nouns"][3] == "fish curry" and m["verbs"][0] == "take"  # not "get"
  assert m["nouns"][2] == ""  # no action uses noun 2
  m = ek100.builder.info.metadata
  assert m["actions"][4] == [3, 3] and m["nouns"][3] == "chopping board" and m["verbs"][3] == "wash"


def test_ek55_many_shot_metadata_uses_the_or_rule(ek55):
  meta = ek55.builder.info.metadata["many_shot"]
  assert meta["verb"] == [0, 1, 2] and meta["noun"] == [1, 4]
  # Actions (verb, noun): 0 (0,1) v; 1 (0,4) v+n; 2 (0,3) v; 3 (1,1) v+n; 4 (2,4) v+n; 5 (3,5) no;
  # 6 (4,1) n; 7 (5,3) no; 8 (6,0) no; 9 (7,4) n.
  assert meta["action"] == [0, 1, 2, 3, 4, 6, 9]
  info = datasets.info_from_metadata(ek55.builder.info.metadata, ek55.split("train")["00100"])
  np.testing.assert_array_equal(info.many_shot["action"], [0, 1, 2, 3, 4, 6, 9])
  assert info.eval_flags == ()


def test_ek100_eval_flags_only_on_listed_validation_uids(ek100):
  flags = ("unseen", "tail_verb", "tail_noun", "tail_action")
  assert ek100.builder.info.metadata["eval_flags"] == list(flags)
  lists = ek100.info["lists"]
  members = {"unseen": set(lists["validation_unseen_participants_ids.csv"]),
             "tail_verb": set(lists["validation_tail_verbs_ids.csv"]),
             "tail_noun": set(lists["validation_tail_nouns_ids.csv"]),
             "tail_action": set(lists["validation_tail_actions_ids.csv"])}
  # From the fixture: P32_01 is the unseen participant's video; tails are verb >= 4, noun >= 4, action >= 6.
  assert members["unseen"] == {f"P32_01_{j}" for j in range(6)}
  assert members["tail_verb"] == {"P01_02_3", "P32_01_1"}
  validation = ek100.split("validation")
  for uid, ex in validation.items():
    for flag in flags:
      assert int(ex[flag]) == int(uid in members[flag]), (uid, flag)
  assert sum(int(ex["tail_noun"]) for ex in validation.values()) == len(members["tail_noun"]) == 3
  for split in ("train", "test"):
    for uid, ex in ek100.split(split).items():
      assert all(int(ex[flag]) == 0 for flag in flags), (split, uid)


def test_unlabeled_test_splits(ek55, ek100):
  for built, split, csv, n in ((ek55, "test_seen", "test_seen.csv", 6), (ek55, "test_unseen", "test_unseen.csv", 6),
                               (ek100, "test", "test_timestamps.csv", 6)):
    examples = built.split(split)
    assert len(examples) == n == _csv_rows(built.info["root"] / csv)
    assert sorted(examples) == sorted(s.uid for s in built.info["segments"][csv])
    for ex in examples.values():
      assert [int(ex[k]) for k in ("action", "verb", "noun")] == [-1, -1, -1]
      # Test videos have no training segments: nothing in the past.
      assert ex["history"].shape == (0,) and (ex["past_actions"] == -1).all()
  # EK55 uids keep their zero padding in the dataset (the submission strips it).
  assert "00124" in ek55.split("test_seen")


def test_modalities_are_concatenated_in_config_order(tmp_path):
  # obj first, then rgb, from directories whose keys differ: obj odd frames, rgb all but f % 5 == 3.
  manual = tmp_path / "manual"
  info = fx.write_ek55(manual)
  builder = datasets.builder(_config("epic_kitchens_55", manual, tmp_path / "tfds", modalities=("obj", "rgb")))
  ex = _examples(builder, "train")["00103"]
  # Frames 1, 16, 31, 46 (see test_ek55_windows_ties_and_history): obj 2 * (1, 17, 31, 47) in columns 0-3.
  np.testing.assert_array_equal(ex["features"][:, 0], [2, 34, 62, 94])
  np.testing.assert_array_equal(ex["features"][:, 4], [1, 16, 31, 46])
  np.testing.assert_array_equal(ex["features"], fx.expected_features(info, ("obj", "rgb"), "P01_01", [1, 16, 31, 46]))
  assert builder.info.metadata["feature_dim"] == 10


def test_single_modality(tmp_path):
  manual = tmp_path / "manual"
  info = fx.write_ek100(manual, modalities=("rgb",), dims={"rgb": 3})
  builder = datasets.builder(_config("epic_kitchens_100", manual, tmp_path / "tfds", modalities=("rgb",)))
  ex = _examples(builder, "train")["P01_01_5"]
  np.testing.assert_array_equal(ex["features"], fx.expected_features(info, ("rgb",), "P01_01", [46, 76, 106, 136]))
  assert ex["features"].shape == (4, 3)


# -- bad input -------------------------------------------------------------------------------------------

def _assert_nothing_prepared(name, data_dir, **config_overrides):
  """No dataset_info.json, no incomplete dir, and a new builder instance is not prepared."""
  cfg = _config(name, "unused", data_dir, **config_overrides)
  config = rulstm_builders.make_config(split_id=cfg.get("split", 1), modalities=tuple(cfg.modalities),
                                       num_frames=cfg.num_frames, fps=cfg.fps, tau_a=cfg.tau_a)
  builder = rulstm_builders.BUILDERS[name](data_dir=str(data_dir), config=config, file_format="array_record")
  assert not builder.is_prepared()
  left = [os.path.join(root, f) for root, dirs, files in os.walk(data_dir) for f in dirs + files]
  assert not [p for p in left if os.path.basename(p) == "dataset_info.json"], left
  assert not [p for p in left if "incomplete" in os.path.basename(p)], left
  assert not [p for p in left if p.endswith(".array_record") or "array_record-" in p], left


@pytest.mark.parametrize("name, missing", [
    ("egtea_gaze_plus", "validation1.csv"),
    ("epic_kitchens_55", "test_unseen.csv"),
    ("epic_kitchens_55", "EPIC_many_shot_nouns.csv"),
    ("epic_kitchens_100", "validation_tail_nouns_ids.csv"),
    ("epic_kitchens_100", "actions.csv"),
])
def test_missing_csv_names_the_path(tmp_path, name, missing):
  manual = tmp_path / "manual"
  fx.write(WINDOWS[name][0], manual)
  (manual / missing).unlink()
  with pytest.raises(DataError, match="missing") as e:
    datasets.builder(_config(name, manual, tmp_path / "tfds"))
  assert str(manual / missing) in str(e.value)
  _assert_nothing_prepared(name, tmp_path / "tfds")


def test_malformed_row_names_file_line_and_field_and_leaves_nothing(tmp_path):
  manual = tmp_path / "manual"
  fx.write_ek55(manual)
  path = manual / "training.csv"
  lines = path.read_text().splitlines()
  assert lines[2] == "00102, P01_01, 0000000076, 0000000110, 002, 004, 0004"
  lines[2] = "00102, P01_01, 00000007b6, 0000000110, 002, 004, 0004"
  path.write_text("\n".join(lines) + "\n")
  cfg = _config("epic_kitchens_55", manual, tmp_path / "tfds")
  with pytest.raises(DataError) as e:
    datasets.builder(cfg)
  assert str(e.value) == f"{path}:3: field 'start_frame': expected an integer, got '00000007b6'"
  _assert_nothing_prepared("epic_kitchens_55", tmp_path / "tfds")
  # Once the file is fixed, the same data dir builds.
  lines[2] = "00102, P01_01, 0000000076, 0000000110, 002, 004, 0004"
  path.write_text("\n".join(lines) + "\n")
  assert datasets.builder(cfg).info.splits["train"].num_examples == 12


def test_label_outside_the_vocabulary_names_file_uid_and_field(tmp_path):
  manual = tmp_path / "manual"
  fx.write_ek100(manual)
  with open(manual / "validation.csv", "a") as f:
    f.write("P99_01_0,P01_02,300,320,0,1,42\n")
  with pytest.raises(DataError) as e:
    datasets.builder(_config("epic_kitchens_100", manual, tmp_path / "tfds"))
  assert str(manual / "validation.csv") in str(e.value)
  assert "'P99_01_0'" in str(e.value) and "field 'action'" in str(e.value)
  _assert_nothing_prepared("epic_kitchens_100", tmp_path / "tfds")


def test_missing_modality_directory(tmp_path):
  manual = tmp_path / "manual"
  fx.write_egtea(manual)
  shutil.rmtree(manual / "obj")
  with pytest.raises(DataError) as e:
    datasets.builder(_config("egtea_gaze_plus", manual, tmp_path / "tfds"))
  assert str(manual / "obj") in str(e.value) and "'obj'" in str(e.value) and "does not exist" in str(e.value)
  _assert_nothing_prepared("egtea_gaze_plus", tmp_path / "tfds")


def test_video_without_keys_names_the_video(tmp_path):
  manual = tmp_path / "manual"
  fx.write_ek55(manual)
  with open(manual / "training.csv", "a") as f:  # a labeled row of a video no LMDB has
    f.write("00999, P09_09, 0000000300, 0000000320, 000, 001, 0000\n")
  with pytest.raises(DataError) as e:
    datasets.builder(_config("epic_kitchens_55", manual, tmp_path / "tfds"))
  assert "'P09_09'" in str(e.value) and str(manual / "rgb") in str(e.value)
  _assert_nothing_prepared("epic_kitchens_55", tmp_path / "tfds")


def test_video_missing_from_one_modality_only(tmp_path):
  # obj has every video but P01_02; rgb has them all: the error names obj's directory.
  manual = tmp_path / "manual"
  info = fx.write_ek55(manual)
  shutil.rmtree(manual / "obj")
  v = info["videos"]
  items = {f"{video}_frame_{f:010d}.jpg": fx.feature(i, int(f), 1, 4)
           for i, video in enumerate(v) if video != "P01_02" for f in info["frames"]["obj"][video]}
  fx.lmdb_features.write_lmdb(manual / "obj", items)
  with pytest.raises(DataError) as e:
    datasets.builder(_config("epic_kitchens_55", manual, tmp_path / "tfds"))
  assert "'P01_02'" in str(e.value) and str(manual / "obj") in str(e.value)


def test_missing_manual_dir(tmp_path):
  with pytest.raises(DataError) as e:
    datasets.builder(_config("egtea_gaze_plus", tmp_path / "nowhere", tmp_path / "tfds"))
  assert str(tmp_path / "nowhere") in str(e.value) and "does not exist" in str(e.value)


def test_a_config_named_like_the_registered_default_loads(tmp_path):
  """EK100's recipe (rgb, 10 frames at 1 fps, 1 s ahead) is the builders' registered default config:
  TFDS refuses an equal-named new object, so `load` must hand over the registered one."""
  from tests.data.rulstm import fixtures as fixtures  # pylint: disable=g-import-not-at-top
  fixtures.write_ek100(tmp_path / "manual", num_videos=4, segments_per_video=4, modalities=("rgb",))
  config = rulstm_builders.make_config(modalities=("rgb",), num_frames=10, fps=1.0, tau_a=1.0)
  builder = rulstm_builders.load("epic_kitchens_100", data_dir=str(tmp_path / "tfds"),
                                 manual_dir=str(tmp_path / "manual"), config=config)
  assert builder.builder_config.name == config.name and len(builder.as_data_source("train")) > 0
