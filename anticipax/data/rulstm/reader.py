"""Readers of the RULSTM annotation CSVs of EGTEA Gaze+, EPIC-Kitchens-55 and EPIC-Kitchens-100.

The formats are described in DATA_FORMATS.md, section 1. Every malformed input raises one
`DataError` naming the file, the 1-based line and the field.

Conventions:
- Class ids are the 0-based ids of the segment CSVs (`verb`, `noun`, `action` columns).
  The public `actions.csv` files use the same ids (EGTEA's starts `0, 0_0, Inspect/Read_recipe`;
  `1, 1_1, Open_fridge` is its second row), so ids are taken as written. An EGTEA
  `actions.csv` whose smallest action id is 1 is read as 1-based: its action, verb and noun
  ids are all shifted down by one so that they match the segment CSVs.
- Segment uids are strings, kept exactly as written minus surrounding whitespace: EK55's
  `00330` stays `"00330"` (so that uids round-trip to the files, and EK55 and EK100 uids
  share one type); use `int(uid)` where a number is needed, e.g. in EK55 submissions.
- Frames are 1-based indices of 30 fps video; `end_frame` is inclusive.
"""

from __future__ import annotations

import bisect
import collections
import csv
import dataclasses
import io
import os
import re
from typing import Iterator, Literal, Sequence

import numpy as np

from anticipax.data.errors import DataError

PathLike = str | os.PathLike
Dataset = Literal["egtea", "ek55", "ek100"]

LABELED_FIELDS = ("uid", "video", "start_frame", "end_frame", "verb", "noun", "action")
UNLABELED_FIELDS = LABELED_FIELDS[:4]
_INT = re.compile(r"[+-]?[0-9]+")  # Not `int()` alone: it also accepts "1_000" and non-ASCII digits.
_MAX_CLASSES = 1 << 20  # Verb and noun ids size the model's heads; anything near this is a typo.


@dataclasses.dataclass(frozen=True)
class Segment:
  """One annotated action: frames `start_frame..end_frame` (1-based, inclusive) of `video`.

  `verb`, `noun` and `action` are class ids, -1 in the unlabeled test files.
  """
  uid: str
  video: str
  start_frame: int
  end_frame: int
  verb: int = -1
  noun: int = -1
  action: int = -1

  @property
  def labeled(self) -> bool:
    return self.action >= 0


def _rows(path: PathLike) -> Iterator[tuple[int, list[str]]]:
  """Yields `(line, fields)` of a CSV file, fields stripped of whitespace, blank lines skipped.

  A leading byte-order mark (Excel's "CSV UTF-8") is not data. Quotes are plain characters: the
  RULSTM files never quote, and a stray `"` must not merge lines into one row.
  """
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise DataError(f"{path}: cannot read: {e}") from e
  try:
    text = data.decode("utf-8").removeprefix("\ufeff")
  except UnicodeDecodeError as e:
    line = len(re.split(rb"\r\n|\r|\n", data[:e.start]))
    raise DataError(f"{path}:{line}: not UTF-8: byte {data[e.start]:#04x}: {e.reason}") from e
  reader = csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONE)
  try:
    for fields in reader:
      fields = [x.strip() for x in fields]
      if any(fields):
        yield reader.line_num, fields
  except csv.Error as e:  # A field over csv.field_size_limit().
    raise DataError(f"{path}:{reader.line_num}: {e}") from e


def _int(path: PathLike, line: int, field: str, text: str) -> int:
  if not _INT.fullmatch(text):
    raise DataError(f"{path}:{line}: field '{field}': expected an integer, got {text!r}")
  value = int(text)
  if not -2**31 <= value < 2**31:  # Frames and ids are stored as int32.
    raise DataError(f"{path}:{line}: field '{field}': {text!r} is out of the 32-bit integer range")
  return value


def _check_count(path, line, fields, names) -> None:
  if len(fields) != len(names):
    raise DataError(f"{path}:{line}: expected {len(names)} fields ({', '.join(names)}), "
                    f"got {len(fields)}: {','.join(fields)!r}")


