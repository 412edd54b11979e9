"""Fuzzing of the Tasty Videos readers: a mutated file fails with one clear DataError, or reads right.

The conventions are those of tests/data/test_fuzz_readers.py (whose `_check` this file uses): each
property writes a file, calls the reader, and compares with an oracle that re-reads the bytes on its
own from DATA_FORMATS.md section 5. The reader must return exactly what the oracle says, or raise
`DataError` naming the file and, where the oracle knows them, the 1-based line and the field.

- Valid files round-trip: an alignment written from random spans, a frame rate, a name list, a word
  dictionary, a recipe XML (plain or word-encoded), a features `.npy` and a vocabulary read back equal,
  whatever their (legal) formatting: spaces, signs, leading zeros, blank lines, BOM, CR/CRLF ends.
- Mutations: byte flips, truncation, invalid UTF-8, BOM, CR/CRLF, inserted text, edited / inserted /
  deleted / swapped fields and lines, huge and negative numbers; for the dict literal wrong key and
  value types and code that must never run (`ast.literal_eval` only: a marker file must never appear);
  for XML broken markup, declared encodings Python cannot map, entity bombs, deep nesting, huge texts,
  bad word ids; for `.npy` wrong dtypes, shapes, headers (a shape of terabytes), pickled object arrays,
  `.npz` archives, zip and pickle bytes.

`ANTICIPAX_FUZZ_SCALE=20 pytest tests/data/tasty/test_fuzz_readers.py` hunts longer than CI does.
"""

import ast
import io
import itertools
import math
import pathlib
import pickle
import re
import xml.sax
from xml.sax import saxutils

import numpy as np
import pytest
from hypothesis import given, strategies as st

from anticipax.data.errors import DataError
from anticipax.data.tasty import features as feature_files
from anticipax.data.tasty import reader
from anticipax.data.tasty import text as tasty_text
from tests.data.tasty import fixtures as fx
from tests.data.test_fuzz_readers import BAD_BYTES, Invalid, _check, _settings, mutated

try:
  from numpy.lib._format_impl import _read_array_header  # numpy 2.
except ImportError:  # pragma: no cover
  from numpy.lib.format import _read_array_header  # numpy 1.

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NEW = itertools.count()


def _fresh(tmp_path, name):
  """A new file path per example (a memory-mapped file must not be rewritten under its map)."""
  return tmp_path / f"{next(_NEW)}_{name}"


def _eq(got, want):
  assert got == want, (got, want)


# -- byte mutations and the shared oracle of text files --------------------------------------------------

@st.composite
def byte_mutated(draw, data: bytes):
  """`data` with maybe one byte-level edit: truncation, a flip, a bad byte, a BOM, CR or CRLF ends."""
  op = draw(st.sampled_from((None, None, "truncate", "flip", "bad_bytes", "bom", "crlf", "cr", "insert",
                             "delete")))
  if op == "truncate":
    data = data[:draw(st.integers(0, len(data)))]
  elif op == "flip" and data:
    at = draw(st.integers(0, len(data) - 1))
    data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
  elif op == "bad_bytes":
    at = draw(st.integers(0, len(data)))
    data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
  elif op == "bom":
    data = b"\xef\xbb\xbf" + data
  elif op in ("crlf", "cr"):
    data = data.replace(b"\n", b"\r\n" if op == "crlf" else b"\r")
  elif op == "insert":
    at = draw(st.integers(0, len(data)))
    data = data[:at] + draw(st.text(min_size=1, max_size=8)).encode("utf-8", "surrogatepass") + data[at:]
  elif op == "delete" and data:
    at = draw(st.integers(0, len(data) - 1))
    data = data[:at] + data[at + draw(st.integers(1, 8)):]
  return data


def _decode(data: bytes) -> str:
  """The text of a UTF-8 file without its byte-order mark; Invalid(line) where it is not UTF-8."""
  try:
    return data.decode("utf-8").removeprefix("\ufeff")
  except UnicodeDecodeError as e:
    raise Invalid(len(re.split(rb"\r\n|\r|\n", data[:e.start]))) from None


def _content_lines(data: bytes):
  """(1-based physical line, stripped text) of each non-blank line."""
  for n, line in enumerate(LINE_BREAK.split(_decode(data)), start=1):
    if line.strip():
      yield n, line.strip()


def _line_ends(draw):
  return draw(st.sampled_from(["\n", "\r\n", "\r"]))


# -- csvalignment.dat ------------------------------------------------------------------------------------

def _int_or_none(text):
  """The integer of `[+-]?[0-9]+`, None otherwise or past 30 significant digits (int() refuses 4300)."""
  if not re.fullmatch(r"[+-]?[0-9]+", text) or len(text.lstrip("+-").lstrip("0")) > 30:
    return None
  return int(text)


def _integer(n, field, text):
  value = _int_or_none(text)
  if value is None or not -2**31 <= value < 2**31:
    raise Invalid(n, field)
  return value


def expect_alignment(data):
  spans = []
  for n, line in _content_lines(data):
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 2:
      raise Invalid(n)
    start, end = (_integer(n, name, f) for name, f in zip(("start", "end"), fields))
    if (start, end) == (-1, -1):
      spans.append(None)
    elif start < 1:
      raise Invalid(n, "start")
    elif end < start:
      raise Invalid(n, "end")
    else:
      spans.append(reader.Span(start, end, n))
  return spans


