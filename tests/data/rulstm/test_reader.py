"""RULSTM annotation CSVs: segments, action vocabularies, class and uid lists, action history."""

import dataclasses

import numpy as np
import pytest

from anticipax.data.rulstm import reader as rulstm
from anticipax.data.errors import DataError
from anticipax.data.rulstm.reader import Segment
from tests.data.rulstm import fixtures as fx


def _file(tmp_path, text, name="data.csv"):
  path = tmp_path / name
  path.write_text(text, encoding="utf-8")
  return path


# Segments.

def test_examples_of_each_dataset_parse(tmp_path):
  # The example rows of DATA_FORMATS.md: plain, spaces + zero padding, string uid.
  assert rulstm.read_segments(_file(tmp_path, "2,P07-R01-PastaSalad,2751,2808,2,2,2\n")) == [
      Segment("2", "P07-R01-PastaSalad", 2751, 2808, 2, 2, 2)]
  assert rulstm.read_segments(_file(tmp_path, "00330, P01_02, 0000000152, 0000000205, 000, 004, 0194\n")) == [
      Segment("00330", "P01_02", 152, 205, 0, 4, 194)]
  assert rulstm.read_segments(_file(tmp_path, "P01_01_1,P01_01,131,185,6,114,3331\n")) == [
      Segment("P01_01_1", "P01_01", 131, 185, 6, 114, 3331)]


def test_unlabeled_rows_have_minus_one_labels(tmp_path):
  path = _file(tmp_path, "01924, P01_11, 0000000001, 0000000056\n\n01925, P01_11, 0000000046, 0000000073\n")
  segments = rulstm.read_segments(path)
  assert segments == [Segment("01924", "P01_11", 1, 56, -1, -1, -1), Segment("01925", "P01_11", 46, 73, -1, -1, -1)]
  assert not segments[0].labeled
  assert rulstm.read_segments(path, labeled=False) == segments


@pytest.mark.parametrize("dataset", ["egtea", "ek55", "ek100"])
def test_fixture_files_read_back(tmp_path, dataset):
  info = fx.write(dataset, tmp_path)
  for name, expected in info["segments"].items():
    segments = rulstm.read_segments(tmp_path / name)
    assert segments == expected, name
    assert all(isinstance(s.uid, str) and isinstance(s.start_frame, int) for s in segments)
  vocab = rulstm.read_actions(tmp_path / "actions.csv", dataset)
  np.testing.assert_array_equal(vocab.actions, [(v, n) for _, v, n, _ in info["actions"]])
  assert vocab.action_names == tuple(name for *_, name in info["actions"])
  assert vocab.verb_names == info["verb_names"]
  assert vocab.noun_names == info["noun_names"]
  for name, segments in info["segments"].items():
    vocab.check(segments, tmp_path / name)


def test_ek55_quirks(tmp_path):
  fx.write_ek55(tmp_path)
  first = rulstm.read_segments(tmp_path / "training.csv")[0]
  assert first == Segment("00100", "P01_01", 16, 36, 0, 1, 0)  # Zero-padded uid kept as written.
  seen = rulstm.read_segments(tmp_path / "test_seen.csv")
  assert seen[0] == Segment("00124", "P01_11", 16, 43)
  assert all(s.verb == s.noun == s.action == -1 for s in seen)


def test_ek100_string_uids_in_file_order(tmp_path):
  fx.write_ek100(tmp_path, segments_per_video=12)
  uids = [s.uid for s in rulstm.read_segments(tmp_path / "training.csv")]
  assert uids[:4] == ["P01_01_0", "P01_01_1", "P01_01_10", "P01_01_11"]
  test = rulstm.read_segments(tmp_path / "test_timestamps.csv")
  assert test[0] == Segment("P33_01_0", "P33_01", 16, 43)


