"""Readers of the Tasty Videos files (DATA_FORMATS.md, section 5).

Layout of the dataset root (the TFDS manual dir):

  id2word_tasty.txt                     {int: bytes} word dictionary of the encoded recipes
  ALL_RECIPES.txt                       every recipe name, one a line
  ALL_RECIPES_without_videos/<recipe>/  recipe_encoded.xml or recipe.xml, csvalignment.dat, fps.txt
  SPLITS/split_4022/{TRAIN,VAL,TEST}_4022.txt, SPLITS/split_2511/<lists named otherwise>

Conventions:
- Alignment units are every 5th frame: unit `u` covers frames `5u-4 .. 5u` (1-based), so step
  `start,end` covers frames `5 start - 4 .. 5 end` and `-1,-1` means the step has no video.
- Feature row `r` of a file with one row every `stride` frames stands for frames
  `r stride + 1 .. (r + 1) stride`; a step uses every row whose frames overlap its own. With
  stride 5 that is rows `start - 1 .. end - 1`.
- Where the real files are irregular (csvalignment.dat longer or shorter than the recipe, recipes
  without any alignment) the reader follows the public loaders and counts what it did; malformed
  content raises one `DataError` naming the file, the 1-based line (or the key) and the field.
"""

from __future__ import annotations

import ast
import collections
import dataclasses
import os
import pathlib
import re
from typing import Callable
from xml.parsers import expat

from absl import logging
import numpy as np

from anticipax.data.errors import DataError

