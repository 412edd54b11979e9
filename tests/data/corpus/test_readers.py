"""The corpus readers on hand-written files (tests/data/corpus/fixtures.py) and malformed variants."""

import json

import pytest

from anticipax.data.corpus import readers
from anticipax.data.errors import DataError
from tests.data.corpus import fixtures as fx


def _write(tmp_path, name, data: bytes):
  path = tmp_path / name
  path.write_bytes(data)
  return path


def test_recipenlg_quoting_unicode_and_line_numbers(tmp_path):
  path = _write(tmp_path, "full_dataset.csv", fx.RECIPENLG)
  assert fx.as_tuples(readers.read_recipenlg(path), path) == fx.RECIPENLG_RECIPES


def test_recipenlg_without_index_column_numbers_the_rows(tmp_path):
  path = _write(tmp_path, "c.csv", b'title,directions,link,NER\nA,"[""x""]",l,[]\nB,[],m,[]\n')
  assert [(r.id, r.title) for r in readers.read_recipenlg(path)] == [("0", "A"), ("1", "B")]


def test_write_recipenlg_round_trips(tmp_path):
  rows = [("Pie, \"apple\"", ["1 apple, cored"], ["Peel.\nCore.", "Bake 40 min at 180°C 🥧."], "x.com/pie",
           "Gathered", ["apple"]),
          ("Odd\rtitle", [], [], "", "Recipes1M", [])]
  path = tmp_path / "w.csv"
  readers.write_recipenlg(path, rows)
  got = [(r.title, r.ingredients, r.steps, r.url) for r in readers.read_recipenlg(path)]
  assert got == [(t, tuple(ner), tuple(d), link) for t, _, d, link, _, ner in rows]
  assert path.read_text(encoding="utf-8").splitlines()[0] == ",title,ingredients,directions,link,source,NER"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, readers.CHUNK_SIZE])
def test_recipe1m_streams_across_chunk_boundaries(tmp_path, chunk_size):
  path = _write(tmp_path, "layer1.json", fx.RECIPE1M)
  got = fx.as_tuples(readers.read_recipe1m(path, chunk_size=chunk_size), path, element=True)
  assert got == fx.RECIPE1M_RECIPES


@pytest.mark.parametrize("data, n", [(b"[]", 0), (b"\xef\xbb\xbf \n[ \r\n ]\n\n", 0),
                                     (b'[{"id":"a","ingredients":[],"instructions":[]}]', 1)])
def test_recipe1m_empty_and_compact_arrays(tmp_path, data, n):
  path = _write(tmp_path, "layer1.json", data)
  for chunk_size in (1, 5, 1000):
    assert len(list(readers.read_recipe1m(path, chunk_size=chunk_size))) == n


def test_recipe1m_is_not_read_whole(tmp_path):
  # A broken element after the first: the first is yielded before the file's end is read.
  first = b'[{"id": "a", "ingredients": [], "instructions": []},\n'
  path = _write(tmp_path, "layer1.json", first + b" " * 5000 + b"{")
  recipes = readers.read_recipe1m(path, chunk_size=64)
  assert next(recipes).id == "a"
  with pytest.raises(DataError, match="truncated"):
    next(recipes)


def test_text_corpus(tmp_path):
  path = _write(tmp_path, "recipes.txt", fx.TEXT)
  assert fx.as_tuples(readers.read_text(path), path) == fx.TEXT_RECIPES
  tab = _write(tmp_path, "tab.txt", b"a\tb\t c \n")
  assert next(readers.read_text(tab, delimiter="\t")).steps == ("a", "b", "c")
  with pytest.raises(ValueError, match="delimiter"):
    next(readers.read_text(tab, delimiter=""))


@pytest.mark.parametrize("name, data, expected", [
    ("full_dataset.csv", fx.RECIPENLG, "recipenlg"),
    ("corpus.csv", b"a,b\n", "recipenlg"),  # A .csv is RecipeNLG; its header is checked when read.
    ("dump.dat", b",title,ingredients,directions,link,source,NER\n", "recipenlg"),
    ("layer1.json", fx.RECIPE1M, "recipe1m"),
    ("layer1", b"\xef\xbb\xbf\n  [", "recipe1m"),
    ("empty.json", b"", "recipe1m"),
    ("recipes.txt", fx.TEXT, "text"),
    ("recipes", b"title and more\n", "text"),
])
def test_detect_format(tmp_path, name, data, expected):
  path = _write(tmp_path, name, data)
  assert readers.detect_format(path) == expected
  assert readers.detect_format(path, "text") == "text"  # An explicit format wins.


