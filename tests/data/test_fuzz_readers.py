"""Fuzzing of the public-format readers: a mutated file fails with one clear DataError, or reads right.

Each property starts from the valid files of `tests.data.rulstm.fixtures` (and a corpus and a teacher-outputs file
made alike), applies random mutations (hypothesis: edited, inserted, deleted or swapped fields, odd
numbers and unicode, duplicated or deleted lines, truncation, invalid UTF-8, a byte-order mark, CR line
ends; for LMDB values of the wrong size, deleted keys and garbage keys; for `.npz` files dropped keys,
wrong dtypes and shapes, corrupt bytes) and calls the reader. An oracle re-parses the mutated bytes
on its own, from the rules of DATA_FORMATS.md (physical lines split on ",", fields stripped, integers
`[+-]?[0-9]+` that fit in 32 bits) and says what the reader must return or where the file is wrong.
Then the reader must return exactly that, or raise `DataError` naming the file (LMDB directory and key
or video; `.npz` key) and, for line-oriented files, the oracle's line and field. Any other exception,
an error on a valid file, or a malformed file read without an error fails.

A reader added to `anticipax/data` joins with its fixture file, a mutation strategy and an oracle.
`ANTICIPAX_FUZZ_SCALE=20 pytest tests/data/test_fuzz_readers.py` hunts longer than CI does.
"""

import importlib
import inspect
import io
import json
import os
import pathlib
import pkgutil
import re
import shutil
import tempfile
import traceback

import lmdb
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import anticipax.data
from anticipax.data import action_text, teacher_outputs
from anticipax.data.rulstm import builders as rulstm_builders
from anticipax.data.rulstm import reader as rulstm
from anticipax.data.errors import DataError
from anticipax.data.rulstm.lmdb_features import LmdbFeatures
from anticipax.data.rulstm.reader import Segment
from tests.data.rulstm import fixtures as fx


def _settings(n):
  """`n` examples; ANTICIPAX_FUZZ_SCALE=k runs k times as many (a longer hunt than CI's)."""
  return settings(max_examples=n * int(os.environ.get("ANTICIPAX_FUZZ_SCALE", "1")), deadline=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])


class Invalid(Exception):
  """The oracle's verdict on a malformed input: the 1-based line and the field at fault (None: not
  line-oriented, or unknown), and `where`, the texts the error must name (default: the file's path)."""

  def __init__(self, line=None, field=None, where=()):
    super().__init__(f"line {line}, field {field}, naming {list(where)}")
    self.line, self.field, self.where = line, field, tuple(where)


def _call(read):
  """`read()`, or the DataError it raises; any other exception fails the test with its traceback."""
  try:
    return read(), None
  except DataError as e:
    return None, e
  except Exception as e:  # pylint: disable=broad-except
    pytest.fail(f"{type(e).__name__} instead of DataError: {e}\n{''.join(traceback.format_exc(limit=-4))}")


def _check(read, path, oracle, compare):
  """Runs `read()` against `oracle()`; a DataError must name `path`, or else the oracle's `where`.

  Returns:
    The DataError raised, or None.
  """
  try:
    expected, verdict = oracle(), None
  except Invalid as e:
    expected, verdict = None, e
  got, error = _call(read)
  event("valid" if verdict is None else "malformed")  # Shown by pytest --hypothesis-show-statistics.
  if verdict is None:
    assert error is None, f"DataError on a valid file: {error}"
    compare(got, expected)
    return None
  assert error is not None, f"malformed ({verdict}) but read without error: {got!r}"
  message = str(error)
  where = verdict.where or (str(path),)
  for text in where:
    assert text in message, (verdict, message)
  if verdict.line is not None:
    match = re.match(rf"{re.escape(where[0])}:(\d+): ", message)
    assert match and int(match.group(1)) == verdict.line, (verdict, message)
  if verdict.field is not None:
    assert f"field '{verdict.field}'" in message, (verdict, message)
  return error


# -- mutations ----------------------------------------------------------------------------------------

ODD_VALUES = ("", " ", "\t", " 7 ", "007", "+3", "-0", "-1", "1.0", "1e3", "0x1F", "1_000", "\u0663", "nan",
              "inf", "2147483647", "2147483648", "-2147483648", "-2147483649", "99999999999999999999",
              "P01_01", "P99_99", "a:b", "x_y", "take spoon", '"', '"5"', "\x00", "\u00a0", "\u00e9", "\ufeff",
              "\u2028", "\x85")
BAD_BYTES = (b"\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8\x88\x80\x80\x80")


def _values(pool):
  return st.one_of(st.sampled_from(sorted(pool) or [""]), st.integers(-5, 40).map(str),
                   st.integers(-2**70, 2**70).map(str), st.sampled_from(ODD_VALUES), st.text(max_size=8))


