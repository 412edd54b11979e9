"""Readers of public recipe-text corpora (DATA_FORMATS.md, section 6), streamed one recipe at a time.

Formats (`FORMATS`):
- `recipenlg`: RecipeNLG `full_dataset.csv`, about 2.2 M rows. A header whose first column is unnamed
  (the row index), then `title`, `ingredients`, `directions`, `link`, `source`, `NER`; the last three
  lists are JSON arrays of strings inside CSV quoting. Steps are `directions`, ingredient names `NER`
  (names, as Tasty's ingredients are), the url is `link` (often without a scheme), the id the index
  column (the 0-based data row where that column is absent). `title`, `directions`, `link` and `NER`
  are required; the other columns are not read.
- `recipe1m`: Recipe1M / Recipe1M+ `layer1.json`, about 1.3 GB: one JSON array of objects with `id`,
  `ingredients` and `instructions` (required; lists of `{"text": ...}`), `title` and `url` (optional).
  Read in chunks, one element at a time, never whole. Ingredients there are full lines ("2 cups
  flour"), kept as they are.
- `text`: one recipe a line, its steps separated by `delimiter` (default "|", each step stripped of
  surrounding spaces, so "a | b" and "a|b" read alike); blank lines skipped; no ingredients, no url;
  the id is the line number.

Lines end at "\\n", "\\r\\n" or "\\r", as in the other readers of `anticipax.data`. Malformed content
raises one `DataError` naming the file, the 1-based line (where the CSV record or the JSON element
starts, or where JSON syntax breaks) and the field. Empty lists are valid: such a recipe is skipped,
and counted, by the builder.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
import csv
import dataclasses
import itertools
import json
import os
import pathlib
import re

from anticipax import paths
from anticipax.data.errors import DataError

PathLike = str | os.PathLike
FORMATS = ("recipenlg", "recipe1m", "text")
RECIPENLG_COLUMNS = ("title", "ingredients", "directions", "link", "source", "NER")
_REQUIRED_COLUMNS = ("title", "directions", "link", "NER")
DEFAULT_DELIMITER = "|"
CHUNK_SIZE = 1 << 20
# A recipe is kilobytes; an element this long means a broken file (e.g. a quote never closed), which
# is reported instead of being read into memory to the end of a 1.3 GB file.
MAX_ELEMENT_CHARS = 64 << 20
_BOM = b"\xef\xbb\xbf"
_PIECE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_BREAK = re.compile(r"\r\n|\r|\n")
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


@dataclasses.dataclass(frozen=True)
class CorpusRecipe:
  """One recipe as read, before normalization.

  Attributes:
    id: its id in the corpus (RecipeNLG index, Recipe1M id, line number of a text file).
    title: "" when the format has none.
    url: the source page as written ("" when unknown).
    ingredients: ingredient names (RecipeNLG NER) or lines (Recipe1M); () for text.
    steps: the step sentences as in the file.
    where: `path:line` (Recipe1M: `path:line: element i`), for messages.
  """
  id: str
  title: str
  url: str
  ingredients: tuple[str, ...]
  steps: tuple[str, ...]
  where: str


def _show(value, limit: int = 60) -> str:
  """`repr(value)`, at most `limit` characters; also for values too large or too deep to print."""
  try:
    text = repr(value)
  except (ValueError, RecursionError):
    return f"<{type(value).__name__} too large to print>"
  return text if len(text) <= limit else text[:limit - 3] + "..."


def _open(path: pathlib.Path):
  try:
    return paths.path(path).open("rb")  # local or gs://
  except OSError as e:
    raise DataError(f"{path}: cannot read: {e}") from e


def _physical_lines(path: pathlib.Path) -> Iterator[tuple[int, str]]:
  """Yields `(1-based line, text with its line break)`, decoding one line at a time.

  Splitting happens on bytes, before decoding: "\\r" and "\\n" never occur inside a UTF-8 character,
  and a bad byte is then reported on its own line.
  """
  with _open(path) as f:
    line = 0
    for raw in f:  # Ends after b"\n" only; a lone b"\r" is split below.
      if line == 0:
        raw = raw.removeprefix(_BOM)
      for piece in (_PIECE.findall(raw) if b"\r" in raw else (raw,)):
        line += 1
        try:
          yield line, piece.decode("utf-8")
        except UnicodeDecodeError as e:
          raise DataError(f"{path}:{line}: not UTF-8: byte {piece[e.start]:#04x}: {e.reason}") from e


def _storable(text: str, at: str, field: str, what: str) -> str:
  """`text`, checked to encode as UTF-8 (JSON's "\\ud800" escape decodes to a lone surrogate, which
  cannot be stored)."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError as e:
    raise DataError(f"{at}: field '{field}': {what} is not valid Unicode: {e.reason}") from e
  return text