_SEGMENT_ERRORS = [
    # (file content, read_segments kwargs, substrings of the message after the file name)
    ("1,v,10,20,0,0,0\n2,v,30,40,0,0\n", {}, [":2:", "expected 7 fields", "got 6"]),
    ("1,v,10,20,0,0,0\n2,v,30,40\n", {}, [":2:", "expected 7 fields", "got 4"]),
    ("1,v,10,20,0\n", {}, [":1:", "expected 7 fields", "or 4", "got 5"]),
    ("1,v,10,20\n", {"labeled": True}, [":1:", "expected 7 fields", "got 4"]),
    ("1,v,10,20,0,0,0\n", {"labeled": False}, [":1:", "expected 4 fields", "got 7"]),
    ("1,v,10,20,0,0,0\n\n2,v,1.5,40,0,0,0\n", {}, [":3:", "field 'start_frame'", "'1.5'"]),
    ("1,v,10,2_0,0,0,0\n", {}, [":1:", "field 'end_frame'", "'2_0'"]),
    ("1,v,10,20,x,0,0\n", {}, [":1:", "field 'verb'", "'x'"]),
    ("1,v,10,20,0,0,\n", {}, [":1:", "field 'action'", "''"]),
    ("1,v,30,20,0,0,0\n", {}, [":1:", "field 'end_frame'", "20 is before start_frame 30"]),
    ("1,v,0,20,0,0,0\n", {}, [":1:", "field 'start_frame'", "1-based, got 0"]),
    ("1,v,10,20,0,-3,0\n", {}, [":1:", "field 'noun'", "negative label -3"]),
    ("7,v,10,20,0,0,0\n8,v,10,20,0,0,0\n 7 ,w,10,20,0,0,0\n", {}, [":3:", "field 'uid'", "duplicate uid '7'",
                                                                   "line 1"]),
    (",v,10,20,0,0,0\n", {}, [":1:", "field 'uid'", "empty"]),
]


@pytest.mark.parametrize("text, kwargs, parts", _SEGMENT_ERRORS)
def test_segment_errors_name_file_line_and_field(tmp_path, text, kwargs, parts):
  path = _file(tmp_path, text, "training.csv")
  with pytest.raises(DataError) as e:
    rulstm.read_segments(path, **kwargs)
  message = str(e.value)
  assert message.startswith(str(path) + ":"), message
  for part in parts:
    assert part in message, (part, message)


def test_missing_file_is_a_data_error(tmp_path):
  with pytest.raises(DataError, match="missing.csv"):
    rulstm.read_segments(tmp_path / "missing.csv")


# Action vocabularies.

def test_egtea_names(tmp_path):
  fx.write_egtea(tmp_path)
  vocab = rulstm.read_actions(tmp_path / "actions.csv", "egtea")
  assert (vocab.num_actions, vocab.num_verbs, vocab.num_nouns) == (10, 7, 7)
  assert vocab.action_names[7] == "Open_cheese:container"
  assert tuple(vocab.actions[7]) == (1, 5)
  assert vocab.noun_names[5] == "cheese container"
  assert vocab.verb_names[0] == "Inspect/Read"  # `/` kept.
  assert vocab.verb_names[4] == "Turn on"
  assert vocab.actions.dtype == np.int32 and vocab.actions.shape == (10, 2)


def test_egtea_one_based_file_maps_to_the_segment_ids(tmp_path):
  fx.write_egtea(tmp_path)
  zero = rulstm.read_actions(tmp_path / "actions.csv", "egtea")
  one_based = [f"{i + 1}, {v + 1}_{n + 1}, {name}" for i, v, n, name in
               [(i, v, n, name) for i, (v, n, name) in enumerate(fx.EGTEA_ACTIONS)]]
  one = rulstm.read_actions(_file(tmp_path, "\n".join(reversed(one_based)) + "\n", "actions1.csv"), "egtea")
  np.testing.assert_array_equal(one.actions, zero.actions)
  assert (one.action_names, one.verb_names, one.noun_names) == (zero.action_names, zero.verb_names, zero.noun_names)


def test_ek55_names(tmp_path):
  fx.write_ek55(tmp_path)
  vocab = rulstm.read_actions(tmp_path / "actions.csv", "ek55")
  assert vocab.action_names[7] == "transfer_curry:fish"
  assert vocab.noun_names[3] == "fish curry"
  assert vocab.noun_names[5] == "measuring jug"
  assert vocab.verb_names[0] == "take"  # The first name seen; `get_curry:fish` comes later.
  assert vocab.verb_names[3] == "pick-up"
  assert vocab.noun_names[2] == ""  # No action uses noun 2.
  assert (vocab.num_verbs, vocab.num_nouns) == (8, 6)


def test_ek_names_from_literal_rows(tmp_path):
  ek55 = rulstm.read_actions(_file(tmp_path, "id,action,verb,noun\n0, take_pan,0,1\n1, take_fridge,0,10\n"), "ek55")
  assert ek55.noun_names[10] == "fridge" and ek55.noun_names[1] == "pan" and ek55.num_nouns == 11
  ek100 = rulstm.read_actions(_file(tmp_path, "id,verb,noun,action\n0,0,0,take tap\n1,0,1,take spoon\n"
                                    "2,3,2,wash board:chopping\n"), "ek100")
  assert ek100.action_names == ("take tap", "take spoon", "wash board:chopping")
  assert ek100.verb_names == ("take", "", "", "wash")
  assert ek100.noun_names == ("tap", "spoon", "chopping board")