def _number_text(draw, value):
  """`value` as a legal integer field: maybe a "+", leading zeros, spaces around."""
  text = str(abs(value)).rjust(draw(st.integers(0, 4)) + len(str(abs(value))), "0")
  sign = "-" if value < 0 else draw(st.sampled_from(["", "", "+"]))
  pad = st.sampled_from(["", "", " ", "\t", "  "])
  return draw(pad) + sign + text + draw(pad)


@st.composite
def alignment_files(draw):
  """(bytes, spans): a valid csvalignment.dat, with blank lines, odd spacing and line ends."""
  unit = st.integers(1, 2**31 - 1)
  spans = draw(st.lists(st.one_of(st.none(), st.tuples(unit, unit).map(sorted)), max_size=12))
  eol, lines, out = _line_ends(draw), [], []
  for span in spans:
    while draw(st.integers(0, 4)) == 0:
      lines.append(draw(st.sampled_from(["", " ", "\t"])))
    start, end = (-1, -1) if span is None else span
    lines.append(f"{_number_text(draw, start)},{_number_text(draw, end)}")
    out.append(None if span is None else reader.Span(start, end, len(lines)))
  text = eol.join(lines) + draw(st.sampled_from(["", eol, eol + eol]))
  return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode(), out


@_settings(100)
@given(file=alignment_files())
def test_alignment_round_trips(tmp_path, file):
  data, spans = file
  path = _fresh(tmp_path, "csvalignment.dat")
  path.write_bytes(data)
  assert reader.read_alignment(path) == spans


ALIGNMENT = fx.RECIPES["alpha"][3] + fx.RECIPES["beta"][3]


@_settings(250)
@given(data=st.data())
def test_read_alignment(tmp_path, data):
  original = ("\n".join(ALIGNMENT) + "\n").encode()
  path = _fresh(tmp_path, "csvalignment.dat")
  path.write_bytes(data.draw(mutated(original), label="file"))
  _check(lambda: reader.read_alignment(path), path, lambda: expect_alignment(path.read_bytes()), _eq)


# -- fps.txt ---------------------------------------------------------------------------------------------

def expect_fps(data):
  fps = None
  for n, line in _content_lines(data):
    if fps is not None:
      raise Invalid(n, "fps")
    if not re.fullmatch(r"\+?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", line):
      raise Invalid(n, "fps")
    fps = float(line)
    if not 0 < fps < math.inf:
      raise Invalid(n, "fps")
  if fps is None:
    raise Invalid(1, "fps")
  return fps


@_settings(60)
@given(fps=st.floats(1e-3, 1e6), style=st.sampled_from(["{!r}", "{:g}", "{:.3e}", "{:.6f}", "+{!r}", "{:E}"]),
       eol=st.sampled_from(["", "\n", "\r\n", "\r", "\n\n  \n"]), bom=st.booleans())
def test_fps_round_trips(tmp_path, fps, style, eol, bom):
  written = style.format(fps)
  path = _fresh(tmp_path, "fps.txt")
  path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + f" {written} {eol}".encode())
  assert reader.read_fps(path) == float(written)


@_settings(200)
@given(data=st.data())
def test_read_fps(tmp_path, data):
  original = data.draw(st.sampled_from([b"29.97\n", b"25\n", b"29.97002997002997", b"1.2e1\n"]), label="original")
  path = _fresh(tmp_path, "fps.txt")
  path.write_bytes(data.draw(mutated(original), label="file"))
  _check(lambda: reader.read_fps(path), path, lambda: expect_fps(path.read_bytes()), _eq)


# -- name lists (SPLITS/*/*.txt, ALL_RECIPES.txt) --------------------------------------------------------

def expect_names(data):
  out, seen = [], set()
  for n, name in _content_lines(data):
    if set(name) & {"/", "\\", "\x00"} or name in (".", "..") or name in seen:
      raise Invalid(n, "recipe")
    seen.add(name)
    out.append((n, name))
  return out


NAME = st.text(st.characters(blacklist_characters="/\\\x00\r\n", blacklist_categories=("Cs",)), min_size=1,
               max_size=12)


@_settings(80)
@given(names=st.lists(NAME, max_size=10), eol=st.sampled_from(["\n", "\r\n", "\r"]), bom=st.booleans())
def test_name_list_round_trips(tmp_path, names, eol, bom):
  names = list(dict.fromkeys(n.strip() for n in names if n.strip() not in ("", ".", "..")))
  path = _fresh(tmp_path, "ALL_RECIPES.txt")
  path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "".join(f"{n}{eol}" for n in names).encode())
  assert reader.read_name_list(path) == [(i, n) for i, n in enumerate(names, start=1)]


@_settings(200)
@given(data=st.data())
def test_read_name_list(tmp_path, data):
  original = data.draw(st.sampled_from(
      ["".join(f"{n}\n" for n in names) for split in fx.SPLITS.values() for names in split.values()]
      + ["".join(f"{n}\n" for n in sorted(fx.RECIPES)), "apple_pie\nchicken tikka masala\n..x\n.hidden\n"]),
      label="original")
  path = _fresh(tmp_path, "names.txt")
  path.write_bytes(data.draw(mutated(original.encode()), label="file"))
  _check(lambda: reader.read_name_list(path), path, lambda: expect_names(path.read_bytes()), _eq)


