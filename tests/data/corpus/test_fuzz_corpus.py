"""Fuzzing of the corpus readers: a mutated file reads right, or fails with one clear DataError.

The conventions are those of tests/data/test_fuzz_readers.py (`_check`, `mutated`) and
tests/data/tasty/test_fuzz_readers.py (`byte_mutated`): a property writes a file, calls the reader and,
where an oracle re-reads the bytes on its own (Recipe1M through `json.loads` of the whole file, plain
text line by line), compares. Any exception other than `DataError`, or a message of several lines or
without the file's path and a line number inside the file, fails.

- Valid files round-trip: RecipeNLG rows written by `write_recipenlg`, Recipe1M arrays dumped by `json`
  with any indentation, escaping, CRLF and BOM, text corpora with any line ends.
- Recipe1M is read in chunks: any chunk size gives the outcome of reading the file whole.
- Mutations: byte flips, truncation, invalid UTF-8, BOM, CR/CRLF, inserted text, edited / inserted /
  deleted / swapped fields and lines; random bytes under any name for `read_corpus`.

`ANTICIPAX_FUZZ_SCALE=20 pytest tests/data/corpus/test_fuzz_corpus.py` hunts longer than CI does.
"""

import itertools
import json
import re

from hypothesis import given, strategies as st

from anticipax.data.corpus import readers
from anticipax.data.errors import DataError
from tests.data.corpus import fixtures as fx
from tests.data.tasty.test_fuzz_readers import byte_mutated
from tests.data.test_fuzz_readers import Invalid, _call, _check, _settings, mutated

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NEW = itertools.count()
TEXTS = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)  # Anything UTF-8 can store.


def _fresh(tmp_path, name):
  return tmp_path / f"{next(_NEW)}_{name}"


def _outcome(read):
  """`(recipes as tuples, None)` or `(None, message)`; any exception but DataError fails the test."""
  got, error = _call(lambda: [(r.id, r.title, r.url, r.ingredients, r.steps, r.where) for r in read()])
  return (got, None) if error is None else (None, str(error))


def _assert_clear(message, path, data):
  """One line, the file's path, and a 1-based line number within the file (or one past its end)."""
  assert "\n" not in message and "\r" not in message, message
  assert message.startswith(f"{path}:"), message
  match = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
  assert match, message
  assert 1 <= int(match.group(1)) <= len(re.split(rb"\r\n|\r|\n", data)) + 1, message


def _recipes(r):
  return [(x.id, x.title, x.url, x.ingredients, x.steps) for x in r]


# -- RecipeNLG ------------------------------------------------------------------------------------------

ROWS = st.lists(st.tuples(TEXTS, st.lists(TEXTS, max_size=3), st.lists(TEXTS, max_size=4), TEXTS, TEXTS,
                          st.lists(TEXTS, max_size=3)), max_size=5)


@_settings(100)
@given(rows=ROWS)
def test_recipenlg_round_trips(tmp_path, rows):
  path = _fresh(tmp_path, "full_dataset.csv")
  readers.write_recipenlg(path, rows)
  got = _recipes(readers.read_recipenlg(path))
  assert got == [(str(i), t, link.strip(), tuple(ner), tuple(d)) for i, (t, _, d, link, _, ner) in enumerate(rows)]


@_settings(200)
@given(data=st.data())
def test_read_recipenlg(tmp_path, data):
  original = data.draw(st.sampled_from([fx.RECIPENLG, b",title,ingredients,directions,link,source,NER\n"
                                        b'0,A,[],"[""Mix."", ""Bake.""]",l,s,"[""x""]"\n']))
  raw = data.draw(mutated(original) if data.draw(st.booleans()) else byte_mutated(original), label="file")
  path = _fresh(tmp_path, "full_dataset.csv")
  path.write_bytes(raw)
  got, error = _outcome(lambda: readers.read_recipenlg(path))
  if error is not None:
    _assert_clear(error, path, raw)
  else:
    assert all(isinstance(x, str) for r in got for x in (r[0], r[1], r[2], *r[3], *r[4])), got


def test_recipenlg_mutations_found_by_hand(tmp_path):
  # A quote opened at the last record and never closed: the record's own line, not the file's end.
  path = tmp_path / "full_dataset.csv"
  path.write_bytes(fx.RECIPENLG + b'4,"Open,[],[],l,s,[]\n\n\n')
  _, error = _outcome(lambda: readers.read_recipenlg(path))
  assert error == f"{path}:7: field 'csv': broken CSV: unexpected end of data"


# -- Recipe1M -------------------------------------------------------------------------------------------

RECIPE = st.fixed_dictionaries(
    {"id": st.one_of(TEXTS, st.integers(0, 10**12)), "ingredients": st.lists(TEXTS, max_size=3),
     "instructions": st.lists(TEXTS, max_size=4)},
    optional={"title": TEXTS, "url": TEXTS, "partition": st.sampled_from(["train", "val", "test"]),
              "extra": st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | TEXTS,
                                    lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXTS, c, max_size=3),
                                    max_leaves=6)})


def _layer1(recipes):
  return [{**r, "ingredients": [{"text": t} for t in r["ingredients"]],
           "instructions": [{"text": t} for t in r["instructions"]]} for r in recipes]


@_settings(100)
@given(recipes=st.lists(RECIPE, max_size=4), indent=st.sampled_from([None, 0, 1, "\t"]), ascii_=st.booleans(),
       eol=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans(), chunk_size=st.integers(1, 40))