def test_vocabulary_is_frozen(tmp_path):
  fx.write_ek100(tmp_path)
  vocab = rulstm.read_actions(tmp_path / "actions.csv", "ek100")
  with pytest.raises(dataclasses.FrozenInstanceError):
    vocab.verb_names = ()
  with pytest.raises(ValueError):
    vocab.actions[0, 0] = 5


_ACTIONS_ERRORS = [
    ("egtea", "0, 0_0, Open_fridge\n1, 1-1, Take_bowl\n", [":2:", "field 'verb_noun'", "'1-1'"]),
    ("egtea", "0, 0_0, Open_fridge\n1, 1_x, Take_bowl\n", [":2:", "field 'verb_noun'", "'x'"]),
    ("egtea", "0, 0_0, Openfridge\n", [":1:", "field 'Name'", "'Openfridge'"]),
    ("egtea", "0, 0_0, Open_fridge, extra\n", [":1:", "expected 3 fields"]),
    ("egtea", "0, 0_0, Open_fridge\n0, 1_1, Take_bowl\n", [":2:", "field 'id'", "duplicate action id 0", "line 1"]),
    ("egtea", "0, 0_0, Open_fridge\n2, 1_1, Take_bowl\n", ["field 'id'", "0..1 without gaps", "missing [1]"]),
    ("egtea", "2, 0_0, Open_fridge\n3, 1_1, Take_bowl\n", [":1:", "field 'id'", "start at 0 (or 1)"]),
    ("egtea", "1, 0_1, Open_fridge\n", [":1:", "field 'verb_noun'", "negative id -1"]),
    ("ek55", "id,verb,noun,action\n0,0,0,take tap\n", [":1:", "field 'header'", "'id,action,verb,noun'"]),
    ("ek55", "id,action,verb,noun\n1, take_pan,0,1\n", [":2:", "field 'id'", "start at 0,"]),
    ("ek55", "id,action,verb,noun\n0, take pan,0,1\n", [":2:", "field 'action'", "'take pan'"]),
    ("ek55", "id,action,verb,noun\n0, take_pan,zero,1\n", [":2:", "field 'verb'", "'zero'"]),
    ("ek100", "id,verb,noun,action\n0,0,0,take\n", [":2:", "field 'action'", "'take'"]),
    ("ek100", "id,verb,noun,action\n0,0,x,take tap\n", [":2:", "field 'noun'", "'x'"]),
    ("ek100", "id,verb,noun,action\n", ["no actions"]),
]


@pytest.mark.parametrize("dataset, text, parts", _ACTIONS_ERRORS)
def test_actions_errors_name_file_line_and_field(tmp_path, dataset, text, parts):
  path = _file(tmp_path, text, "actions.csv")
  with pytest.raises(DataError) as e:
    rulstm.read_actions(path, dataset)
  message = str(e.value)
  assert message.startswith(str(path)), message
  for part in parts:
    assert part in message, (part, message)


def test_unknown_dataset(tmp_path):
  with pytest.raises(ValueError, match="ek55"):
    rulstm.read_actions(_file(tmp_path, "0, 0_0, Open_fridge\n"), "epic")


@pytest.mark.parametrize("segment, parts", [
    (Segment("u1", "v", 1, 2, 0, 0, 10), ["uid 'u1'", "field 'action'", "id 10", "[0, 2)"]),
    (Segment("u2", "v", 1, 2, 3, 0, 0), ["uid 'u2'", "field 'verb'", "id 3", "[0, 2)"]),
    (Segment("u3", "v", 1, 2, 0, 7, 0), ["uid 'u3'", "field 'noun'", "id 7", "[0, 3)"]),
    (Segment("u4", "v", 1, 2, 0, 1, 0), ["uid 'u4'", "field 'noun'", "1 disagrees with action 0 = (verb 0, noun 2)"]),
    (Segment("u5", "v", 1, 2, 0, 2, 1), ["uid 'u5'", "field 'verb'", "0 disagrees with action 1 = (verb 1, noun 0)"]),
])
def test_vocabulary_check(tmp_path, segment, parts):
  vocab = rulstm.Vocabulary(np.array([[0, 2], [1, 0]]), ("a_c", "b_a"), ("a", "b"), ("a", "b", "c"))
  good = [Segment("ok", "v", 1, 2, 1, 0, 1), Segment("test", "v", 1, 2)]
  vocab.check(good, tmp_path / "validation.csv")
  with pytest.raises(DataError) as e:
    vocab.check(good + [segment], tmp_path / "validation.csv")
  message = str(e.value)
  assert message.startswith(str(tmp_path / "validation.csv")), message
  for part in parts:
    assert part in message, (part, message)