def _json_strings(value: str, at: str, field: str) -> tuple[str, ...]:
  """A RecipeNLG list column: a JSON array of strings."""
  what = f"{at}: field '{field}': not a JSON array of strings"
  try:
    items = json.loads(value)
  except json.JSONDecodeError as e:
    raise DataError(f"{what}: {e.msg} (char {e.pos})") from e
  except (ValueError, RecursionError) as e:  # An integer of over 4300 digits; nesting past the stack.
    raise DataError(f"{what}: {type(e).__name__}") from e
  if not isinstance(items, list):
    raise DataError(f"{what}: got {_show(items)}")
  for i, item in enumerate(items):
    if not isinstance(item, str):
      raise DataError(f"{what}: item {i} is {_show(item)}")
    _storable(item, at, field, f"item {i}")
  return tuple(items)


class _Feed:
  """Feeds `csv.reader` physical lines and remembers the line where the current record started."""

  def __init__(self, lines: Iterator[tuple[int, str]]):
    self._lines = lines
    self.start: int | None = None
    self.last = 0

  def __iter__(self):
    return self

  def __next__(self) -> str:
    line, text = next(self._lines)
    if self.start is None:
      self.start = line
    self.last = line
    return text


def _records(path: pathlib.Path) -> Iterator[tuple[int, list[str]]]:
  """`(line where the record starts, fields)` of each non-empty CSV record."""
  # RecipeNLG's longest fields exceed csv's default limit of 128 KiB.
  csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
  feed = _Feed(_physical_lines(path))
  # strict: a stray quote is an error, not a silent merge of the rows up to the next quote.
  records = csv.reader(feed, strict=True)
  while True:
    feed.start = None
    try:
      row = next(records)
    except StopIteration:
      return
    except csv.Error as e:
      raise DataError(f"{path}:{feed.start or feed.last + 1}: field 'csv': broken CSV: {e}") from e
    if row and (len(row) > 1 or row[0].strip()):  # A blank or whitespace-only line is no record.
      yield feed.start, row


def read_recipenlg(path: PathLike) -> Iterator[CorpusRecipe]:
  """Streams the recipes of a RecipeNLG `full_dataset.csv` (see the module docstring).

  Args:
    path: the CSV file.

  Yields:
    One `CorpusRecipe` per data row, in file order; `where` is the line where the record starts.
  """
  path = paths.path(path)
  records = _records(path)
  header_line, header = next(records, (1, []))
  columns = {}
  for i, name in enumerate(header):
    name = name.strip()
    if name in columns and name in _REQUIRED_COLUMNS:
      raise DataError(f"{path}:{header_line}: field '{name}': column named twice (columns {columns[name] + 1} "
                      f"and {i + 1})")
    columns.setdefault(name, i)
  for name in _REQUIRED_COLUMNS:
    if name not in columns:
      raise DataError(f"{path}:{header_line}: field '{name}': missing column; the header has "
                      f"{_show([h.strip() for h in header], 200)}")
  has_index = bool(header) and not header[0].strip()
  title, directions, link, ner = (columns[c] for c in _REQUIRED_COLUMNS)
  for row_number, (line, row) in enumerate(records):
    if len(row) != len(header):
      name = header[len(row)].strip() if len(row) < len(header) else f"#{len(row)}"
      raise DataError(f"{path}:{line}: field '{name}': expected {len(header)} fields as in the header "
                      f"(line {header_line}), got {len(row)}")
    at = f"{path}:{line}"
    yield CorpusRecipe(
        id=(row[0].strip() if has_index else "") or str(row_number),
        title=row[title], url=row[link].strip(),
        ingredients=_json_strings(row[ner], at, "NER"),
        steps=_json_strings(row[directions], at, "directions"), where=at)