# -- id2word_tasty.txt: a dict literal, never evaluated ----------------------------------------------------

CODE = ("__import__('pathlib').Path({marker!r}).touch()", "open({marker!r}, 'w')", "exec('1')", "(lambda: 1)()",
        "[x for x in (1,)]", "f'{{1}}'", "dict(a=1)", "1 + 1", "b'a' * 10**12", "'a' * 99999999999", "10**10**10",
        "not 1", "~1", "1 if 1 else 2", "x", "x.y", "(yield)", "await x", "{{**{{}}}}", "...", "set()", "1j",
        "1+2j", "-0x10", "0o17", "0b11", "1_000", "'a' 'b'", "b'a' b'b'", "(1,)", "{{1}}", "[1]", "None", "True",
        "1.5", "b'\\xff'", "'\\ud800'", "'\\u00e9'", "b''", "2147483648", "-1", "9" * 5000, "0x" + "f" * 5000,
        "(" * 300 + ")" * 300, "[" * 150 + "]" * 150, "-" * 3000 + "1", "# a comment\n")


@st.composite
def id2word_entries(draw):
  """{id: word} with ids in [0, 2^31) and non-surrogate words; as bytes or str literals."""
  words = draw(st.dictionaries(st.integers(0, 2**31 - 1) | st.integers(0, 40), st.text(max_size=6), max_size=8))
  return {k: (w.encode() if draw(st.booleans()) else w) for k, w in words.items()}


@st.composite
def id2word_source(draw, entries):
  """Python source of a dict literal of `entries` ({id: bytes or str}), in one of several layouts."""
  if draw(st.booleans()):
    return repr(entries)  # How the released file and the fixture are written.
  items = []
  for key, word in entries.items():
    key_text = draw(st.sampled_from([str(key), hex(key), f"{key:_}", f"({key})", f"+{key}"]))
    items.append(f"{key_text}{draw(st.sampled_from([':', ': ', ' : ']))}{word!r}")
  separator = draw(st.sampled_from([", ", ",\n", ",\n  ", ",  # note\n "]))
  trailer = st.sampled_from(["", ",", ",\n", "\n"] if items else ["", "\n"])  # "{,}" is not Python.
  return "{" + draw(st.sampled_from(["", "\n", " "])) + separator.join(items) + draw(trailer) + "}" + draw(
      st.sampled_from(["", "\n", "\n\n", "  \n"]))


@_settings(80)
@given(data=st.data())
def test_id2word_round_trips(tmp_path, data):
  entries = data.draw(id2word_entries(), label="entries")
  source = data.draw(id2word_source(entries), label="source")
  eol = _line_ends(data.draw)
  path = _fresh(tmp_path, "id2word_tasty.txt")
  path.write_bytes((b"\xef\xbb\xbf" if data.draw(st.booleans()) else b"") + source.replace("\n", eol).encode())
  assert reader.read_id2word(path) == {k: w.decode() if isinstance(w, bytes) else w for k, w in entries.items()}


def expect_id2word(data):
  """The dictionary, or where it is wrong: the literal (field 'id2word'), a key ('id'), a word ('word')."""
  text = _decode(data)
  body = text.lstrip()
  if not body:
    raise Invalid(1, "id2word")
  first = len(LINE_BREAK.split(text[:len(text) - len(body)]))
  source = "\n" * (first - 1) + body
  try:
    tree = ast.parse(source, mode="eval")
  except SyntaxError as e:
    raise Invalid(e.lineno, "id2word") from None
  except (ValueError, MemoryError, RecursionError):
    raise Invalid(None, "id2word") from None
  try:
    table = ast.literal_eval(tree)
  except (ValueError, TypeError, MemoryError, RecursionError):
    raise Invalid(None, "id2word") from None
  if not isinstance(table, dict):
    raise Invalid(first, "id2word")
  lines = {}
  for node in tree.body.keys:
    key = ast.literal_eval(node)
    if type(key) is not int or not 0 <= key < 2**31 or key in lines:
      raise Invalid(node.lineno, "id")
    lines[key] = node.lineno
  words = {}
  for key, word in table.items():
    if isinstance(word, bytes):
      try:
        word = word.decode("utf-8")
      except UnicodeDecodeError:
        raise Invalid(lines[key], "word") from None
    if not isinstance(word, str) or re.search("[\ud800-\udfff]", word):
      raise Invalid(lines[key], "word")
    words[key] = word
  return words