def read_segments(path: PathLike, *, labeled: bool | None = None) -> list[Segment]:
  """Reads a RULSTM segment CSV (no header).

  Args:
    path: a `training*.csv` / `validation*.csv` (7 fields: uid, video, start_frame,
      end_frame, verb, noun, action) or a test file (4 fields: uid, video, start_frame,
      end_frame).
    labeled: whether the file has the 3 label fields; None detects it from the first
      row. Either way every row must have the same number of fields.

  Returns:
    The segments in file order; unlabeled ones have verb = noun = action = -1.

  Raises:
    DataError: naming the file, line and field, for a wrong number of fields, a
      non-integer frame or label, start_frame < 1, end_frame < start_frame, a negative
      label or a uid seen before in the file.
  """
  segments, lines_of_uid = [], {}
  for line, fields in _rows(path):
    if labeled is None:
      if len(fields) not in (len(LABELED_FIELDS), len(UNLABELED_FIELDS)):
        raise DataError(f"{path}:{line}: expected {len(LABELED_FIELDS)} fields ({', '.join(LABELED_FIELDS)}) "
                        f"or {len(UNLABELED_FIELDS)} (unlabeled), got {len(fields)}: {','.join(fields)!r}")
      labeled = len(fields) == len(LABELED_FIELDS)
    names = LABELED_FIELDS if labeled else UNLABELED_FIELDS
    _check_count(path, line, fields, names)
    uid, video = fields[:2]
    if not uid or not video:
      raise DataError(f"{path}:{line}: field '{'uid' if not uid else 'video'}': empty")
    if uid in lines_of_uid:
      raise DataError(f"{path}:{line}: field 'uid': duplicate uid {uid!r} "
                      f"(first on line {lines_of_uid[uid]})")
    lines_of_uid[uid] = line
    numbers = [_int(path, line, name, text) for name, text in zip(names[2:], fields[2:])]
    start, end, labels = numbers[0], numbers[1], numbers[2:]
    if start < 1:
      raise DataError(f"{path}:{line}: field 'start_frame': frames are 1-based, got {start}")
    if end < start:
      raise DataError(f"{path}:{line}: field 'end_frame': {end} is before start_frame {start}")
    for name, value in zip(names[4:], labels):
      if value < 0:
        raise DataError(f"{path}:{line}: field '{name}': negative label {value}")
    segments.append(Segment(uid, video, start, end, *labels))
  return segments


@dataclasses.dataclass(frozen=True, eq=False)
class Vocabulary:
  """The action classes of a dataset and the English names of actions, verbs and nouns.

  Attributes:
    actions: int32 `[num_actions, 2]`, the (verb, noun) of each action id (read-only).
    action_names: each action's name as written in `actions.csv` (e.g. `Open_cheese:container`,
      `take_fridge`, `take spoon`).
    verb_names: the English name of each verb id; "" for an id no action uses.
    noun_names: the English name of each noun id (`cheese container`, `fish curry`); ""
      for an id no action uses.
  """
  actions: np.ndarray
  action_names: tuple[str, ...]
  verb_names: tuple[str, ...]
  noun_names: tuple[str, ...]

  def __post_init__(self):
    actions = np.array(self.actions, np.int32).reshape(-1, 2)
    actions.setflags(write=False)
    object.__setattr__(self, "actions", actions)
    if len(actions) != len(self.action_names):
      raise ValueError(f"{len(actions)} actions but {len(self.action_names)} action names")

  @property
  def num_actions(self) -> int:
    return len(self.action_names)

  @property
  def num_verbs(self) -> int:
    return len(self.verb_names)

  @property
  def num_nouns(self) -> int:
    return len(self.noun_names)

  def check(self, segments: Sequence[Segment], path: PathLike) -> None:
    """Checks that labeled segments use ids of this vocabulary consistently.

    Args:
      segments: segments read from `path`; unlabeled ones (all labels -1) are skipped.
      path: the file they came from, for the error message.

    Raises:
      DataError: naming the file, the segment uid and the field, for a verb, noun or
        action id out of range, or an action whose (verb, noun) differs from the vocabulary's.
    """
    sizes = {"verb": self.num_verbs, "noun": self.num_nouns, "action": self.num_actions}
    for s in segments:
      if s.verb == s.noun == s.action == -1:
        continue
      for name, size in sizes.items():
        value = getattr(s, name)
        if not 0 <= value < size:
          raise DataError(f"{path}: segment uid {s.uid!r}: field '{name}': id {value} is out of range "
                          f"[0, {size}) of the vocabulary")
      verb, noun = (int(x) for x in self.actions[s.action])
      for name, expected in (("verb", verb), ("noun", noun)):
        if getattr(s, name) != expected:
          raise DataError(f"{path}: segment uid {s.uid!r}: field '{name}': {getattr(s, name)} disagrees with "
                          f"action {s.action} = (verb {verb}, noun {noun}) in the vocabulary")


def _english_noun(noun: str) -> str:
  """EPIC nouns put the head first: `curry:fish` is "fish curry", `board:chopping` "chopping board"."""
  return " ".join(reversed([part for part in noun.split(":") if part]))