@st.composite
def mutated(draw, original: bytes, max_line_ops=3, byte_ops=True):
  """`original` (UTF-8, "\\n" line ends) with 0..max_line_ops line edits and maybe one byte edit."""
  lines = original.decode("utf-8").split("\n")
  pool = {f.strip() for line in lines for f in line.split(",")}
  values = _values(pool)
  ops = ("replace_field", "insert_field", "delete_field", "swap_fields", "duplicate_line", "delete_line",
         "join_lines", "insert_line", "insert_text")
  for _ in range(draw(st.integers(0, max_line_ops))):
    if not lines:
      lines = [""]
    i = draw(st.integers(0, len(lines) - 1))
    fields = lines[i].split(",")
    j, k = (draw(st.integers(0, len(fields) - 1)) for _ in range(2))
    op = draw(st.sampled_from(ops))
    if op == "replace_field":
      fields[j] = draw(values)
    elif op == "insert_field":
      fields.insert(j, draw(values))
    elif op == "delete_field":
      del fields[j]
    elif op == "swap_fields":
      fields[j], fields[k] = fields[k], fields[j]
    elif op == "duplicate_line":
      lines.insert(draw(st.integers(0, len(lines))), lines[i])
    elif op == "delete_line":
      del lines[i]
    elif op == "join_lines" and i + 1 < len(lines):
      lines[i] += lines.pop(i + 1)
    elif op == "insert_line":
      lines.insert(i, ",".join(draw(st.lists(values, max_size=8))))
    else:  # Text at any offset of the line: commas, quotes, line breaks, anything.
      at = draw(st.integers(0, len(lines[i])))
      lines[i] = lines[i][:at] + draw(st.text(min_size=1, max_size=6)) + lines[i][at:]
    if op in ("replace_field", "insert_field", "delete_field", "swap_fields"):
      lines[i] = ",".join(fields)
  data = "\n".join(lines).encode("utf-8")
  op = draw(st.sampled_from((None, None, "truncate", "bad_bytes", "bom", "crlf", "cr"))) if byte_ops else None
  if op == "truncate":
    data = data[:draw(st.integers(0, len(data)))]
  elif op == "bad_bytes":
    at = draw(st.integers(0, len(data)))
    data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
  elif op == "bom":
    data = b"\xef\xbb\xbf" + data
  elif op in ("crlf", "cr"):
    data = data.replace(b"\n", b"\r\n" if op == "crlf" else b"\r")
  return data


# -- oracles for the annotation CSVs --------------------------------------------------------------------

def _csv_rows(data: bytes):
  """(line, stripped fields) of each physical line with some content. A leading BOM is not data."""
  try:
    text = data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise Invalid(len(re.split(rb"\r\n|\r|\n", data[:e.start]))) from None
  text = text.removeprefix("\ufeff")
  for n, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
    fields = [f.strip() for f in line.split(",")]
    if any(fields):
      yield n, fields


def _integer(line, field, text):
  if not re.fullmatch(r"[+-]?[0-9]+", text) or not -2**31 <= int(text) < 2**31:
    raise Invalid(line, field)
  return int(text)


def expect_segments(data, labeled=None):
  """The segments of a segment CSV (7 or 4 fields a row, unique uids, 1 <= start <= end, labels >= 0)."""
  names, out, seen = None, [], set()
  for n, f in _csv_rows(data):
    if names is None:
      labeled = len(f) == 7 if labeled is None and len(f) in (4, 7) else labeled
      names = rulstm.LABELED_FIELDS if labeled else rulstm.UNLABELED_FIELDS
    if labeled is None or len(f) != len(names):
      raise Invalid(n)
    for k, name in enumerate(("uid", "video")):
      if not f[k]:
        raise Invalid(n, name)
    if f[0] in seen:
      raise Invalid(n, "uid")
    seen.add(f[0])
    numbers = [_integer(n, name, x) for name, x in zip(names[2:], f[2:])]
    if numbers[0] < 1:
      raise Invalid(n, "start_frame")
    if numbers[1] < numbers[0]:
      raise Invalid(n, "end_frame")
    for name, x in zip(names[4:], numbers[2:]):
      if x < 0:
        raise Invalid(n, name)
    out.append(Segment(f[0], f[1], *numbers))
  return out


def _english(noun):
  return " ".join(reversed([p for p in noun.split(":") if p]))


def _action_row(dataset, n, f):
  """(id, verb, noun, name, verb name, noun name) of one actions.csv row."""
  if len(f) != (3 if dataset == "egtea" else 4):
    raise Invalid(n)
  if dataset == "egtea":
    a = _integer(n, "id", f[0])
    parts = f[1].split("_")
    if len(parts) != 2:
      raise Invalid(n, "verb_noun")
    v, o = (_integer(n, "verb_noun", x) for x in parts)
    name, name_field = f[2], "Name"
  else:
    columns = (0, 2, 3, 1) if dataset == "ek55" else (0, 1, 2, 3)
    a, v, o = (_integer(n, field, f[c]) for field, c in zip(("id", "verb", "noun"), columns))
    name, name_field = f[columns[3]], "action"
  if dataset == "ek100":
    words = name.split(None, 1)
    if len(words) != 2:
      raise Invalid(n, name_field)
    return a, v, o, name, words[0], _english(words[1])
  verb, _, noun = name.partition("_")
  if "_" not in name or not verb or not noun:
    raise Invalid(n, name_field)
  return a, v, o, name, verb, noun.replace(":", " ") if dataset == "egtea" else _english(noun)