class _JsonStream:
  """A window on a large JSON file: text read in chunks, a position and its line number.

  `buf[pos:]` is what is not consumed yet; `line` is the line of `buf[pos]`. Consumed text is
  dropped from time to time, so memory holds about one chunk and one element.
  """

  def __init__(self, path: pathlib.Path, file, chunk_size: int):
    self.path, self._file, self._chunk_size = path, file, chunk_size
    self.buf, self.pos, self.line = "", 0, 1
    self.eof = False
    self._pending = b""  # The first bytes of a character cut by the chunk boundary.
    self._started = False

  def more(self, size: int = 0) -> bool:
    """Appends the next chunk (or `size` bytes, if larger) to `buf`; False at the end of the file."""
    if self.eof:
      return False
    data = self._file.read(max(size, self._chunk_size))
    raw, self.eof = self._pending + data, not data
    try:
      text, self._pending = raw.decode("utf-8"), b""
    except UnicodeDecodeError as e:
      if self.eof or e.reason != "unexpected end of data":
        before = self.buf[self.pos:] + raw[:e.start].decode("utf-8")
        raise DataError(f"{self.path}:{self.line + len(_BREAK.findall(before))}: not UTF-8: byte "
                        f"{raw[e.start]:#04x}: {e.reason}") from e
      text, self._pending = raw[:e.start].decode("utf-8"), raw[e.start:]
    if not self._started and text:
      text, self._started = text.removeprefix("\ufeff"), True
    self.buf += text
    return not self.eof

  def line_of(self, position: int) -> int:
    return self.line + len(_BREAK.findall(self.buf, self.pos, position))

  def advance(self, position: int) -> None:
    self.line, self.pos = self.line_of(position), position
    if self.pos > self._chunk_size:  # Drop consumed text (kept while small: slicing copies).
      self.buf, self.pos = self.buf[self.pos:], 0

  def skip_space(self) -> str:
    """Consumes JSON whitespace; returns the next character ("" at the end of the file)."""
    while True:
      end = _JSON_SPACE.match(self.buf, self.pos).end()
      # Whitespace at the end of the window may go on in the next chunk ("\r" then "\n").
      if end < len(self.buf) or not self.more():
        break
    self.advance(end)
    return self.buf[self.pos:self.pos + 1]

  def peek(self, n: int = 20) -> str:
    """The next `n` characters (fewer at the end of the file), for messages that show them."""
    while len(self.buf) - self.pos < n and self.more():
      pass
    return self.buf[self.pos:self.pos + n]

  def value(self, index: int):
    """Decodes the JSON value at `pos`, reading more chunks while it is incomplete."""
    while True:
      try:
        value, end = _DECODER.raw_decode(self.buf, self.pos)
      except json.JSONDecodeError as e:
        # Input cut inside a value fails at its very end (a few characters before it in a cut
        # escape or literal), or at the start of an unclosed string. At the end of the file only
        # the unambiguous cases count as truncation.
        unclosed = e.pos == len(self.buf) or e.msg.startswith("Unterminated string")
        if (unclosed or e.pos >= len(self.buf) - 16) and not self.eof:
          if len(self.buf) - self.pos > MAX_ELEMENT_CHARS:
            raise DataError(f"{self.path}:{self.line}: element {index}: field 'json': longer than "
                            f"{MAX_ELEMENT_CHARS} characters; is a quote or bracket never closed?") from e
          # At least as much again as the element so far: a long element is decoded O(log) times.
          self.more(len(self.buf) - self.pos)
          continue
        if unclosed:
          raise DataError(f"{self.path}:{self.line_of(len(self.buf))}: element {index}: field 'array': "
                          f"truncated: the file ends inside the element ({e.msg})") from e
        raise DataError(f"{self.path}:{self.line_of(e.pos)}: element {index}: field 'json': not valid "
                        f"JSON: {e.msg}") from e
      except (ValueError, RecursionError) as e:  # An integer of over 4300 digits; deep nesting.
        raise DataError(f"{self.path}:{self.line}: element {index}: field 'json': not valid JSON: "
                        f"{type(e).__name__}") from e
      # A number or literal at the end of the window may go on in the next chunk.
      if end == len(self.buf) and not isinstance(value, (dict, list, str)) and self.more():
        continue
      self.advance(end)
      return value