def _egtea_row(path, line, fields):
  _check_count(path, line, fields, ("id", "verb_noun", "Name"))
  action = _int(path, line, "id", fields[0])
  verb_noun = fields[1].split("_")
  if len(verb_noun) != 2:
    raise DataError(f"{path}:{line}: field 'verb_noun': expected '<verb id>_<noun id>', got {fields[1]!r}")
  verb, noun = (_int(path, line, "verb_noun", x) for x in verb_noun)
  name = fields[2]
  verb_name, sep, noun_name = name.partition("_")
  if not (sep and verb_name and noun_name):
    raise DataError(f"{path}:{line}: field 'Name': expected 'Verb_noun', got {name!r}")
  return action, verb, noun, name, verb_name, noun_name.replace(":", " ")


def _ek55_row(path, line, fields):
  _check_count(path, line, fields, ("id", "action", "verb", "noun"))
  action, verb, noun = (_int(path, line, f, fields[i]) for f, i in (("id", 0), ("verb", 2), ("noun", 3)))
  name = fields[1]
  verb_name, sep, noun_name = name.partition("_")
  if not (sep and verb_name and noun_name):
    raise DataError(f"{path}:{line}: field 'action': expected 'verb_noun', got {name!r}")
  return action, verb, noun, name, verb_name, _english_noun(noun_name)


def _ek100_row(path, line, fields):
  _check_count(path, line, fields, ("id", "verb", "noun", "action"))
  action, verb, noun = (_int(path, line, f, fields[i]) for f, i in (("id", 0), ("verb", 1), ("noun", 2)))
  name = fields[3]
  words = name.split(None, 1)
  if len(words) != 2:
    raise DataError(f"{path}:{line}: field 'action': expected 'verb noun', got {name!r}")
  return action, verb, noun, name, words[0], _english_noun(words[1])


_ACTIONS_FORMATS = {  # dataset -> (header or None, row parser)
    "egtea": (None, _egtea_row),
    "ek55": (("id", "action", "verb", "noun"), _ek55_row),
    "ek100": (("id", "verb", "noun", "action"), _ek100_row),
}


def _names(path, ids_names: list[tuple[int, str, int]], kind: str) -> tuple[str, ...]:
  """Names per id, from `(id, name, line)` in file order: the first name seen for each id."""
  for i, _, line in ids_names:
    if i < 0:
      raise DataError(f"{path}:{line}: field '{kind}': negative id {i}")
    if i >= _MAX_CLASSES:
      raise DataError(f"{path}:{line}: field '{kind}': id {i} is too large (at most {_MAX_CLASSES - 1})")
  names = [""] * (max(i for i, _, _ in ids_names) + 1) if ids_names else []
  for i, name, _ in ids_names:
    names[i] = names[i] or name
  return tuple(names)


def read_actions(path: PathLike, dataset: Dataset) -> Vocabulary:
  """Reads the `actions.csv` of a dataset.

  Formats: EGTEA, no header, `id, verb_noun, Name` (`103, 1_34, Open_cheese:container`);
  EK55, header `id,action,verb,noun` (`1, take_fridge,0,10`); EK100, header
  `id,verb,noun,action` (`1,0,1,take spoon`). Verb and noun names come from the action
  names: the verb is the text before the first `_` (EGTEA, EK55) or space (EK100), the noun
  the rest. EGTEA nouns read `:` as a space (`cheese:container` -> "cheese container");
  EPIC nouns put the head first (`curry:fish` -> "fish curry"). Each verb or noun id takes
  the first name seen for it.

  Action ids must be 0, 1, ..., A-1 (any order). EGTEA files numbered 1..A are read as
  1-based (see the module docstring).

  Args:
    path: the `actions.csv` file.
    dataset: which variant: "egtea", "ek55" or "ek100".

  Returns:
    The `Vocabulary`.

  Raises:
    DataError: naming the file, line and field, for a wrong header or number of fields,
      a non-integer id, a name that does not split into verb and noun, a duplicate or
      missing action id.
  """
  if dataset not in _ACTIONS_FORMATS:
    raise ValueError(f"dataset must be one of {sorted(_ACTIONS_FORMATS)}, got {dataset!r}")
  header, parse = _ACTIONS_FORMATS[dataset]
  rows, line_of = [], {}  # rows: (line, action, verb, noun, name, verb name, noun name), in file order.
  for line, fields in _rows(path):
    if header is not None:
      if tuple(fields) != header:
        raise DataError(f"{path}:{line}: field 'header': expected {','.join(header)!r}, "
                        f"got {','.join(fields)!r}")
      header = None
      continue
    row = (line, *parse(path, line, fields))
    if row[1] in line_of:
      raise DataError(f"{path}:{line}: field 'id': duplicate action id {row[1]} "
                      f"(first on line {line_of[row[1]]})")
    line_of[row[1]] = line
    rows.append(row)
  if not rows:
    raise DataError(f"{path}: no actions")
  base = min(line_of)
  if base != 0 and not (dataset == "egtea" and base == 1):
    raise DataError(f"{path}:{line_of[base]}: field 'id': action ids must start at 0"
                    f"{' (or 1)' if dataset == 'egtea' else ''}, the smallest is {base}")
  missing = sorted(set(range(base, base + len(rows))) - set(line_of))
  if missing:
    raise DataError(f"{path}: field 'id': action ids must be {base}..{base + len(rows) - 1} without gaps; "
                    f"missing {missing[:5]}")
  verb_field, noun_field = ("verb_noun", "verb_noun") if dataset == "egtea" else ("verb", "noun")
  verb_names = _names(path, [(r[2] - base, r[5], r[0]) for r in rows], verb_field)
  noun_names = _names(path, [(r[3] - base, r[6], r[0]) for r in rows], noun_field)
  rows.sort(key=lambda r: r[1])
  actions = np.array([(r[2] - base, r[3] - base) for r in rows], np.int32)
  return Vocabulary(actions, tuple(r[4] for r in rows), verb_names, noun_names)