def _names(ids_names, field):
  """First non-empty name of each id; ids must be in [0, 2^20)."""
  for i, _, n in ids_names:
    if not 0 <= i < 2**20:
      raise Invalid(n, field)
  names = [""] * (max((i for i, _, _ in ids_names), default=-1) + 1)
  for i, name, _ in ids_names:
    names[i] = names[i] or name
  return tuple(names)


def expect_actions(data, dataset):
  """(actions, action names, verb names, noun names) of an actions.csv: ids 0..A-1 (EGTEA: or 1..A)."""
  header = {"egtea": None, "ek55": ["id", "action", "verb", "noun"], "ek100": ["id", "verb", "noun", "action"]}
  header, rows, line_of = header[dataset], [], {}
  for n, f in _csv_rows(data):
    if header is not None:
      if f != header:
        raise Invalid(n, "header")
      header = None
      continue
    row = _action_row(dataset, n, f)
    if row[0] in line_of:
      raise Invalid(n, "id")
    line_of[row[0]] = n
    rows.append((n, *row))
  if not rows:
    raise Invalid()
  base = min(line_of)
  if base not in ((0, 1) if dataset == "egtea" else (0,)):
    raise Invalid(line_of[base], "id")
  if set(line_of) != set(range(base, base + len(rows))):
    raise Invalid(None, "id")
  fields = ("verb_noun", "verb_noun") if dataset == "egtea" else ("verb", "noun")
  verbs = _names([(r[2] - base, r[5], r[0]) for r in rows], fields[0])
  nouns = _names([(r[3] - base, r[6], r[0]) for r in rows], fields[1])
  rows.sort(key=lambda r: r[1])
  return [(r[2] - base, r[3] - base) for r in rows], tuple(r[4] for r in rows), verbs, nouns


def _eq(got, want):
  assert got == want


def _eq_ids(got, want):
  assert got.dtype == np.int64 and got.tolist() == want


def _compare_vocab(got, expected):
  actions, action_names, verbs, nouns = expected
  assert got.actions.tolist() == [list(a) for a in actions]
  assert (got.action_names, got.verb_names, got.noun_names) == (action_names, verbs, nouns)


def expect_many_shot(data):
  """The class ids (first column) of a many-shot CSV after its header."""
  column, ids = None, []
  for n, f in _csv_rows(data):
    if column is None:
      if f[0] not in ("verb_class", "noun_class"):
        raise Invalid(n, "header")
      column = f[0]
    else:
      ids.append(_integer(n, column, f[0]))
  return ids


def expect_list(data, integers):
  """One integer id, or one string, per line."""
  out = []
  for n, f in _csv_rows(data):
    if len(f) != 1:
      raise Invalid(n)
    out.append(_integer(n, "id", f[0]) if integers else f[0])
  return out


def expect_corpus(data):
  """The stripped non-blank lines (split at "\\n" only); each line must be UTF-8."""
  documents = []
  for n, raw in enumerate(data.split(b"\n"), start=1):
    try:
      line = raw.decode("utf-8")
    except UnicodeDecodeError:
      raise Invalid(n) from None
    line = line.removeprefix("\ufeff") if n == 1 else line
    if line.strip():
      documents.append(line.strip())
  if not documents:
    raise Invalid()
  return documents


# -- fixtures -----------------------------------------------------------------------------------------

class Original(bytes):
  """The bytes of a valid file, printed short (hypothesis prints a failing strategy's arguments)."""

  def __repr__(self):
    return f"<{len(self)} bytes>"


class Files(dict):
  """{(dataset, file name): bytes} of the valid fixture files; (dataset, "manual") is the directory."""

  def __repr__(self):  # Hypothesis prints the arguments of a failing example.
    return f"Files({len(self)} files)"


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
  files = Files()
  for dataset in ("egtea", "ek55", "ek100"):
    root = tmp_path_factory.mktemp(dataset)
    kwargs = dict(num_videos=3, segments_per_video=5) if dataset == "ek55" else {}
    fx.write(dataset, root, **kwargs)
    files.update({(dataset, p.name): Original(p.read_bytes()) for p in root.iterdir() if p.is_file()})
    files[(dataset, "manual")] = root
  vocab = action_text.ActionVocab.from_vocabulary(rulstm.read_actions(files[("egtea", "manual")] / "actions.csv",
                                                                      "egtea"))
  segments = rulstm.read_segments(files[("egtea", "manual")] / "training1.csv")
  corpus = [action_text.history_text([s.action for s in segments[k:k + 4]], vocab, hist_len=0) for k in range(5)]
  files[("text", "corpus.txt")] = Original("\n".join(["café <v> crème", *corpus, ""]).encode())
  # A class-id list, one id per line, as `read_id_list` reads (the fixture's tail lists hold uids).
  files[("ek100", "tail_ids.csv")] = Original("".join(f"{s.action}\n" for s in segments).encode())
  return files