def _json_elements(path: pathlib.Path, chunk_size: int) -> Iterator[tuple[int, int, object]]:
  """`(index, line where it starts, value)` of each element of the top-level JSON array."""
  with _open(path) as f:
    s = _JsonStream(path, f, chunk_size)
    if s.skip_space() != "[":
      raise DataError(f"{path}:{s.line}: field 'array': expected a JSON array of recipes, got "
                      f"{_show(s.peek()) if s.peek() else 'an empty file'}")
    s.advance(s.pos + 1)
    if s.skip_space() == "]":
      s.advance(s.pos + 1)
    else:
      for index in itertools.count():
        line = s.line
        value = s.value(index)
        yield index, line, value
        c = s.skip_space()
        if c == "]":
          s.advance(s.pos + 1)
          break
        if c != ",":
          raise DataError(
              f"{path}:{s.line}: field 'array': " + (f"truncated: the array is not closed after element {index}"
                                                     if not c else f"expected ',' or ']' after element "
                                                     f"{index}, got {_show(s.peek())}"))
        s.advance(s.pos + 1)
        s.skip_space()
    if s.skip_space():
      raise DataError(f"{path}:{s.line}: field 'array': text after the array: {_show(s.peek())}")


def _texts(items, at: str, field: str) -> tuple[str, ...]:
  """A Recipe1M list of `{"text": ...}` objects."""
  if not isinstance(items, list):
    raise DataError(f"{at}: field '{field}': expected a list of {{\"text\": string}} objects, got "
                    f"{_show(items)}")
  for i, item in enumerate(items):
    if not isinstance(item, dict) or not isinstance(item.get("text"), str):
      raise DataError(f"{at}: field '{field}': item {i}: expected {{\"text\": string}}, got {_show(item)}")
    _storable(item["text"], at, field, f"item {i}")
  return tuple(item["text"] for item in items)


def read_recipe1m(path: PathLike, *, chunk_size: int = CHUNK_SIZE) -> Iterator[CorpusRecipe]:
  """Streams the recipes of a Recipe1M / Recipe1M+ `layer1.json` (see the module docstring).

  Args:
    path: the JSON file.
    chunk_size: bytes read at a time (tests use tiny ones to cut elements across chunks).

  Yields:
    One `CorpusRecipe` per array element, in file order; `where` names the element's line and index.
  """
  path = paths.path(path)
  for index, line, obj in _json_elements(path, chunk_size):
    at = f"{path}:{line}: element {index}"
    if not isinstance(obj, dict):
      raise DataError(f"{at}: field 'array': expected a recipe object, got {_show(obj)}")
    for key in ("id", "ingredients", "instructions"):
      if key not in obj:
        raise DataError(f"{at}: field '{key}': missing")
    fields = {}
    for key in ("id", "title", "url"):
      value = obj.get(key, "")
      if key == "id" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
      if not isinstance(value, str):
        raise DataError(f"{at}: field '{key}': expected a string, got {_show(value)}")
      fields[key] = _storable(value, at, key, "the value")
    yield CorpusRecipe(id=fields["id"], title=fields["title"], url=fields["url"].strip(),
                       ingredients=_texts(obj["ingredients"], at, "ingredients"),
                       steps=_texts(obj["instructions"], at, "instructions"), where=at)