@st.composite
def mutated_id2word(draw, marker):
  """Source of a dict literal with 0..3 edits of its entries (wrong types, code, duplicates, ...)."""
  entries = draw(id2word_entries())
  items = [[str(k), repr(w)] for k, w in entries.items()]
  code = st.sampled_from(CODE).map(lambda c: c.format(marker=str(marker)))
  opener, closer = "{", "}"
  for _ in range(draw(st.integers(0, 3))):
    op = draw(st.sampled_from(("key", "value", "duplicate", "delete", "insert", "swap", "container", "deep")))
    i = draw(st.integers(0, max(len(items) - 1, 0)))
    if op in ("key", "value") and items:
      items[i][op == "value"] = draw(code)
    elif op == "duplicate" and items:
      items.insert(draw(st.integers(0, len(items))), list(items[i]))
    elif op == "delete" and items:
      del items[i]
    elif op == "insert":
      items.insert(i, [draw(code), draw(code)])
    elif op == "swap" and items:
      items[i].reverse()
    elif op == "container":
      opener, closer = draw(st.sampled_from([("[", "]"), ("(", ")"), ("dict(", ")"), ("{**", "}"), ("", ""),
                                             ("{", ""), ("", "}"), ("{{", "}}")]))
    elif op == "deep":
      depth = draw(st.sampled_from([10, 90, 250, 2000]))
      items.append([str(draw(st.integers(0, 99))), "[" * depth + "b'x'" + "]" * depth])
  separator = draw(st.sampled_from([", ", ",\n", ",\n  "]))
  source = opener + separator.join(f"{k}: {v}" for k, v in items) + closer
  return draw(byte_mutated(source.encode("utf-8", "surrogatepass")))


@_settings(250)
@given(data=st.data())
def test_read_id2word(tmp_path, data):
  marker = tmp_path / "evaluated"
  path = _fresh(tmp_path, "id2word_tasty.txt")
  path.write_bytes(data.draw(mutated_id2word(marker), label="file"))
  _check(lambda: reader.read_id2word(path), path, lambda: expect_id2word(path.read_bytes()), _eq)
  assert not marker.exists(), "the dictionary was evaluated as code"


# -- recipe XML ------------------------------------------------------------------------------------------

XML_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff") | st.sampled_from(
    "\t\n &<>;,\"'\x85\u2028")


def _escaped(draw, text):
  """`text` as XML character data: escaped, in CDATA, or with character references."""
  how = draw(st.sampled_from(["escape", "escape", "cdata", "charref"]))
  if how == "cdata" and "]]>" not in text:
    return f"<![CDATA[{text}]]>"
  if how == "charref":
    return "".join(f"&#{ord(c)};" if draw(st.booleans()) else saxutils.escape(c) for c in text)
  return saxutils.escape(text)


def _name(text):
  fields = text.split(";")
  return " ".join((fields[1] if len(fields) > 1 else fields[0]).split(",", 1)[0].split())


@st.composite
def recipe_xml(draw, encoded):
  """(XML text, id2word or None, (ingredients, steps)): a valid recipe, plain or word-encoded."""
  if encoded:
    vocabulary = draw(st.dictionaries(st.integers(0, 2**31 - 1), st.text(XML_CHARS, min_size=1, max_size=6),
                                      min_size=1, max_size=10))
    ids = sorted(vocabulary)

    def texts(n):
      """(element text, decoded text) pairs: ids with any whitespace, signs and leading zeros."""
      out = []
      for _ in range(n):
        chosen = draw(st.lists(st.sampled_from(ids), max_size=6))
        tokens = [draw(st.sampled_from(["", "+", "0", "00"])) + str(i) for i in chosen]
        spaces = st.sampled_from([" ", "  ", "\t", "\n      "])
        out.append((draw(spaces).join(tokens) if tokens else draw(st.sampled_from(["", " "])),
                    " ".join(" ".join(vocabulary[i] for i in chosen).split())))
      return out
  else:
    vocabulary = None

    def texts(n):
      out = []
      for _ in range(n):
        t = draw(st.text(XML_CHARS, max_size=30))
        out.append((_escaped(draw, t), " ".join(t.split())))
      return out
  ingredients = texts(draw(st.integers(0, 5)))
  steps = texts(draw(st.integers(0, 6)))
  indent = draw(st.sampled_from(["", "\n", "\n  "]))
  noise = st.sampled_from(["", "", "<!-- a comment -->", "<?pi data?>", "<note lang='en'>x</note>", "<br/>"])
  parts = [draw(st.sampled_from(["<?xml version='1.0' encoding='UTF-8'?>\n", '<?xml version="1.0"?>', "",
                                 "<?xml version='1.0' encoding='utf-8' standalone='yes'?>\r\n"])),
           "<recipe>", indent, f"<url>{_escaped(draw, 'https://x.invalid/?a=1&b=2')}</url>", indent,
           "<ingredients>", draw(noise)]
  for element, _ in ingredients:
    parts += [indent, draw(st.sampled_from(["<ingredient>", "<ingredient n='1'>", '<ingredient\n  a="&amp;">'])),
              element, "</ingredient>", draw(noise)]
  parts += [indent, "</ingredients>", indent, draw(noise), "<steps_updated>"]
  for element, _ in steps:
    parts += [indent, "<steps_updated>", element, "</steps_updated>", draw(noise)]
  parts += [indent, "</steps_updated>", indent, "</recipe>", draw(st.sampled_from(["", "\n", "\n<!-- end -->\n"]))]
  names = [_name(t) for _, t in ingredients]
  return "".join(parts), vocabulary, ([n for n in names if n], [t for _, t in steps])