def test_read_corpus_dispatches_and_refuses_unknown_formats(tmp_path):
  path = _write(tmp_path, "layer1.json", fx.RECIPE1M)
  assert [r.id for r in readers.read_corpus(path)] == ["000018c8a5", "42", "ff"]
  assert [r.steps for r in readers.read_corpus(path, "text")][0] == ("[",)
  with pytest.raises(DataError, match=r"layer1.json: field 'format': 'csv' is not one of recipenlg, recipe1m, text"):
    readers.read_corpus(path, "csv")
  with pytest.raises(DataError, match="cannot read"):
    readers.read_corpus(tmp_path / "missing.csv")


# -- malformed files: one line naming the file, the line and the field -----------------------------------

HEADER = b",title,ingredients,directions,link,source,NER\n"
ROW_OK = b'0,A,[],"[""Mix."", ""Bake.""]",l,s,[]\n'

RECIPENLG_ERRORS = [
    (HEADER + ROW_OK + b'1,B,[],"[""Mix."", Bake]",l,s,[]\n',
     ":3: field 'directions': not a JSON array of strings: Expecting value (char 9)"),
    (HEADER + b'0,B,[],"[""Mix."", 5]",l,s,[]\n',
     ":2: field 'directions': not a JSON array of strings: item 1 is 5"),
    (HEADER + b'0,B,[],"{""a"": 1}",l,s,[]\n',
     ":2: field 'directions': not a JSON array of strings: got {'a': 1}"),
    (HEADER + b'0,B,[],[],l,s,"[""\\ud800""]"\n',
     ":2: field 'NER': item 0 is not valid Unicode: surrogates not allowed"),
    (HEADER + ROW_OK + b'1,"multi\nline",[],[],l,s,"[null]"\n',
     ":3: field 'NER': not a JSON array of strings: item 0 is None"),
    (b",title,ingredients,directions,link,source\n" + ROW_OK,
     ":1: field 'NER': missing column; the header has ['', 'title', 'ingredients', 'directions', 'link', 'source']"),
    (b"", ":1: field 'title': missing column; the header has []"),
    (HEADER + ROW_OK + b"1,B,[],[],l\n",
     ":3: field 'source': expected 7 fields as in the header (line 1), got 5"),
    (HEADER + ROW_OK + b"1,B,[],[],l,s,[],extra\n",
     ":3: field '#8': expected 7 fields as in the header (line 1), got 8"),
    (HEADER + ROW_OK + ROW_OK + b"2,\xe9t\xe9,[],[],l,s,[]\n", ":4: not UTF-8: byte 0xe9: invalid continuation byte"),
    (HEADER + b'0,"A"x,[],[],l,s,[]\n', ":2: field 'csv': broken CSV: ',' expected after '\"'"),
    (HEADER + ROW_OK + b'1,"never closed,[],[],l,s,[]\n\n', ":3: field 'csv': broken CSV: unexpected end of data"),
    (b",title,title,directions,link,NER\n", ":1: field 'title': column named twice (columns 2 and 3)"),
]


@pytest.mark.parametrize("data, message", RECIPENLG_ERRORS)
def test_recipenlg_errors(tmp_path, data, message):
  path = _write(tmp_path, "full_dataset.csv", data)
  with pytest.raises(DataError) as e:
    list(readers.read_recipenlg(path))
  assert str(e.value) == f"{path}{message}"