SEGMENT_FILES = [("egtea", "training1.csv"), ("egtea", "validation3.csv"), ("ek55", "training.csv"),
                 ("ek55", "test_unseen.csv"), ("ek100", "validation.csv"), ("ek100", "test_timestamps.csv")]


@pytest.mark.parametrize("dataset, name", SEGMENT_FILES)
@_settings(80)
@given(data=st.data())
def test_read_segments(originals, tmp_path, dataset, name, data):
  original = originals[(dataset, name)]
  labeled = data.draw(st.sampled_from([None, not name.startswith("test")]), label="labeled")
  path = tmp_path / name
  path.write_bytes(data.draw(mutated(original), label="file"))
  _check(lambda: rulstm.read_segments(path, labeled=labeled), path,
         lambda: expect_segments(path.read_bytes(), labeled), _eq)


@pytest.mark.parametrize("dataset", ["egtea", "ek55", "ek100"])
@_settings(150)
@given(data=st.data())
def test_read_actions(originals, tmp_path, dataset, data):
  path = tmp_path / "actions.csv"
  path.write_bytes(data.draw(mutated(originals[(dataset, "actions.csv")]), label="file"))
  _check(lambda: rulstm.read_actions(path, dataset), path, lambda: expect_actions(path.read_bytes(), dataset),
         _compare_vocab)


@pytest.mark.parametrize("name", ["EPIC_many_shot_verbs.csv", "EPIC_many_shot_nouns.csv"])
@_settings(60)
@given(data=st.data())
def test_read_many_shot(originals, tmp_path, name, data):
  path = tmp_path / name
  path.write_bytes(data.draw(mutated(originals[("ek55", name)]), label="file"))
  _check(lambda: rulstm.read_many_shot(path), path, lambda: expect_many_shot(path.read_bytes()), _eq_ids)


@pytest.mark.parametrize("dataset, name", [("ek100", "tail_ids.csv"), ("ek100", "validation_tail_nouns_ids.csv"),
                                           ("ek55", "training_videos.csv")])
@_settings(60)
@given(data=st.data())
def test_read_id_and_uid_lists(originals, tmp_path, dataset, name, data):
  path = tmp_path / name
  path.write_bytes(data.draw(mutated(originals[(dataset, name)]), label="file"))
  integers = name == "tail_ids.csv"
  read = rulstm.read_id_list if integers else rulstm.read_uid_list
  _check(lambda: read(path), path, lambda: expect_list(path.read_bytes(), integers), _eq_ids if integers else _eq)


@_settings(150)
@given(data=st.data())
def test_read_corpus(originals, tmp_path, data):
  path = tmp_path / "corpus.txt"
  path.write_bytes(data.draw(mutated(originals[("text", "corpus.txt")]), label="file"))
  _check(lambda: action_text.read_corpus(path), path, lambda: expect_corpus(path.read_bytes()), _eq)


# -- LMDB features ------------------------------------------------------------------------------------

LMDB_VIDEOS = ("P01_01", "P01_1", "P01_10")  # Neighbours in key order: "P01_1_frame_" < "P01_10_frame_".
LMDB_MODALITIES = ("rgb", "obj")


def _key(video, frame):
  return f"{video}_frame_{frame:010d}.jpg".encode()


def _lmdb_items():
  """{modality: {key: value}} of a valid fixture LMDB: frames 1..30 with `tests.data.rulstm.fixtures`' gaps."""
  return {m: {_key(video, f): fx.feature(v, f, i, fx.DIMS[m]).astype("<f4").tobytes()
              for v, video in enumerate(LMDB_VIDEOS) for f in range(1, 31) if fx.has_key(i, f)}
          for i, m in enumerate(LMDB_MODALITIES)}


@st.composite
def mutated_lmdb(draw):
  """(items, corrupt): fixture items with 1..3 mutations; `corrupt` a modality whose data.mdb is junk."""
  items, corrupt = _lmdb_items(), None
  for _ in range(draw(st.integers(1, 3))):
    m = draw(st.sampled_from(LMDB_MODALITIES))
    size = 4 * fx.DIMS[m]
    keys = sorted(items[m])
    op = draw(st.sampled_from(("value_size", "value_bytes", "delete_key", "delete_video", "garbage_key",
                               "prefixed_garbage_key", "empty", "corrupt")))
    if op in ("value_size", "value_bytes", "delete_key") and keys:
      key = draw(st.sampled_from(keys))
      if op == "delete_key":
        del items[m][key]
      else:  # Any size, or the right size with any bytes (NaN, inf, ...).
        items[m][key] = draw(st.binary(max_size=size + 8) if op == "value_size" else st.binary(min_size=size,
                                                                                                max_size=size))
    elif op == "delete_video":
      prefix = f"{draw(st.sampled_from(LMDB_VIDEOS))}_frame_".encode()
      for mm in (LMDB_MODALITIES if draw(st.booleans()) else (m,)):
        items[mm] = {k: v for k, v in items[mm].items() if not k.startswith(prefix)}
    elif op in ("garbage_key", "prefixed_garbage_key"):
      key = draw(st.binary(min_size=1, max_size=24)) if op == "garbage_key" else (
          f"{draw(st.sampled_from(LMDB_VIDEOS))}_frame_{draw(st.text(max_size=14))}".encode())
      items[m][key] = draw(st.one_of(st.binary(min_size=size, max_size=size), st.binary(max_size=size + 8)))
    elif op == "empty":
      items[m] = {}
    elif op == "corrupt":
      corrupt = m
  return items, corrupt