@_settings(100)
@given(data=st.data())
def test_recipe_xml_round_trips(tmp_path, data):
  text, id2word, expected = data.draw(recipe_xml(encoded=data.draw(st.booleans(), label="encoded")), label="xml")
  path = _fresh(tmp_path, "recipe.xml")
  eol = _line_ends(data.draw)
  path.write_bytes((b"\xef\xbb\xbf" if data.draw(st.booleans()) else b"") + text.replace("\n", eol).encode())
  assert reader.read_recipe_xml(path, id2word) == expected


class _Tree(xml.sax.ContentHandler):
  """Elements as [tag, line, text, children]: text is all character data directly inside the element."""

  def __init__(self):
    super().__init__()
    self.stack, self.roots, self.locator = [], [], None

  def setDocumentLocator(self, locator):
    self.locator = locator

  def startElement(self, name, attrs):
    node = [name, self.locator.getLineNumber(), [], []]
    (self.stack[-1][3] if self.stack else self.roots).append(node)
    self.stack.append(node)

  def endElement(self, name):
    self.stack.pop()

  def characters(self, content):
    if self.stack:
      self.stack[-1][2].append(content)


def expect_recipe(data, id2word):
  """(ingredients, steps) of a recipe XML, read with xml.sax (not the reader's expat handlers)."""
  tree = _Tree()
  try:
    xml.sax.parseString(data, tree)
  except xml.sax.SAXParseException as e:
    raise Invalid(e.getLineNumber(), "xml") from None
  except (LookupError, ValueError):  # Declared encoding (line 1) that Python cannot map to bytes.
    raise Invalid(1, "xml") from None
  root = tree.roots[0]

  def child(node, tag):
    found = [c for c in node[3] if c[0] == tag]
    if not found:
      raise Invalid(node[1], tag)
    return found[0]

  def decoded(node, field):
    tokens = "".join(node[2]).split()
    if id2word is None:
      return " ".join(tokens)
    for t in tokens:
      if _int_or_none(t) not in id2word:
        raise Invalid(node[1], field)
    return " ".join(" ".join(id2word[int(t)] for t in tokens).split())

  names = [_name(decoded(n, "ingredient")) for n in child(root, "ingredients")[3] if n[0] == "ingredient"]
  steps = [decoded(n, "steps_updated") for n in child(root, "steps_updated")[3] if n[0] == "steps_updated"]
  return [n for n in names if n], steps


ENCODINGS = ("UTF-8", "utf-8", "ascii", "latin-1", "ISO-8859-1", "cp1252", "UTF-16", "utf-32", "shift_jis", "foo",
             "rot13", "hex", "zlib", "idna", "undefined", "mbcs", "koi8-r", "")
BOMB = ('<!DOCTYPE recipe [<!ENTITY a "aaaaaaaaaa">' + "".join(
    f'<!ENTITY {b} "{("&" + a + ";") * 10}">' for a, b in zip("abcdefg", "bcdefgh")) + "]>")


@st.composite
def mutated_xml(draw, text, id2word):
  """The bytes of XML `text` with 0..2 markup edits and maybe one byte edit."""
  lines = text.split("\n")
  for _ in range(draw(st.integers(0, 2))):
    op = draw(st.sampled_from(("insert", "delete_line", "duplicate_line", "swap_lines", "encoding", "bomb",
                               "entity", "deep", "huge", "token", "rename", "nest")))
    i = draw(st.integers(0, len(lines) - 1))
    if op == "insert":
      at = draw(st.integers(0, len(lines[i])))
      snippet = draw(st.sampled_from(["<", ">", "&", "&amp", "&nope;", "]]>", "<!--", "-->", "<a>", "</a>", "<a/>",
                                      "<ingredient>7</ingredient>", "</ingredients>", "<steps_updated>", "\x00",
                                      "<?xml version='1.0'?>", "<![CDATA[", "'", '"', "=", "<1>"])
                     | st.text(XML_CHARS, min_size=1, max_size=6))
      lines[i] = lines[i][:at] + snippet + lines[i][at:]
    elif op == "delete_line" and len(lines) > 1:
      del lines[i]
    elif op == "duplicate_line":
      lines.insert(draw(st.integers(0, len(lines))), lines[i])
    elif op == "swap_lines":
      j = draw(st.integers(0, len(lines) - 1))
      lines[i], lines[j] = lines[j], lines[i]
    elif op == "encoding":
      declaration = f"<?xml version='1.0' encoding='{draw(st.sampled_from(ENCODINGS))}'?>"
      lines = [declaration] + [line for line in lines if not line.startswith("<?xml")]
    elif op in ("bomb", "entity"):
      dtd = BOMB if op == "bomb" else '<!DOCTYPE recipe [<!ENTITY w "1 2"><!ENTITY ext SYSTEM "/etc/hostname">]>'
      at = next((k + 1 for k, line in enumerate(lines) if line.startswith("<?xml")), 0)
      lines.insert(at, dtd)
      k = next((k for k, line in enumerate(lines) if "<steps_updated>" in line), 0)
      lines[k] = lines[k].replace("<steps_updated>", f"<steps_updated>{draw(st.sampled_from(['&h;', '&w;', '&ext;']))}",
                                  1)
    elif op in ("deep", "nest"):  # Elements nested deeply, inside a step or around the root.
      depth = draw(st.sampled_from([50, 3000, 20000]))
      k = next((k for k, line in enumerate(lines) if "</steps_updated>" in line), i)
      if op == "deep":
        lines[k] = lines[k].replace("</steps_updated>", "<x>" * depth + "1" + "</x>" * depth + "</steps_updated>", 1)
      else:
        lines = ["<wrap>" * depth] + lines + ["</wrap>" * depth]
    elif op == "huge":
      k = next((k for k, line in enumerate(lines) if "</steps_updated>" in line), i)
      lines[k] = lines[k].replace("</steps_updated>", " 1" * 200_000 + "</steps_updated>", 1)
    elif op == "token":
      bad = draw(st.sampled_from(["9" * 5000, "-1", "+1", "007", "2147483648", "1e3", "x", "\u0663", "1_0", "0x1"])
                 | st.integers(-5, 50).map(str))
      k = next((k for k, line in enumerate(lines) if re.search(r">[^<]*[0-9]", line)), i)
      lines[k] = re.sub(r">([^<]*?)(\d+)", lambda m: f">{m.group(1)}{bad}", lines[k], count=1)
    elif op == "rename":
      old = draw(st.sampled_from(["ingredients", "steps_updated", "ingredient", "recipe"]))
      lines[i] = lines[i].replace(old, draw(st.sampled_from(["ingredientz", "Steps", "ingredient", "x"])))
  return draw(byte_mutated("\n".join(lines).encode()))