def test_recipe1m_round_trips(tmp_path, recipes, indent, ascii_, eol, bom, chunk_size):
  # json.dumps escapes line breaks inside strings: every "\n" it writes is whitespace, free to change.
  text = json.dumps(_layer1(recipes), indent=indent, ensure_ascii=ascii_).replace("\n", eol)
  path = _fresh(tmp_path, "layer1.json")
  path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
  got = _recipes(readers.read_recipe1m(path, chunk_size=chunk_size))
  assert got == [(str(r["id"]), r.get("title", ""), r.get("url", "").strip(), tuple(r["ingredients"]),
                  tuple(r["instructions"])) for r in recipes]


def _text_list(obj, key):
  items = obj[key]
  if not isinstance(items, list) or not all(isinstance(x, dict) and isinstance(x.get("text"), str) for x in items):
    return None
  return tuple(x["text"] for x in items)


def _storable(s):
  try:
    s.encode("utf-8")
    return True
  except UnicodeEncodeError:
    return False


def _recipe1m_oracle(path, data):
  """What `read_recipe1m` must return, from `json.loads` of the whole file; Invalid where it must fail."""
  try:
    value = json.loads(data.decode("utf-8").removeprefix("\ufeff"))
  except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors.
    raise Invalid() from None
  if not isinstance(value, list):
    raise Invalid(field="array")
  out = []
  for i, obj in enumerate(value):
    bad = Invalid(where=[str(path), f": element {i}: field '"])
    if not isinstance(obj, dict) or not all(k in obj for k in ("id", "ingredients", "instructions")):
      raise bad
    rid = str(obj["id"]) if isinstance(obj["id"], int) and not isinstance(obj["id"], bool) else obj["id"]
    fields = [rid, obj.get("title", ""), obj.get("url", "")]
    ingredients, steps = _text_list(obj, "ingredients"), _text_list(obj, "instructions")
    if (not all(isinstance(f, str) for f in fields) or ingredients is None or steps is None
        or not all(map(_storable, [*fields, *ingredients, *steps]))):
      raise bad
    out.append((fields[0], fields[1], fields[2].strip(), ingredients, steps))
  return out


@_settings(300)
@given(data=st.data())
def test_read_recipe1m(tmp_path, data):
  recipes = data.draw(st.lists(RECIPE, max_size=3), label="recipes")
  original = data.draw(st.sampled_from([fx.RECIPE1M, json.dumps(_layer1(recipes), indent=1).encode()]))
  raw = data.draw(mutated(original) if data.draw(st.booleans()) else byte_mutated(original), label="file")
  path = _fresh(tmp_path, "layer1.json")
  path.write_bytes(raw)

  def compare(got, expected):
    assert _recipes(got) == expected

  error = _check(lambda: list(readers.read_recipe1m(path)), path, lambda: _recipe1m_oracle(path, raw), compare)
  if error is not None:
    _assert_clear(str(error), path, raw)
  # Chunks of any size, also cutting characters and escapes in two, give the same outcome.
  chunk_size = data.draw(st.integers(1, 64), label="chunk_size")
  got = _outcome(lambda: readers.read_recipe1m(path, chunk_size=chunk_size))
  try:
    raw.decode("utf-8")
  except UnicodeDecodeError:  # A JSON error before the bad byte wins when the bad byte is not read yet.
    assert got[1] is not None and error is not None
  else:
    assert got == _outcome(lambda: readers.read_recipe1m(path)), chunk_size


# -- plain text -----------------------------------------------------------------------------------------

def _text_oracle(path, data, delimiter):
  try:
    text = data.decode("utf-8").removeprefix("\ufeff")
  except UnicodeDecodeError as e:
    raise Invalid(len(re.split(rb"\r\n|\r|\n", data[:e.start]))) from None
  return [(str(n), "", "", (), tuple(s.strip() for s in line.split(delimiter)), f"{path}:{n}")
          for n, line in enumerate(LINE_BREAK.split(text), start=1) if line.strip()]


@_settings(200)
@given(data=st.data())
def test_read_text(tmp_path, data):
  delimiter = data.draw(st.sampled_from(["|", " | ", "\t", ";;"]), label="delimiter")
  recipes = data.draw(st.lists(st.lists(TEXTS.filter(lambda s: "\r" not in s and "\n" not in s), max_size=4),
                               max_size=5))
  eol = data.draw(st.sampled_from(["\n", "\r\n", "\r"]))
  original = eol.join(delimiter.join(steps) for steps in recipes).encode("utf-8")
  raw = data.draw(st.sampled_from([lambda d: st.just(d), mutated, byte_mutated]))(original)
  raw = data.draw(raw, label="file")
  path = _fresh(tmp_path, "recipes.txt")
  path.write_bytes(raw)

  def compare(got, expected):
    assert [(r.id, r.title, r.url, r.ingredients, r.steps, r.where) for r in got] == expected

  _check(lambda: list(readers.read_text(path, delimiter=delimiter)), path,
         lambda: _text_oracle(path, raw, delimiter), compare)


# -- any bytes under any name ---------------------------------------------------------------------------

@_settings(200)
@given(raw=st.one_of(st.binary(max_size=200), st.sampled_from([fx.RECIPENLG, fx.RECIPE1M, fx.TEXT]).map(
    lambda d: d[:len(d) // 2])), name=st.sampled_from(["full_dataset.csv", "layer1.json", "corpus.txt", "corpus"]))
def test_read_corpus_on_any_bytes(tmp_path, raw, name):
  path = _fresh(tmp_path, name)
  path.write_bytes(raw)
  _, error = _outcome(lambda: readers.read_corpus(path))
  if error is not None:
    _assert_clear(error, path, raw)