def read_text(path: PathLike, *, delimiter: str = DEFAULT_DELIMITER) -> Iterator[CorpusRecipe]:
  """Streams a plain-text corpus: one recipe a line, steps separated by `delimiter`.

  Args:
    path: the text file (UTF-8; blank lines skipped).
    delimiter: what separates two steps; each step is stripped of surrounding whitespace.

  Yields:
    One `CorpusRecipe` per non-blank line, its id the line number.
  """
  if not delimiter or "\n" in delimiter or "\r" in delimiter:
    raise ValueError(f"delimiter must be non-empty text without line breaks, got {delimiter!r}")
  path = paths.path(path)
  for line, content in _physical_lines(path):
    content = content.rstrip("\r\n")
    if content.strip():
      yield CorpusRecipe(id=str(line), title="", url="", ingredients=(),
                         steps=tuple(s.strip() for s in content.split(delimiter)), where=f"{path}:{line}")


def detect_format(path: PathLike, format: str | None = None) -> str:  # pylint: disable=redefined-builtin
  """The corpus format of a file: `format` when given, else from its name and first bytes.

  A file starting with "[" (or named `.json`) is `recipe1m`; one named `.csv`, or whose first line is
  RecipeNLG's header, is `recipenlg` (a `.csv` without that header then fails naming the missing
  column); anything else is `text`.
  """
  path = paths.path(path)
  if format is not None:
    if format not in FORMATS:
      raise DataError(f"{path}: field 'format': {format!r} is not one of {', '.join(FORMATS)}")
    return format
  with _open(path) as f:
    try:
      head = f.read(1 << 16).removeprefix(_BOM)
    except OSError as e:
      raise DataError(f"{path}: cannot read: {e}") from e
  if head.lstrip(b" \t\r\n").startswith(b"["):
    return "recipe1m"
  suffix = path.suffix.lower()
  if suffix in (".csv", ".json"):
    return {".csv": "recipenlg", ".json": "recipe1m"}[suffix]
  first = re.split(rb"\r\n|\r|\n", head, maxsplit=1)[0].decode("utf-8", "replace")
  try:
    header = {name.strip() for name in next(csv.reader([first]), [])}
  except csv.Error:
    header = set()
  return "recipenlg" if set(_REQUIRED_COLUMNS) <= header else "text"


def read_corpus(path: PathLike, format: str | None = None, *,  # pylint: disable=redefined-builtin
                delimiter: str = DEFAULT_DELIMITER, chunk_size: int = CHUNK_SIZE) -> Iterator[CorpusRecipe]:
  """Streams the recipes of a corpus file in any of `FORMATS` (None: `detect_format`)."""
  format = detect_format(path, format)
  if format == "recipenlg":
    return read_recipenlg(path)
  if format == "recipe1m":
    return read_recipe1m(path, chunk_size=chunk_size)
  return read_text(path, delimiter=delimiter)


def write_recipenlg(path: PathLike,
                    rows: Iterable[tuple[str, Sequence[str], Sequence[str], str, str, Sequence[str]]]) -> None:
  """Writes a RecipeNLG-format CSV: an unnamed index column, then `RECIPENLG_COLUMNS`.

  Args:
    path: the file to write.
    rows: `(title, ingredient lines, directions, link, source, NER)` per recipe; the lists are
      stored as JSON arrays inside CSV quoting, as in `full_dataset.csv`.
  """
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\n")
    # csv quotes only fields holding the line terminator ("\n"): a row with a lone "\r" is quoted
    # whole, else the "\r" would end the record when read back.
    quoted = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(["", *RECIPENLG_COLUMNS])
    for i, (title, ingredients, directions, link, source, ner) in enumerate(rows):
      row = [str(i), title, json.dumps(list(ingredients), ensure_ascii=False),
             json.dumps(list(directions), ensure_ascii=False), link, source,
             json.dumps(list(ner), ensure_ascii=False)]
      (quoted if any("\r" in x for x in row) else writer).writerow(row)