@_settings(200)
@given(data=st.data())
def test_read_recipe_xml(tmp_path, data):
  text, id2word, _ = data.draw(recipe_xml(encoded=data.draw(st.booleans(), label="encoded")), label="xml")
  path = _fresh(tmp_path, "recipe.xml")
  path.write_bytes(data.draw(mutated_xml(text, id2word), label="file"))
  _check(lambda: reader.read_recipe_xml(path, id2word), path, lambda: expect_recipe(path.read_bytes(), id2word),
         _eq)


# -- features .npy ---------------------------------------------------------------------------------------

def expect_features(data):
  """The float32 [rows, D] array of .npy bytes, parsed with numpy.lib.format, or where it is wrong."""
  if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
    raise Invalid()  # An .npz archive ('shape') or a broken one ('features').
  f = io.BytesIO(data)
  try:
    version = np.lib.format.read_magic(f)
    shape, fortran, dtype = _read_array_header(f, version)
  except Exception:  # pylint: disable=broad-except
    raise Invalid(None, "features") from None
  if dtype.hasobject or min(shape, default=0) < 0:
    raise Invalid(None, "features")
  offset, count = f.tell(), math.prod(shape)
  if offset + count * dtype.itemsize > len(data):
    raise Invalid(None, "features")
  shape += dtype.shape
  if len(shape) != 2 or min(shape) < 1:
    raise Invalid(None, "shape")
  if dtype != np.float32:
    raise Invalid(None, "dtype")
  return np.frombuffer(data, "<f4", count=count, offset=offset).reshape(shape, order="F" if fortran else "C")


def _npy(array, version=None, allow_pickle=False):
  buffer = io.BytesIO()
  np.lib.format.write_array(buffer, np.asanyarray(array), version=version, allow_pickle=allow_pickle)
  return buffer.getvalue()


FLOATS = st.floats(width=32, allow_nan=False)


@st.composite
def feature_arrays(draw):
  rows, dim = draw(st.integers(1, 6)), draw(st.integers(1, 5))
  a = np.array(draw(st.lists(FLOATS, min_size=rows * dim, max_size=rows * dim)), np.float32).reshape(rows, dim)
  return np.asfortranarray(a) if draw(st.booleans()) else a


@_settings(80)
@given(array=feature_arrays(), version=st.sampled_from([None, (1, 0), (2, 0), (3, 0)]), mmap=st.booleans())
def test_features_round_trip(tmp_path, array, version, mmap):
  path = _fresh(tmp_path, "resnet50.npy")
  path.write_bytes(_npy(array, version))
  got = feature_files.read_features(path, mmap=mmap)
  assert got.dtype == np.float32 and isinstance(got, np.memmap) == mmap
  np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("shape, field", [((2**70, 1), "dtype"), ((3, 2**63 - 1), "dtype"), ((2**70,), "shape")])
def test_zero_size_dtype_with_huge_shape_names_its_field(tmp_path, shape, field):
  """numpy's map overflows on such a header (found by the hunt below): the file is of the wrong dtype, not unreadable."""
  path = _fresh(tmp_path, "resnet50.npy")
  buffer = io.BytesIO()
  np.lib.format.write_array_header_2_0(buffer, {"descr": "V0", "fortran_order": False, "shape": shape})
  path.write_bytes(buffer.getvalue())
  with pytest.raises(Invalid):
    expect_features(path.read_bytes())
  with pytest.raises(DataError, match=f"{re.escape(str(path))}: field '{field}'"):
    feature_files.read_features(path)


DESCRS = ("<f4", "<f4", ">f4", "<f8", "|O", "<U3", [("a", "<f4")], ("<f4", (2,)), 5, "V0", "<f4 ", "f4", "=f4")
SHAPES = ((2000000000000, 3), (-1, 3), (3, -1), (1, 1, 1), (0, 3), (2**63 - 1, 2**63 - 1), (2**70, 1), [2, 3],
          ("a", 1), (2, 2.0), ())