def _write_lmdb(root, items, corrupt, junk):
  for m, entries in items.items():
    env = lmdb.open(str(root / m), map_size=1 << 22, subdir=True)
    with env.begin(write=True) as txn:
      for key, value in entries.items():
        txn.put(key, value)
    env.close()
    if m == corrupt:
      (root / m / "data.mdb").write_bytes(junk)


def expect_features(root, items, corrupt, modalities, video, frames):
  """What `LmdbFeatures(root, modalities).read(video, frames)` must return: per modality, the first key
  of the video at or after each frame, else the video's last key, must be a well-formed frame key
  whose value has the size of the modality's first value."""
  dims = []
  for m in modalities:
    where = str(root / m)
    if m == corrupt:
      raise Invalid(where=[where])
    if not items[m]:
      raise Invalid(where=[where])
    first = items[m][min(items[m])]
    if not first or len(first) % 4:
      raise Invalid(where=[where, repr(min(items[m]).decode("utf-8", "replace"))])
    dims.append(len(first) // 4)
  columns = []
  for m, dim in zip(modalities, dims):
    prefix = f"{video}_frame_".encode()
    keys = sorted(k for k in items[m] if k.startswith(prefix))
    rows = []
    for frame in frames:
      if not keys:
        raise Invalid(where=[str(root / m), repr(video)])
      key = next((k for k in keys if k >= _key(video, frame)), keys[-1])
      value = items[m][key]
      if not re.fullmatch(re.escape(prefix) + rb"[0-9]{10}\.jpg", key) or len(value) != 4 * dim:
        raise Invalid(where=[str(root / m), repr(key.decode("utf-8", "replace"))])
      rows.append(np.frombuffer(value, "<f4"))
    columns.append(np.array(rows, np.float32).reshape(len(frames), dim))
  return np.concatenate(columns, axis=1)


@_settings(300)
@given(mutation=mutated_lmdb(), junk=st.binary(max_size=64),
       modalities=st.sampled_from([("rgb",), ("obj",), ("rgb", "obj"), ("obj", "rgb")]),
       video=st.sampled_from(LMDB_VIDEOS + ("P01_0", "P02_01")), frames=st.lists(st.integers(1, 40), max_size=6))
def test_lmdb_features_read(tmp_path, mutation, junk, modalities, video, frames):
  items, corrupt = mutation
  root = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))  # A new path: environments are cached by path.
  _write_lmdb(root, items, corrupt, junk)
  _check(lambda: LmdbFeatures(root, modalities).read(video, frames), root,
         lambda: expect_features(root, items, corrupt, modalities, video, frames),
         lambda got, want: np.testing.assert_array_equal(got, want))


def test_lmdb_fixture_is_valid(tmp_path):
  """The starting point of the mutations reads the fixture features (so the property tests something)."""
  _write_lmdb(tmp_path, _lmdb_items(), None, b"")
  got = LmdbFeatures(tmp_path, LMDB_MODALITIES).read("P01_1", [3, 3, 30, 40])
  np.testing.assert_array_equal(got[:, :6], [fx.feature(1, f, 0, 6) for f in (4, 4, 30, 30)])
  np.testing.assert_array_equal(got[:, 6:], [fx.feature(1, f, 1, 4) for f in (3, 3, 29, 29)])


# -- teacher outputs ----------------------------------------------------------------------------------

TEACHER_KEYS = ("uids", "logits", "features", "metadata")


def _teacher_file(path, uids, seed):
  rng = np.random.default_rng(seed)
  teacher_outputs.write(path, uids, rng.normal(size=(len(uids), 5)), rng.normal(size=(len(uids), 3)),
                        metadata={"teacher": f"t{seed}", "T": 2.0})
  return Original(path.read_bytes())