def read_id_list(path: PathLike) -> np.ndarray:
  """Reads a file of one integer id per line (no header; blank lines skipped).

  Returns:
    int64 `[N]`, the ids in file order.
  """
  ids = []
  for line, fields in _rows(path):
    _check_count(path, line, fields, ("id",))
    ids.append(_int(path, line, "id", fields[0]))
  return np.array(ids, np.int64)


def read_many_shot(path: PathLike) -> np.ndarray:
  """Reads EK55's `EPIC_many_shot_verbs.csv` (header `verb_class,verb`) or `..._nouns.csv`.

  Returns:
    int64 `[N]`: the class ids of the first column, in file order.
  """
  ids, column = [], None
  for line, fields in _rows(path):
    if column is None:
      if fields[0] not in ("verb_class", "noun_class"):
        raise DataError(f"{path}:{line}: field 'header': expected 'verb_class,verb' or 'noun_class,noun', "
                        f"got {','.join(fields)!r}")
      column = fields[0]
      continue
    ids.append(_int(path, line, column, fields[0]))
  return np.array(ids, np.int64)


def read_uid_list(path: PathLike) -> list[str]:
  """Reads a file of one string per line: segment uids (EK100 `validation_unseen_participants_ids.csv`,
  `validation_tail_*_ids.csv`) or video ids (`training_videos.csv`). Blank lines are skipped.

  Returns:
    The stripped lines, in file order.
  """
  out = []
  for line, fields in _rows(path):
    _check_count(path, line, fields, ("uid",))
    out.append(fields[0])
  return out


class HistoryIndex:
  """Past actions of each video, for O(log n) look-ups of what happened before a frame.

  Segments of a video are ordered by start frame, ties by uid (as strings). Unlabeled
  segments contribute their action id -1.
  """

  def __init__(self, segments: Sequence[Segment]):
    per_video = collections.defaultdict(list)
    for s in segments:
      per_video[s.video].append(s)
    self._starts, self._actions = {}, {}
    for video, group in per_video.items():
      group.sort(key=lambda s: (s.start_frame, s.uid))
      self._starts[video] = [s.start_frame for s in group]
      actions = np.array([s.action for s in group], np.int32)
      actions.setflags(write=False)
      self._actions[video] = actions

  def before(self, video: str, start_frame: int) -> np.ndarray:
    """Action ids of the segments of `video` starting strictly before `start_frame`.

    Returns:
      A read-only int32 `[n]` array in start order; empty for a video without segments.
    """
    if video not in self._starts:
      return np.zeros([0], np.int32)
    return self._actions[video][:bisect.bisect_left(self._starts[video], start_frame)]


def history(segments_for_history: Sequence[Segment], video: str, before_frame: int) -> list[int]:
  """Action ids of the segments of `video` that start strictly before `before_frame`.

  In start order, ties by uid. For many look-ups build one `HistoryIndex` instead.
  """
  index = HistoryIndex([s for s in segments_for_history if s.video == video])
  return index.before(video, before_frame).tolist()