@st.composite
def mutated_npy(draw):
  """Bytes of a features file with one array-level or header edit and maybe one byte edit."""
  array = draw(feature_arrays())
  op = draw(st.sampled_from(("none", "dtype", "shape", "header", "object", "npz", "pickle", "zip", "empty")))
  if op == "dtype":
    dtype = draw(st.sampled_from([np.float64, np.float16, np.int32, np.uint8, np.bool_, np.complex64, ">f4", "U4",
                                  "S4", [("a", "<f4")], "V4"]))
    with np.errstate(all="ignore"):  # Casts to float16 / integers overflow: fine, any values will do.
      data = _npy(array.astype(dtype))
  elif op == "shape":
    data = _npy(draw(st.sampled_from([array.reshape(-1), array[None], array[:0], array[:, :0], array[0, 0],
                                      array.reshape(array.shape + (1,)), array.T])))
  elif op == "header":  # A well-formed header saying anything, then the array's bytes.
    header = {"descr": draw(st.sampled_from(DESCRS)), "fortran_order": draw(st.sampled_from([False, True, 0, None])),
              "shape": draw(st.sampled_from((array.shape, (len(array) + 1, array.shape[1]), array.shape[::-1])
                                            + SHAPES))}
    buffer = io.BytesIO()
    if draw(st.booleans()):
      np.lib.format.write_array_header_1_0(buffer, header)
    else:
      np.lib.format.write_array_header_2_0(buffer, header)
    data = buffer.getvalue() + array.tobytes(order="F" if header["fortran_order"] else "C")
  elif op == "object":  # Must be refused, never unpickled.
    data = _npy(np.array([[1.0, {"a": 1}]], dtype=object), allow_pickle=True)
  elif op == "npz":
    buffer = io.BytesIO()
    np.savez(buffer, features=array)
    data = buffer.getvalue()
  elif op == "pickle":
    data = pickle.dumps(array)
  elif op == "zip":
    data = b"PK\x03\x04" + draw(st.binary(max_size=40))
  elif op == "empty":
    data = b""
  else:
    data = _npy(array, draw(st.sampled_from([None, (1, 0), (2, 0), (3, 0)])))
  return draw(byte_mutated(data))


@_settings(250)
@given(data=st.data())
def test_read_features(tmp_path, data):
  path = _fresh(tmp_path, "resnet50.npy")
  path.write_bytes(data.draw(mutated_npy(), label="file"))
  mmap = data.draw(st.booleans(), label="mmap")

  def compare(got, want):
    assert got.dtype == np.float32 and isinstance(got, np.memmap) == mmap
    assert got.shape == want.shape and got.tobytes() == want.tobytes()

  _check(lambda: feature_files.read_features(path, mmap=mmap), path, lambda: expect_features(path.read_bytes()), compare)


# -- vocabulary (text.Vocab.load) ------------------------------------------------------------------------

def expect_vocab(data):
  lines = LINE_BREAK.split(_decode(data))
  if lines[-1] == "":
    lines.pop()
  first = {}
  for n, token in enumerate(lines, start=1):
    if n <= 4 and token != tasty_text.SPECIALS[n - 1] or len(token.split()) != 1 or token.strip() != token \
        or token in first:
      raise Invalid(n, "token")
    first[token] = n
  if len(lines) < 4:
    raise Invalid(len(lines) + 1, "token")
  return tuple(lines)


@_settings(60)
@given(texts=st.lists(st.text(max_size=30), max_size=6), min_count=st.integers(1, 2))
def test_vocab_round_trips(tmp_path, texts, min_count):
  vocab = tasty_text.Vocab.build(texts, min_count)
  path = _fresh(tmp_path, "vocab.txt")
  vocab.save(path)
  assert tasty_text.Vocab.load(path) == vocab


@_settings(200)
@given(data=st.data())
def test_vocab_load(tmp_path, data):
  vocab = tasty_text.Vocab.build(data.draw(st.lists(st.text(max_size=20), max_size=4), label="texts"))
  original = ("\n".join(vocab.tokens) + "\n").encode()
  path = _fresh(tmp_path, "vocab.txt")
  path.write_bytes(data.draw(mutated(original), label="file"))
  _check(lambda: tasty_text.Vocab.load(path), path, lambda: expect_vocab(path.read_bytes()),
         lambda got, want: _eq(got.tokens, want))


# -- what fuzzing found, pinned ----------------------------------------------------------------------------