@st.composite
def mutated_npz(draw, original: bytes):
  """The bytes of `original` (an .npz) with 0..3 array mutations and maybe one byte mutation."""
  with np.load(io.BytesIO(original)) as npz:
    arrays = {k: npz[k] for k in npz.files}
  for _ in range(draw(st.integers(0, 3))):
    key = draw(st.sampled_from(TEACHER_KEYS))
    a = arrays.get(key)
    op = draw(st.sampled_from(("drop", "dtype", "shape", "rows", "scalar", "duplicate_uid", "bytes_uids",
                               "metadata", "special_values")))
    if op == "drop":
      arrays.pop(key, None)
    elif op == "dtype" and a is not None:
      dtype = draw(st.sampled_from([np.float64, np.float16, np.int64, np.int8, np.bool_, np.complex64, "U8", "S8",
                                    object]))
      try:
        arrays[key] = a.astype(dtype)
      except (ValueError, TypeError, UnicodeEncodeError):
        pass
    elif op == "shape" and a is not None:
      shapes = [a[None], a.reshape(-1), a.T, a.reshape(a.shape + (1,))] + ([a[..., :0]] if a.ndim else [])
      arrays[key] = draw(st.sampled_from(shapes))
    elif op == "rows" and a is not None and a.ndim:
      arrays[key] = a[:draw(st.integers(0, len(a)))]
    elif op == "scalar":
      arrays[key] = np.array(draw(st.sampled_from([0, 1.5, "x", b"y", '{"a": 1}'])))
    elif op == "duplicate_uid" and "uids" in arrays and arrays["uids"].ndim and len(arrays["uids"]) > 1:
      uids = arrays["uids"].copy()
      i, j = (draw(st.integers(0, len(uids) - 1)) for _ in range(2))
      uids[i] = uids[j]
      arrays["uids"] = uids
    elif op == "bytes_uids" and "uids" in arrays:
      arrays["uids"] = np.array([draw(st.binary(min_size=1, max_size=4)) for _ in arrays["uids"].reshape(-1)])
    elif op == "metadata":
      arrays["metadata"] = np.array(draw(st.sampled_from(["not json", "[1, 2]", "3", "null", '{"ok": true}', ""])))
    elif op == "special_values" and key in ("logits", "features") and a is not None and a.dtype.kind in "biuf" \
        and a.size:
      a = a.astype(np.float64)
      a.reshape(-1)[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300]))
      arrays[key] = a
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  data = buffer.getvalue()
  op = draw(st.sampled_from((None, None, "truncate", "flip", "append")))
  if op == "truncate":
    data = data[:draw(st.integers(0, len(data)))]
  elif op == "flip" and data:
    at = draw(st.integers(0, len(data) - 1))
    data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
  elif op == "append":
    data += draw(st.binary(min_size=1, max_size=16))
  return data