_R = '{"id": "a", "ingredients": [], "instructions": [{"text": "Mix."}]}'
RECIPE1M_ERRORS = [
    (f"[\n{_R},\n" + '{"id": "b", "ingre', ":3: element 1: field 'array': truncated: the file ends inside the element "
     "(Unterminated string starting at)"),
    (f"[\n{_R},\n{_R}", ":3: field 'array': truncated: the array is not closed after element 1"),
    (f"[\n{_R},\n{_R},\n",
     ":4: element 2: field 'array': truncated: the file ends inside the element (Expecting value)"),
    (f"[\n{_R},\n  5\n]", ":3: element 1: field 'array': expected a recipe object, got 5"),
    (f"[{_R}, [1, 2]]", ":1: element 1: field 'array': expected a recipe object, got [1, 2]"),
    (f"[{_R}, {{\"id\": \"b\", \"ingredients\": [], \"instructions\": [{{\"text\": 5}}]}}]",
     ":1: element 1: field 'instructions': item 0: expected {\"text\": string}, got {'text': 5}"),
    (f"[\n\n{_R[:-1]}, \"url\": 7}}]", ":3: element 0: field 'url': expected a string, got 7"),
    ('[{"id": "a", "instructions": []}]', ":1: element 0: field 'ingredients': missing"),
    ('[{"id": "a", "ingredients": {"text": "x"}, "instructions": []}]',
     ":1: element 0: field 'ingredients': expected a list of {\"text\": string} objects, got {'text': 'x'}"),
    ('[{"id": "a", "ingredients": [], "instructions": [{"text": "\\udc80"}]}]',
     ":1: element 0: field 'instructions': item 0 is not valid Unicode: surrogates not allowed"),
    (f"[\n{_R},\n{{\"id\": x}}]", ":3: element 1: field 'json': not valid JSON: Expecting value"),
    (f"[{_R} {_R}]", f":1: field 'array': expected ',' or ']' after element 0, got {_R[:20]!r}"),
    (f"[{_R}] []", ":1: field 'array': text after the array: '[]'"),
    ('{"id": "a"}', ":1: field 'array': expected a JSON array of recipes, got '{\"id\": \"a\"}'"),
    ("", ":1: field 'array': expected a JSON array of recipes, got an empty file"),
]


@pytest.mark.parametrize("chunk_size", [1, 4, readers.CHUNK_SIZE])
@pytest.mark.parametrize("text, message", RECIPE1M_ERRORS)
def test_recipe1m_errors(tmp_path, text, message, chunk_size):
  path = _write(tmp_path, "layer1.json", text.encode("utf-8"))
  with pytest.raises(DataError) as e:
    list(readers.read_recipe1m(path, chunk_size=chunk_size))
  assert str(e.value) == f"{path}{message}"


@pytest.mark.parametrize("chunk_size", [1, 3, readers.CHUNK_SIZE])
def test_recipe1m_bad_utf8_names_line_and_byte(tmp_path, chunk_size):
  data = f"[\n{_R},\r\n{_R[:-2]}".encode() + b"\xff" + b"]}]"
  path = _write(tmp_path, "layer1.json", data)
  with pytest.raises(DataError) as e:
    list(readers.read_recipe1m(path, chunk_size=chunk_size))
  assert str(e.value) == f"{path}:3: not UTF-8: byte 0xff: invalid start byte"
  cut = _write(tmp_path, "cut.json", "[{\"id\": \"é".encode()[:-1])  # The file ends inside a character.
  with pytest.raises(DataError, match=r"cut.json:1: not UTF-8: byte 0xc3: unexpected end of data"):
    list(readers.read_recipe1m(cut, chunk_size=chunk_size))


def test_text_bad_utf8(tmp_path):
  path = _write(tmp_path, "r.txt", b"a | b\r\nc | \xffd\n")
  with pytest.raises(DataError) as e:
    list(readers.read_text(path))
  assert str(e.value) == f"{path}:2: not UTF-8: byte 0xff: invalid start byte"


def test_a_long_unclosed_string_fails_without_reading_on(tmp_path, monkeypatch):
  monkeypatch.setattr(readers, "MAX_ELEMENT_CHARS", 100)
  path = _write(tmp_path, "layer1.json", b'[{"id": "' + b"x" * 1000 + b'"}]')
  with pytest.raises(DataError, match=r":1: element 0: field 'json': longer than 100 characters"):
    list(readers.read_recipe1m(path, chunk_size=16))
  assert json.loads(path.read_bytes())  # Valid JSON all the same: the limit is what failed.