PathLike = str | os.PathLike
RECIPES_DIR = "ALL_RECIPES_without_videos"
ID2WORD = "id2word_tasty.txt"
ALL_RECIPES = "ALL_RECIPES.txt"
ENCODED_XML, DECODED_XML = "recipe_encoded.xml", "recipe.xml"
ALIGNMENT, FPS = "csvalignment.dat", "fps.txt"
UNIT_FRAMES = 5  # csvalignment.dat counts every 5th frame.
# Split -> the word its list file's name contains (TRAIN_4022.txt, training_set.txt, ...).
SPLIT_KEYS = {"train": "train", "validation": "val", "test": "test"}
_INT = re.compile(r"[+-]?[0-9]+")  # Not `int()` alone: it also accepts "1_000" and non-ASCII digits.
# A decimal number as `float()` reads it, without `float()`'s "inf", "nan", "1_0" and non-ASCII digits.
_DECIMAL = re.compile(r"[+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # Physical lines, as editors (and Python's parser) count them.
INT32 = 2**31  # Alignment units and word ids are stored as 32-bit integers.
SKIP_REASONS = ("dropped_by_name", "no_alignment_file", "no_aligned_steps")


@dataclasses.dataclass(frozen=True)
class Span:
  """The video segment of one step: alignment units `start..end` (inclusive), from `line`."""
  start: int
  end: int
  line: int

  @property
  def frames(self) -> tuple[int, int]:
    """First and last 1-based frame (inclusive)."""
    return max(1, self.start * UNIT_FRAMES - UNIT_FRAMES + 1), self.end * UNIT_FRAMES


def step_rows(span: Span, stride: int) -> tuple[int, int]:
  """First and last feature row (0-based, inclusive) of a step, one row every `stride` frames."""
  first, last = span.frames
  return (first - 1) // stride, (last - 1) // stride


@dataclasses.dataclass(frozen=True)
class Recipe:
  """One recipe as read: its texts, one `Span` (or None: no video) per step, its files and its
  source page (`<url>`, "" when the XML has none)."""
  name: str
  directory: pathlib.Path
  ingredients: tuple[str, ...]
  steps: tuple[str, ...]
  spans: tuple[Span | None, ...]
  alignment_path: pathlib.Path
  fps: float | None = None
  url: str = ""


def _read_text(path: pathlib.Path) -> str:
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot read: {e}") from e
  try:
    return data.decode("utf-8").removeprefix("\ufeff")
  except UnicodeDecodeError as e:
    line = len(re.split(rb"\r\n|\r|\n", data[:e.start]))
    raise DataError(f"{path}:{line}: not UTF-8: byte {data[e.start]:#04x}: {e.reason}") from e


def _lines(path: pathlib.Path):
  r"""Yields `(line, stripped text)` of the non-blank lines of a text file.

  Lines end at "\n", "\r\n" or "\r" only: `str.splitlines` also splits at "\x85", "\u2028", form
  feeds, ..., which would split one name in two and misnumber the lines of error messages.
  """
  for i, text in enumerate(_LINE_BREAK.split(_read_text(path)), start=1):
    if text.strip():
      yield i, text.strip()


def _show(value) -> str:
  """`repr(value)`, short; also for an integer too long to print (ValueError past 4300 digits)."""
  try:
    text = repr(value)
  except ValueError:
    return f"<{type(value).__name__} too large to print>"
  return text if len(text) <= 60 else text[:57] + "..."


def _word_id(token: str) -> int | None:
  """The integer of a word-id token matching `_INT`, or None outside [0, 2^31) (int() of a
  very long digit string raises ValueError)."""
  digits = token.lstrip("+-").lstrip("0")
  if len(digits) > 10:
    return None
  value = int(token)
  return value if 0 <= value < INT32 else None


def read_id2word(path: PathLike) -> dict[int, str]:
  """Reads `id2word_tasty.txt`, a Python dict literal `{int: bytes}`, without evaluating code."""
  path = pathlib.Path(path)
  text = _read_text(path)
  content = text.lstrip()
  if not content:
    raise DataError(f"{path}:1: field 'id2word': empty file, expected a dict literal")
  # Leading blank lines become plain line breaks (the parser refuses an indented start) so that
  # the parser's line numbers are the file's.
  first = len(_LINE_BREAK.split(text[:len(text) - len(content)]))
  content = "\n" * (first - 1) + content
  try:
    tree = ast.parse(content, mode="eval")
    table = ast.literal_eval(tree)
  except SyntaxError as e:
    line = e.lineno or len(_LINE_BREAK.split(content.split("\x00", 1)[0]))  # None: a null byte.
    raise DataError(f"{path}:{max(line, 1)}: field 'id2word': not a Python literal: {e.msg}") from e
  except (ValueError, TypeError, MemoryError, RecursionError) as e:
    raise DataError(f"{path}:{first}: field 'id2word': not a literal dict of ids to words: "
                    f"{type(e).__name__}: {e}") from e
  if not isinstance(table, dict):
    raise DataError(f"{path}:{first}: field 'id2word': expected a dict, got {type(table).__name__}")
  first_line = {}
  for node in tree.body.keys:  # literal_eval refused `**x`: every key is a literal.
    key = ast.literal_eval(node)
    if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < INT32:
      raise DataError(f"{path}:{node.lineno}: key {_show(key)}: field 'id': expected an integer word "
                      f"id in [0, 2^31)")
    if key in first_line:
      raise DataError(f"{path}:{node.lineno}: key {key}: field 'id': listed twice (first on line "
                      f"{first_line[key]})")
    first_line[key] = node.lineno
  words = {}
  for key, value in table.items():
    if isinstance(value, bytes):
      try:
        value = value.decode("utf-8")
      except UnicodeDecodeError as e:
        raise DataError(f"{path}:{first_line[key]}: key {key}: field 'word': not UTF-8: {e.reason}") from e
    if not isinstance(value, str):
      raise DataError(f"{path}:{first_line[key]}: key {key}: field 'word': expected bytes, got "
                      f"{type(value).__name__}")
    try:
      value.encode("utf-8")
    except UnicodeEncodeError as e:  # A str literal with a lone surrogate ('\ud800').
      raise DataError(f"{path}:{first_line[key]}: key {key}: field 'word': not UTF-8: {e.reason}") from e
    words[key] = value
  return words


@dataclasses.dataclass
class _Node:
  tag: str
  line: int
  text: str = ""
  children: list[_Node] = dataclasses.field(default_factory=list)

  def child(self, path: pathlib.Path, tag: str) -> _Node:
    for c in self.children:
      if c.tag == tag:
        return c
    raise DataError(f"{path}:{self.line}: field '{tag}': <{self.tag}> has no <{tag}> element")


def _parse_xml(path: pathlib.Path) -> _Node:
  """Parses an XML file into nodes that remember their line (ElementTree forgets it)."""
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(f"{path}: cannot read: {e}") from e
  parser = expat.ParserCreate()
  parser.buffer_text = True
  stack: list[_Node] = []
  roots: list[_Node] = []

  def start(tag, attributes):
    del attributes
    node = _Node(tag, parser.CurrentLineNumber)
    (stack[-1].children if stack else roots).append(node)
    stack.append(node)

  def data_handler(text):
    if stack:  # Only leaf texts are read, so a parent collecting its children's tails is harmless.
      stack[-1].text += text

  parser.StartElementHandler = start
  parser.EndElementHandler = lambda tag: stack.pop()
  parser.CharacterDataHandler = data_handler
  try:
    parser.Parse(data, True)
  except expat.ExpatError as e:
    raise DataError(f"{path}:{e.lineno}: field 'xml': broken XML: {expat.ErrorString(e.code)} "
                    f"(column {e.offset + 1})") from e
  except (LookupError, ValueError) as e:  # An encoding declared in the XML that Python cannot map.
    raise DataError(f"{path}:{parser.CurrentLineNumber}: field 'xml': unsupported encoding: "
                    f"{type(e).__name__}: {e}") from e
  return roots[0]


def ingredient_name(text: str) -> str:
  """The name in an ingredient line `amount;name, preparation;...` (the first field if no `;`)."""
  fields = text.split(";")
  name = fields[1] if len(fields) > 1 else fields[0]
  return " ".join(name.split(",", 1)[0].split())


def read_recipe_xml(path: PathLike, id2word: dict[int, str] | None = None,
                    id2word_path: PathLike | None = None) -> tuple[list[str], list[str]]:
  """Reads the ingredient names and step sentences of a recipe XML.

  Args:
    path: `recipe.xml`, or `recipe_encoded.xml` whose texts are space-separated word ids.
    id2word: the word dictionary; given for encoded files only.
    id2word_path: where `id2word` came from, for error messages.

  Returns:
    `(ingredients, steps)`: ingredient names (empty ones dropped) and the `<steps_updated>`
    sentences in order, words joined by single spaces.
  """
  ingredients, steps, _ = _read_recipe_xml(path, id2word, id2word_path)
  return ingredients, steps


def _read_recipe_xml(path, id2word, id2word_path) -> tuple[list[str], list[str], str]:
  """`read_recipe_xml`'s ingredients and steps, and the `<url>` text ("" without one).

  The url is never word-encoded (recipe_encoded.xml keeps it as text), so it is read as is.
  """
  path = pathlib.Path(path)
  root = _parse_xml(path)
  url = next((" ".join(c.text.split()) for c in root.children if c.tag == "url"), "")

  def text(node: _Node, field: str) -> str:
    if id2word is None:
      return " ".join(node.text.split())
    words = []
    for token in node.text.split():
      if not _INT.fullmatch(token):
        raise DataError(f"{path}:{node.line}: field '{field}': expected word ids, got {_show(token)}")
      word_id = _word_id(token)
      if word_id not in id2word:
        raise DataError(f"{path}:{node.line}: field '{field}': word id {token[:20]}"
                        f"{'...' if len(token) > 20 else ''} is not in "
                        f"{id2word_path or ID2WORD}")
      words.append(id2word[word_id])
    return " ".join(" ".join(words).split())

  ingredients = [ingredient_name(text(n, "ingredient"))
                 for n in root.child(path, "ingredients").children if n.tag == "ingredient"]
  steps = [text(n, "steps_updated")
           for n in root.child(path, "steps_updated").children if n.tag == "steps_updated"]
  return [name for name in ingredients if name], steps, url


def read_alignment(path: PathLike) -> list[Span | None]:
  """Reads `csvalignment.dat`: one `start,end` line per step (None for `-1,-1`)."""
  path = pathlib.Path(path)
  spans = []
  for line, content in _lines(path):
    fields = [f.strip() for f in content.split(",")]
    if len(fields) != 2:
      raise DataError(f"{path}:{line}: expected 2 fields (start, end), got {len(fields)}: {content!r}")
    for name, value in zip(("start", "end"), fields):
      if not _INT.fullmatch(value):
        raise DataError(f"{path}:{line}: field '{name}': expected an integer, got {_show(value)}")
      if len(value.lstrip("+-").lstrip("0")) > 10 or not -INT32 <= int(value) < INT32:
        raise DataError(f"{path}:{line}: field '{name}': {_show(value)} is out of the 32-bit integer range")
    start, end = int(fields[0]), int(fields[1])
    if (start, end) == (-1, -1):
      spans.append(None)
      continue
    if start < 1:
      raise DataError(f"{path}:{line}: field 'start': units are 1-based (or -1,-1 for no video), "
                      f"got {start}")
    if start > end:
      raise DataError(f"{path}:{line}: field 'end': {end} is before start {start}")
    spans.append(Span(start, end, line))
  return spans


def read_fps(path: PathLike) -> float:
  """Reads `fps.txt`: one positive, finite decimal number (`29.97`, `30`, `2.997e1`)."""
  path = pathlib.Path(path)
  fps = None
  for line, content in _lines(path):
    if fps is not None:
      raise DataError(f"{path}:{line}: field 'fps': expected one number, got another line "
                      f"{_show(content)}")
    fps = float(content) if _DECIMAL.fullmatch(content) else float("nan")
    if not 0 < fps < float("inf"):
      raise DataError(f"{path}:{line}: field 'fps': expected a positive number, got {_show(content)}")
  if fps is None:
    raise DataError(f"{path}:1: field 'fps': empty file")
  return fps


def read_name_list(path: PathLike) -> list[tuple[int, str]]:
  """`(line, recipe name)` of a list file (split lists, ALL_RECIPES.txt); duplicates are errors."""
  path = pathlib.Path(path)
  out, first_line = [], {}
  for line, name in _lines(path):
    if "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
      raise DataError(f"{path}:{line}: field 'recipe': {name!r} is not a recipe folder name")
    if name in first_line:
      raise DataError(f"{path}:{line}: field 'recipe': {name!r} is listed twice "
                      f"(first on line {first_line[name]})")
    first_line[name] = line
    out.append((line, name))
  return out


def find_split_files(split_dir: PathLike) -> dict[str, pathlib.Path]:
  """The train / validation / test list files of a split folder, found by name.

  split_4022 names them `TRAIN_4022.txt` ...; split_2511 otherwise (`training_set.txt` ...). A
  `.txt` file belongs to a split when its lower-cased name contains "train", "val" or "test".
  Train is required; a missing validation or test list leaves that split out (logged).
  """
  split_dir = pathlib.Path(split_dir)
  if not split_dir.is_dir():
    parent = split_dir.parent
    found = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
    raise DataError(f"{split_dir}: field 'split': no such split folder (found: {found or 'none'})")
  lists = sorted(p for p in split_dir.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
  files = {}
  for split, key in SPLIT_KEYS.items():
    matches = [p for p in lists if key in p.name.lower()]
    if len(matches) > 1:
      raise DataError(f"{split_dir}: field '{split}': several list files contain {key!r}: "
                      f"{', '.join(p.name for p in matches)}")
    if matches:
      files[split] = matches[0]
  if "train" not in files:
    raise DataError(f"{split_dir}: field 'train': no .txt list whose name contains 'train' "
                    f"(found: {', '.join(p.name for p in lists) or 'none'})")
  logging.info("Tasty %s lists: %s", split_dir.name,
               ", ".join(f"{s}={files[s].name if s in files else 'none'}" for s in SPLIT_KEYS))
  return files


class Collection:
  """The recipes of one split layout, read and checked, with counts of what was skipped.

  Attributes:
    root: the dataset root.
    split_files: split -> list file it was read from.
    splits: split -> recipes kept, in list order.
    counts: `recipes_<split>`, `skipped_<reason>` (see `SKIP_REASONS`), `alignment_too_long` /
      `alignment_too_short` (files with more / fewer lines than steps), `steps`,
      `steps_without_video` (of kept recipes), `listed_not_in_all_recipes`.
    skipped: reason -> recipe names.
  """

  def __init__(self, root: PathLike, split: str, *, drop=()):
    self.root = pathlib.Path(root)
    self.counts: collections.Counter[str] = collections.Counter()
    self.skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
    self._id2word: dict[int, str] | None = None
    self.split_files = find_split_files(self.root / "SPLITS" / split)
    all_recipes = self.root / ALL_RECIPES
    known = ({n for _, n in read_name_list(all_recipes)} if all_recipes.exists() else None)
    if known is None:
      logging.warning("Tasty: %s is missing; recipe names are not cross-checked.", all_recipes)
    drop, seen = set(drop), {}
    self.splits: dict[str, list[Recipe]] = {}
    for split_name, path in self.split_files.items():
      recipes = self.splits[split_name] = []
      for line, name in read_name_list(path):
        if name in seen:
          raise DataError(f"{path}:{line}: field 'recipe': {name!r} is also in {seen[name]}")
        seen[name] = path.name
        self.counts["listed_not_in_all_recipes"] += known is not None and name not in known
        recipe = self._read(path, line, name, drop)
        if recipe is not None:
          recipes.append(recipe)
      self.counts[f"recipes_{split_name}"] = len(recipes)
    for reason, names in self.skipped.items():
      self.counts[f"skipped_{reason}"] = len(names)

  @property
  def id2word(self) -> dict[int, str]:
    if self._id2word is None:
      self._id2word = read_id2word(self.root / ID2WORD)
    return self._id2word

  def _read(self, list_path, line, name, drop) -> Recipe | None:
    if name in drop:
      self.skipped["dropped_by_name"].append(name)
      return None
    directory = self.root / RECIPES_DIR / name
    if not directory.is_dir():
      raise DataError(f"{list_path}:{line}: field 'recipe': {name!r} has no folder {directory}")
    alignment_path = directory / ALIGNMENT
    if not alignment_path.exists():
      self.skipped["no_alignment_file"].append(name)
      return None
    spans = read_alignment(alignment_path)
    ingredients, steps, url = self.texts(name)
    # Real files sometimes disagree with the recipe: extra lines belong to no step, and steps past
    # the last line have no segment (as in the public loaders).
    if len(spans) > len(steps):
      self.counts["alignment_too_long"] += 1
    elif len(spans) < len(steps):
      self.counts["alignment_too_short"] += 1
    spans = (spans + [None] * len(steps))[:len(steps)]
    if not any(spans):
      self.skipped["no_aligned_steps"].append(name)
      return None
    self.counts["steps"] += len(steps)
    self.counts["steps_without_video"] += sum(s is None for s in spans)
    fps_path = directory / FPS
    return Recipe(name=name, directory=directory, ingredients=tuple(ingredients), steps=tuple(steps),
                  spans=tuple(spans), alignment_path=alignment_path,
                  fps=read_fps(fps_path) if fps_path.exists() else None, url=url)

  def texts(self, name: str) -> tuple[list[str], list[str], str]:
    """`(ingredient names, step sentences, url)` of a recipe's XML, with or without video.

    The plain `recipe.xml` is preferred; `recipe_encoded.xml` is decoded with `id2word_tasty.txt`.
    """
    directory = self.root / RECIPES_DIR / name
    if (directory / DECODED_XML).exists():
      return _read_recipe_xml(directory / DECODED_XML, None, None)
    if (directory / ENCODED_XML).exists():
      id2word_path = self.root / ID2WORD
      if not id2word_path.exists():
        raise DataError(f"{id2word_path}: missing; {directory / ENCODED_XML} has word ids to decode")
      return _read_recipe_xml(directory / ENCODED_XML, self.id2word, id2word_path)
    raise DataError(f"{directory}: field 'recipe': neither {ENCODED_XML} nor {DECODED_XML}")

  def log(self, log: Callable[..., None] = logging.info) -> None:
    """Writes the counts to the log, one line per kind."""
    c = self.counts
    log("Tasty recipes kept: %s.", ", ".join(f"{s} {c[f'recipes_{s}']}" for s in self.splits))
    log("Tasty recipes skipped: %s.", ", ".join(f"{r} {len(n)}" for r, n in self.skipped.items()))
    log("Tasty csvalignment.dat files longer than their recipe (extra lines ignored): %d; shorter "
        "(last steps without video): %d.", c["alignment_too_long"], c["alignment_too_short"])
    log("Tasty steps without video: %d of %d.", c["steps_without_video"], c["steps"])
    if c["listed_not_in_all_recipes"]:
      log("Tasty: %d listed recipes are not in %s.", c["listed_not_in_all_recipes"], ALL_RECIPES)