def _expect_teacher_file(path):
  """(uids, logits, features, metadata) of one file; Invalid if malformed."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except Exception:  # pylint: disable=broad-except
    raise Invalid(where=[str(path)]) from None
  for key in ("uids", "logits"):
    if key not in arrays:
      raise Invalid(where=[str(path), f"key '{key}'"])
  uids = arrays["uids"]
  if uids.ndim != 1 or uids.dtype.kind not in "US":
    raise Invalid(where=[str(path), "key 'uids'"])
  for key in ("logits", "features"):
    a = arrays.get(key)
    if a is not None and (a.ndim != 2 or len(a) != len(uids) or a.dtype.kind not in "biuf"):
      raise Invalid(where=[str(path), f"key '{key}'"])
  try:
    metadata = json.loads(str(arrays["metadata"])) if "metadata" in arrays else {}
  except ValueError:
    raise Invalid(where=[str(path), "key 'metadata'"]) from None
  if not isinstance(metadata, dict):
    raise Invalid(where=[str(path), "key 'metadata'"])
  try:
    uids = [u.decode("utf-8") if isinstance(u, bytes) else u for u in uids.tolist()]
  except UnicodeDecodeError:
    raise Invalid(where=[str(path), "key 'uids'"]) from None
  return uids, arrays["logits"], arrays.get("features"), metadata


def _mean_by_uid(uids, a):
  """(uids in order of first occurrence, float32 mean of the rows `a` of each)."""
  order = list(dict.fromkeys(uids))
  if a is None:
    return order, None
  a = np.asarray(a, np.float64).reshape(len(uids), -1)
  return order, np.array([a[[u == v for u in uids]].mean(0) for v in order], np.float32).reshape(len(order), -1)


def expect_teacher(paths):
  """(uids, logits, features, metadata): each file's rows averaged by uid, then the files' rows likewise."""
  files = []
  for path in paths:
    uids, logits, features, metadata = _expect_teacher_file(path)
    files.append((*_mean_by_uid(uids, logits), _mean_by_uid(uids, features)[1], metadata))
  for k, key in ((1, "logits"), (2, "features")):
    widths = [(path, f[k].shape[1]) for path, f in zip(paths, files) if f[k] is not None]
    for path, width in widths:
      if width != widths[0][1]:
        raise Invalid(where=[str(path), f"key '{key}'"])
  uids = [u for f in files for u in f[0]]
  with_features = all(f[2] is not None for f in files)
  order, logits = _mean_by_uid(uids, np.concatenate([f[1] for f in files]))
  features = _mean_by_uid(uids, np.concatenate([f[2] for f in files]))[1] if with_features else None
  return order, logits, features, tuple(f[3] for f in files)


def _compare_teacher(got, want):
  uids, logits, features, metadata = want
  assert got.uids == tuple(uids) and got.metadata == metadata
  assert got.feature_dim == (None if features is None else features.shape[1])
  got_logits, got_features, present = got.lookup_batch(list(uids))
  assert present.all()
  np.testing.assert_allclose(got_logits, logits, rtol=1e-6)
  if features is not None:
    np.testing.assert_allclose(got_features, features, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered in cast:RuntimeWarning")  # 1e300 -> inf
@_settings(300)
@given(data=st.data())
def test_teacher_outputs_load(tmp_path, data):
  uids = ["00100", "00101", "P01_01_3", "x"]
  original = _teacher_file(tmp_path / "valid.npz", uids, seed=0)
  path = tmp_path / "teacher.npz"
  path.write_bytes(data.draw(mutated_npz(original), label="file"))
  paths = [path]
  if data.draw(st.booleans(), label="ensemble"):
    _teacher_file(tmp_path / "other.npz", ["x", "00100", "y"], seed=1)
    paths.append(tmp_path / "other.npz")
  _check(lambda: teacher_outputs.TeacherOutputs.load(paths), path, lambda: expect_teacher(paths), _compare_teacher)


# -- end to end: a TFDS builder from a manual dir -------------------------------------------------------

EK55_SPLITS = (("train", "training.csv", True), ("validation", "validation.csv", True),
               ("test_seen", "test_seen.csv", False), ("test_unseen", "test_unseen.csv", False))


def expect_ek55(manual):
  """{split: {uid: (video, start_frame, verb, noun, action)}} that building `manual` must give."""
  actions = [(v, n) for v, n, _ in fx.EK55_ACTIONS]
  sizes = {"verb": len(fx.EK55_VERBS), "noun": len(fx.EK55_NOUNS), "action": len(actions)}
  out = {}
  for split, name, labeled in EK55_SPLITS:
    path = manual / name
    try:
      segments = expect_segments(path.read_bytes(), labeled)
    except Invalid as e:
      raise Invalid(e.line, e.field, [str(path)]) from None
    for s in segments:
      if not labeled:
        continue
      for field, size in sizes.items():
        if not 0 <= getattr(s, field) < size:
          raise Invalid(None, field, [str(path), repr(s.uid)])
      for field, expected in zip(("verb", "noun"), actions[s.action]):
        if getattr(s, field) != expected:
          raise Invalid(None, field, [str(path), repr(s.uid)])
    out[split] = segments
  return out


@_settings(15)
@given(data=st.data())
def test_ek55_builder_from_a_mutated_row(originals, tmp_path, data):
  split_file = data.draw(st.sampled_from([n for _, n, _ in EK55_SPLITS]), label="mutated file")
  source = originals[("ek55", "manual")]
  run = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))
  manual = run / "manual"
  manual.mkdir()
  for p in source.iterdir():
    if p.is_file():
      shutil.copy(p, manual / p.name)
    else:
      os.symlink(p, manual / p.name)  # The LMDBs, unchanged.
  (manual / split_file).write_bytes(
      data.draw(mutated(originals[("ek55", split_file)], max_line_ops=1, byte_ops=False), label="file"))
  config = rulstm_builders.make_config(modalities=("rgb", "obj"), num_frames=3, fps=1.0, tau_a=1.0)
  # Every fixture video with features has segments, and only those.
  lmdb_videos = {s.video for _, n, labeled in EK55_SPLITS for s in expect_segments(originals[("ek55", n)], labeled)}

  def oracle():
    expected = expect_ek55(manual)
    for segments in expected.values():
      for s in segments:
        if s.video not in lmdb_videos:
          raise Invalid(where=[str(manual / "rgb"), repr(s.video)])
    return expected

  def compare(builder, expected):
    for split, segments in expected.items():
      source = builder.as_data_source(split=split)
      got = {}
      for i in range(len(source)):
        ex = source[i]
        got[ex["uid"].decode()] = (ex["video"].decode(), int(ex["start_frame"]), int(ex["verb"]),
                                   int(ex["noun"]), int(ex["action"]))
      assert got == {s.uid: (s.video, s.start_frame, s.verb, s.noun, s.action) for s in segments}, split

  def build():
    return rulstm_builders.load("epic_kitchens_55", data_dir=str(run / "tfds"), manual_dir=str(manual),
                                config=config)

  if _check(build, manual / split_file, oracle, compare) is not None:  # A DataError leaves nothing.
    builder = rulstm_builders.BUILDERS["epic_kitchens_55"](data_dir=str(run / "tfds"), config=config,
                                                           file_format="array_record")
    assert not builder.is_prepared()
    left = [f for _, dirs, files in os.walk(run / "tfds") for f in dirs + files]
    assert not [f for f in left if "incomplete" in f or f == "dataset_info.json" or "array_record" in f], left



# -- what fuzzing found, pinned --------------------------------------------------------------------------

@pytest.mark.parametrize("read, data, message", [
    # A byte-order mark was read into the first uid, hiding this duplicate.
    (rulstm.read_segments, b"\xef\xbb\xbf15,v,16,50,2,5,6\n15,v,16,50,2,5,6\n", ":2: field 'uid': duplicate"),
    (rulstm.read_id_list, b"1\n99999999999999999999\n", ":2: field 'id': '9+' is out of the 32-bit"),  # OverflowError
    (lambda p: rulstm.read_actions(p, "ek100"), b"id,verb,noun,action\n0,0,0,take tap\n1,1000000000,1,put x\n",
     ":3: field 'verb': id 1000000000 is too large"),  # Tried to allocate a billion names.
    (rulstm.read_uid_list, b"P01_01\nP01\xff\n", ":2: not UTF-8: byte 0xff"),  # No line number before.
])
def test_csv_errors_found_by_fuzzing(tmp_path, read, data, message):
  path = tmp_path / "f.csv"
  path.write_bytes(data)
  with pytest.raises(DataError, match=re.escape(str(path)) + message):
    read(path)


def test_a_stray_quote_no_longer_merges_rows(tmp_path):
  path = tmp_path / "f.csv"
  path.write_bytes(b'1,"v,2,3,4,5,6\n7,v",8,9,1,1,1\n')
  assert rulstm.read_segments(path) == [Segment("1", '"v', 2, 3, 4, 5, 6), Segment("7", 'v"', 8, 9, 1, 1, 1)]


def test_a_stray_key_under_a_video_is_not_read_as_its_frame(tmp_path):
  items = _lmdb_items()
  items["rgb"][b"P01_10_frame_1"] = np.zeros(6, np.float32).tobytes()  # Sorts after the video's frames.
  _write_lmdb(tmp_path, items, None, b"")
  with pytest.raises(DataError, match="key 'P01_10_frame_1' is not a frame key 'P01_10_frame_<10 digits>.jpg'"):
    LmdbFeatures(tmp_path, ["rgb"]).read("P01_10", [40])


@pytest.mark.parametrize("arrays, cut, message", [
    (None, 100, "cannot read teacher outputs: BadZipFile"),
    (None, 0, "cannot read teacher outputs: EOFError"),
    (dict(uids=np.array(["a"]), logits=np.array([["x", "y"]])), None, "key 'logits': expected [1, C] real numbers"),
    (dict(uids=np.array([b"\xff"]), logits=np.ones((1, 2))), None, "key 'uids': not UTF-8"),
    (dict(uids=np.array(["a"]), logits=np.ones((1, 2)), metadata=np.array("3")), None,
     "key 'metadata': expected a JSON object"),
])
def test_teacher_errors_found_by_fuzzing(tmp_path, arrays, cut, message):
  path = tmp_path / "t.npz"
  if arrays is None:
    path.write_bytes(_teacher_file(tmp_path / "valid.npz", ["a", "b"], seed=0)[:cut])
  else:
    np.savez(path, **arrays)
  with pytest.raises(DataError, match=re.escape(f"{path}: {message}")):
    teacher_outputs.TeacherOutputs.load(path)


# -- coverage -----------------------------------------------------------------------------------------

FUZZED = {"action_text.read_corpus", "rulstm.lmdb_features.LmdbFeatures.read", "rulstm.reader.read_actions",
          "rulstm.reader.read_id_list", "rulstm.reader.read_many_shot", "rulstm.reader.read_segments",
          "rulstm.reader.read_uid_list", "teacher_outputs.TeacherOutputs.load",
          "frames.FrameFolder.read",
          # Fuzzed in tests/data/tasty/test_fuzz_readers.py.
          "tasty.reader.read_alignment", "tasty.features.read_features", "tasty.reader.read_fps",
          "tasty.reader.read_id2word", "tasty.reader.read_name_list", "tasty.reader.read_recipe_xml",
          "tasty.text.Vocab.load",
          # Fuzzed in tests/data/corpus/test_fuzz_corpus.py.
          "corpus.readers.read_corpus", "corpus.readers.read_recipe1m", "corpus.readers.read_recipenlg",
          "corpus.readers.read_text"}


def test_every_reader_of_anticipax_data_is_fuzzed():
  """Public `read*` functions and `read`/`load` methods of anticipax.data and its sub-packages: a new one
  joins the properties above (or those of its family's fuzz tests, e.g. tests/data/tasty)."""
  readers = set()
  for info in pkgutil.walk_packages(anticipax.data.__path__, prefix="anticipax.data."):
    module = importlib.import_module(info.name)
    short = info.name[len("anticipax.data."):]
    for name, obj in vars(module).items():
      if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
        continue
      if inspect.isfunction(obj) and name.startswith("read"):
        readers.add(f"{short}.{name}")
      elif inspect.isclass(obj):
        readers.update(f"{short}.{name}.{method}" for method in ("read", "load") if method in vars(obj))
  assert readers == FUZZED, f"not fuzzed: {sorted(readers - FUZZED)}; gone: {sorted(FUZZED - readers)}"