# Class, uid and video lists.

def test_lists(tmp_path):
  info = fx.write_ek55(tmp_path)
  np.testing.assert_array_equal(rulstm.read_many_shot(tmp_path / "EPIC_many_shot_verbs.csv"), [0, 1, 2])
  np.testing.assert_array_equal(rulstm.read_many_shot(tmp_path / "EPIC_many_shot_nouns.csv"), [1, 4])
  assert rulstm.read_uid_list(tmp_path / "validation_videos.csv") == info["lists"]["validation_videos.csv"]
  info = fx.write_ek100(tmp_path / "ek100")
  unseen = rulstm.read_uid_list(tmp_path / "ek100" / "validation_unseen_participants_ids.csv")
  assert unseen == [f"P32_01_{j}" for j in range(6)]
  tail = rulstm.read_uid_list(tmp_path / "ek100" / "validation_tail_verbs_ids.csv")
  assert tail == [s.uid for s in info["segments"]["validation.csv"] if s.verb >= 4] and tail
  ids = rulstm.read_id_list(_file(tmp_path, "3\n\n 17 \n0005\n"))
  np.testing.assert_array_equal(ids, [3, 17, 5])
  assert ids.dtype == np.int64
  assert rulstm.read_uid_list(_file(tmp_path, " P01_01_1 \n\nP01_01_10\n")) == ["P01_01_1", "P01_01_10"]


@pytest.mark.parametrize("reader, text, parts", [
    (rulstm.read_id_list, "1\nx\n", [":2:", "field 'id'", "'x'"]),
    (rulstm.read_id_list, "1\n2,3\n", [":2:", "expected 1 fields"]),
    (rulstm.read_many_shot, "class,verb\n0,take\n", [":1:", "field 'header'", "'verb_class,verb'"]),
    (rulstm.read_many_shot, "noun_class,noun\n1,pan\nx,fridge\n", [":3:", "field 'noun_class'", "'x'"]),
    (rulstm.read_uid_list, "P01_01_1\nP01_01_2,P01_01\n", [":2:", "expected 1 fields"]),
])
def test_list_errors(tmp_path, reader, text, parts):
  path = _file(tmp_path, text)
  with pytest.raises(DataError) as e:
    reader(path)
  for part in [str(path)] + parts:
    assert part in str(e.value), (part, str(e.value))


# History.

def test_history_strictly_before_in_start_order_ties_by_uid():
  segments = [
      Segment("5", "a", 100, 120, 0, 0, 50),
      Segment("3", "a", 40, 60, 0, 0, 30),
      Segment("9", "b", 10, 20, 0, 0, 90),  # Another video.
      Segment("2", "a", 40, 45, 0, 0, 20),  # Ties with "3" at frame 40: uid "2" first.
      Segment("1", "a", 10, 200, 0, 0, 10),  # Long, still in progress later: it started before.
  ]
  assert rulstm.history(segments, "a", 100) == [10, 20, 30]  # Not "5", which starts at 100.
  assert rulstm.history(segments, "a", 101) == [10, 20, 30, 50]
  assert rulstm.history(segments, "a", 40) == [10]
  assert rulstm.history(segments, "a", 10) == []
  assert rulstm.history(segments, "b", 1000) == [90]
  assert rulstm.history(segments, "c", 1000) == []
  index = rulstm.HistoryIndex(segments)
  before = index.before("a", 41)
  np.testing.assert_array_equal(before, [10, 20, 30])
  assert before.dtype == np.int32
  assert index.before("c", 5).shape == (0,)


def test_history_index_matches_history_over_train_and_validation(tmp_path):
  info = fx.write_egtea(tmp_path)
  segments = info["segments"]["training1.csv"] + info["segments"]["validation1.csv"]
  index = rulstm.HistoryIndex(segments)
  for s in segments:
    expected = [t.action for t in sorted(segments, key=lambda t: (t.start_frame, t.uid))
                if t.video == s.video and t.start_frame < s.start_frame]
    assert index.before(s.video, s.start_frame).tolist() == expected == rulstm.history(segments, s.video,
                                                                                         s.start_frame)
  # Both files contribute: the last segment of a video sees segments of both.
  video = info["videos"][0]
  last = max((s for s in segments if s.video == video), key=lambda s: s.start_frame)
  uids = {s.uid for s in segments if s.video == video and s.start_frame < last.start_frame}
  assert uids & {s.uid for s in info["segments"]["training1.csv"]}
  assert uids & {s.uid for s in info["segments"]["validation1.csv"]}