@pytest.mark.parametrize("read, data, message", [
    # ValueError: int() of a field of more than 4300 digits.
    (reader.read_alignment, b"1," + b"9" * 5000, ":1: field 'end': '999"),
    (reader.read_alignment, b"1,4\n1,2147483648\n", ":2: field 'end': '2147483648' is out of the 32-bit"),
    # Line numbers counted "\n" only (CR files), or also "\x85", "\u2028", form feeds (str.splitlines).
    (reader.read_alignment, b"1,2\r3,4\r\xff", ":3: not UTF-8: byte 0xff"),
    (reader.read_alignment, b"1,2\x0c\n5,x\n", ":2: field 'end': expected an integer"),  # Was line 3.
    (reader.read_alignment, "1,2\u20283,4\n".encode(), ":1: expected 2 fields (start, end), got 3"),
    (reader.read_name_list, "alpha\x85beta\nalpha\x85beta\n".encode(), ":2: field 'recipe': 'alpha\\x85beta' is "
                                                                        "listed twice"),
    (reader.read_name_list, b"alpha\nbe\x00ta\n", ":2: field 'recipe': 'be\\x00ta' is not a recipe folder"),
    # float() read "inf", "1e400", "1_0" and Arabic digits; a second line was ignored.
    (reader.read_fps, b"inf\n", ":1: field 'fps': expected a positive number, got 'inf'"),
    (reader.read_fps, b"1e400", ":1: field 'fps': expected a positive number"),
    (reader.read_fps, "\u0663\n".encode(), ":1: field 'fps': expected a positive number"),
    (reader.read_fps, b"29.97\n30\n", ":2: field 'fps': expected one number"),
    # ValueError printing a huge int key; line 0 / None / the line after stripping leading blank lines.
    (reader.read_id2word, b"{0x" + b"f" * 5000 + b": 1}", ":1: key <int too large to print>: field 'id'"),
    (reader.read_id2word, b"{(0x" + b"f" * 5000 + b",): 1}", ":1: key <tuple too large to print>: field 'id'"),
    (reader.read_id2word, b"", ":1: field 'id2word': empty file"),
    (reader.read_id2word, b"\n\n{1: b'a'", ":3: field 'id2word': not a Python literal: '{' was never closed"),
    (reader.read_id2word, b"{1: b'a',\n 2: b'b'}\n\x00", ":3: field 'id2word': not a Python literal"),
    (reader.read_id2word, b"{1: '\\ud800'}", ":1: key 1: field 'word': not UTF-8"),  # Unencodable later.
    (reader.read_id2word, b"{1: b'a',\n 1: b'b'}", ":2: key 1: field 'id': listed twice (first on line 1)"),
    (reader.read_id2word, b"{-1: b'a'}", ":1: key -1: field 'id': expected an integer word id"),
    # LookupError / ValueError / UnicodeError out of pyexpat's handler of unknown encodings.
    (reader.read_recipe_xml, b"<?xml version='1.0' encoding='foo'?><r/>", ":1: field 'xml': unsupported encoding"),
    (reader.read_recipe_xml, b"<?xml version='1.0' encoding='rot13'?><r/>", ":1: field 'xml': unsupported "),
    (reader.read_recipe_xml, b"<?xml version='1.0' encoding='shift_jis'?><r/>", ":1: field 'xml': unsupported "),
    (reader.read_recipe_xml, b"<?xml version='1.0' encoding='idna'?><r/>", ":1: field 'xml': unsupported "),
    # zipfile.BadZipFile; MemoryError allocating the header's 21.8 TiB.
    (feature_files.read_features, b"PK\x03\x04garbage", ": field 'features': cannot read as .npy: BadZipFile"),
    (feature_files.read_features, _npy(np.zeros((2, 3), np.float32)).replace(b"(2, 3)", b"(2000000000000, 3)"),
     ": field 'features': cannot read as .npy: ValueError: mmap length is greater than file size"),
    (tasty_text.Vocab.load, b"<pad>\r<bos>\r<eos>\r<unk>\ra\xff\n", ":5: not UTF-8: byte 0xff"),  # No line.
])
def test_errors_found_by_fuzzing(tmp_path, read, data, message):
  path = tmp_path / "f"
  path.write_bytes(data)
  with pytest.raises(DataError) as e:
    read(path)
  assert str(e.value).startswith(f"{path}{message}"), str(e.value)


def test_huge_word_id_in_an_encoded_recipe(tmp_path):
  path = tmp_path / "recipe_encoded.xml"
  path.write_text(fx.xml(["1"], ["1 " + "9" * 5000]))  # ValueError: int() of 5000 digits.
  with pytest.raises(DataError, match=re.escape(f"{path}:8: field 'steps_updated': word id 99999999999999999999... "
                                                "is not in id2word_tasty.txt")):
    reader.read_recipe_xml(path, {1: "a"})


def test_a_bom_is_not_part_of_pad(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_bytes(b"\xef\xbb\xbf<pad>\n<bos>\n<eos>\n<unk>\nchop\n")
  assert tasty_text.Vocab.load(path).tokens == (*tasty_text.SPECIALS, "chop")


def test_object_arrays_are_never_unpickled(tmp_path):
  marker = tmp_path / "unpickled"

  class Payload:
    def __reduce__(self):
      return (pathlib.Path.touch, (marker,))

  path = tmp_path / "resnet50.npy"
  path.write_bytes(_npy(np.array([[Payload()]], dtype=object), allow_pickle=True))
  for mmap in (False, True):
    with pytest.raises(DataError, match=re.escape(f"{path}: field 'features': cannot read as .npy")):
      feature_files.read_features(path, mmap=mmap)
  path.write_bytes(pickle.dumps(Payload()))
  with pytest.raises(DataError, match="field 'features'"):
    feature_files.read_features(path)
  assert not marker.exists()
