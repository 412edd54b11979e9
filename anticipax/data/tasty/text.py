"""Step sentences as words and ids: normalization and the word vocabulary of Tasty Videos.

`normalize` is the single tokenization of the Tasty pipeline: the builder stores normalized
sentences, the vocabulary counts their words, and captioning metrics should compare them.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
import os
import re

import numpy as np

from anticipax import paths
from anticipax.data.errors import DataError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
_PUNCTUATION = re.compile(r"([^\w\s])")


def normalize(sentence: str) -> str:
  """Lower-cases, puts spaces around punctuation and collapses whitespace.

  `"Chop the onion, finely."` and the decoded `"Chop the onion , finely ."` both become
  `"chop the onion , finely ."`.
  """
  return " ".join(_PUNCTUATION.sub(r" \1 ", sentence.lower()).split())


class Vocab:
  """Words <-> ids; ids 0..3 are `<pad>`, `<bos>`, `<eos>`, `<unk>`.

  Args:
    tokens: every token, the four special tokens first, each once and without whitespace.
  """

  pad_id, bos_id, eos_id, unk_id = range(4)

  def __init__(self, tokens: Sequence[str]):
    tokens = tuple(tokens)
    if tokens[:4] != SPECIALS:
      raise ValueError(f"a vocabulary starts with {SPECIALS}, got {tokens[:4]}")
    self.tokens = tokens
    self._ids = {t: i for i, t in enumerate(tokens)}
    if len(self._ids) != len(tokens):
      raise ValueError("duplicate tokens in the vocabulary")

  @classmethod
  def build(cls, texts: Iterable[str], min_count: int = 1) -> Vocab:
    """The words of `texts` (normalized) seen at least `min_count` times, most frequent first.

    Ties are broken alphabetically so that the ids depend on the data only.
    """
    counts = collections.Counter(w for t in texts for w in normalize(t).split())
    words = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                   key=lambda w: (-counts[w], w))
    return cls(SPECIALS + tuple(words))

  def __len__(self) -> int:
    return len(self.tokens)

  def __eq__(self, other) -> bool:
    return isinstance(other, Vocab) and self.tokens == other.tokens

  def id(self, word: str) -> int:
    return self._ids.get(word, self.unk_id)

  def encode(self, sentence: str, max_len: int) -> np.ndarray:
    """int32 `[max_len]`: `<bos>`, the normalized words, `<eos>`, then `<pad>`.

    Longer sentences lose their last words, never `<bos>` / `<eos>`, so a decoder trained on
    them still learns to stop.
    """
    if max_len < 2:
      raise ValueError(f"max_len must be at least 2 (<bos> and <eos>), got {max_len}")
    words = normalize(sentence).split()[:max_len - 2]
    ids = np.full([max_len], self.pad_id, np.int32)
    ids[:len(words) + 2] = [self.bos_id, *map(self.id, words), self.eos_id]
    return ids

  def decode(self, ids: Iterable[int]) -> str:
    """Words of `ids` up to the first `<eos>`, skipping `<bos>` and `<pad>`."""
    words = []
    for i in ids:
      i = int(i)
      if i == self.eos_id:
        break
      if i not in (self.pad_id, self.bos_id):
        words.append(self.tokens[i] if 0 <= i < len(self.tokens) else UNK)
    return " ".join(words)

  def save(self, path: str | os.PathLike) -> None:
    """One token per line, in id order."""
    paths.write_text(path, "\n".join(self.tokens) + "\n")

  @classmethod
  def load(cls, path: str | os.PathLike) -> Vocab:
    r"""Reads a vocabulary written by `save`: one token per line ("\n", "\r\n" or "\r"), specials first."""
    path = paths.path(path)
    try:
      data = path.read_bytes()
    except OSError as e:
      raise DataError(f"{path}: cannot read the vocabulary: {e}") from e
    try:
      text = data.decode("utf-8").removeprefix("\ufeff")  # A byte-order mark is not part of <pad>.
    except UnicodeDecodeError as e:
      line = len(re.split(rb"\r\n|\r|\n", data[:e.start]))
      raise DataError(f"{path}:{line}: not UTF-8: byte {data[e.start]:#04x}: {e.reason}") from e
    lines = re.split(r"\r\n|\r|\n", text)
    if lines and lines[-1] == "":
      lines.pop()
    first_line = {}
    for i, token in enumerate(lines, start=1):
      if i <= 4 and token != SPECIALS[i - 1]:
        raise DataError(f"{path}:{i}: field 'token': expected {SPECIALS[i - 1]!r}, got {token!r}")
      if len(token.split()) != 1 or token != token.strip():
        raise DataError(f"{path}:{i}: field 'token': expected one word, got {token!r}")
      if token in first_line:
        raise DataError(f"{path}:{i}: field 'token': {token!r} repeats line {first_line[token]}")
      first_line[token] = i
    if len(lines) < 4:
      raise DataError(f"{path}:{len(lines) + 1}: field 'token': missing special tokens {SPECIALS}")
    return cls(lines)
