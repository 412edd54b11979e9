"""Action histories as text for language-model teachers, and the word-level tokenizer that reads them.

A history of action ids becomes `verb <v> noun <a> verb <v> noun ...`, the format of the recipe corpora
of DATA_FORMATS.md section 6 (and of synthetic_kitchen's `corpus.txt`), e.g. on EGTEA Gaze+:
`open <v> fridge <a> take <v> eating utensil`. Usage:

  vocab = action_text.ActionVocab.from_metadata(builder.info.metadata)
  text = action_text.history_text(example["history"], vocab, hist_len=8)
  tokenizer = action_text.build_word_tokenizer(action_text.read_corpus(corpus), out_dir)
  batch = action_text.tokenize(tokenizer, [text], max_len=64)  # input_ids, attention_mask
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Iterable, Mapping, Sequence, TYPE_CHECKING

import numpy as np
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, processors

from anticipax.data.rulstm import reader as rulstm
from anticipax.data.errors import DataError

if TYPE_CHECKING:  # transformers takes most of a second to import: only where a tokenizer is built
  import transformers

PathLike = str | os.PathLike
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4, in this order.
# Markers such as <v> and <a> stay whole; words split from punctuation, each punctuation mark alone.
_WORD_PATTERN = r"<[^<>\s]+>|\w+|[^\w\s]"


def _clean(name: str) -> str:
  """`Turn_On ` -> `turn on`: lowercase, underscores as spaces, whitespace collapsed and stripped."""
  return " ".join(name.lower().replace("_", " ").split())


@dataclasses.dataclass(frozen=True, eq=False)
class ActionVocab:
  """The names of a dataset's verbs and nouns, and the (verb, noun) of each action.

  Attributes:
    verb_names: the name of each verb id, as stored (formatting cleans them).
    noun_names: the name of each noun id.
    actions: int32 `[A, 2]`, the (verb id, noun id) of each action id (read-only).
  """
  verb_names: tuple[str, ...]
  noun_names: tuple[str, ...]
  actions: np.ndarray

  def __post_init__(self):
    object.__setattr__(self, "verb_names", tuple(str(x) for x in self.verb_names))
    object.__setattr__(self, "noun_names", tuple(str(x) for x in self.noun_names))
    actions = np.array(self.actions, np.int32).reshape(-1, 2)
    actions.setflags(write=False)
    object.__setattr__(self, "actions", actions)
    for column, names, kind in ((0, self.verb_names, "verb"), (1, self.noun_names, "noun")):
      if actions.size and not (actions[:, column].min() >= 0 and actions[:, column].max() < len(names)):
        raise ValueError(f"actions use {kind} ids outside [0, {len(names)})")

  @classmethod
  def from_metadata(cls, meta: Mapping) -> ActionVocab:
    """From TFDS builder metadata (`builder.info.metadata`) with keys `verbs`, `nouns` and `actions`.

    Raises:
      DataError: naming the key, for a missing key or actions that are not (verb, noun) pairs of
        known ids.
    """
    for key in ("verbs", "nouns", "actions"):
      if key not in meta:
        raise DataError(f"dataset metadata: key '{key}': missing (it has {sorted(meta)})")
    try:
      return cls(tuple(meta["verbs"]), tuple(meta["nouns"]), np.asarray(meta["actions"]))
    except ValueError as e:
      raise DataError(f"dataset metadata: key 'actions': {e}") from e

  @classmethod
  def from_vocabulary(cls, vocab: rulstm.Vocabulary) -> ActionVocab:
    """From the vocabulary of a RULSTM `actions.csv` (`rulstm.read_actions`)."""
    return cls(vocab.verb_names, vocab.noun_names, vocab.actions)

  @property
  def num_actions(self) -> int:
    return len(self.actions)


def history_text(history_ids: Sequence[int], vocab: ActionVocab, *, hist_len: int,
                 template: str = "{verb} <v> {noun}", separator: str = " <a> ") -> str:
  """Writes the most recent actions of a history as teacher text.

  Args:
    history_ids: action ids, oldest first. Ids < 0 (unlabeled segments, see `rulstm.HistoryIndex`)
      have no name and are dropped before the last `hist_len` are taken.
    vocab: names of the verbs and nouns.
    hist_len: how many of the most recent actions to write; <= 0 writes them all.
    template: the text of one action, with fields {verb}, {noun} and {action} (= "{verb} {noun}").
      Names are cleaned: lowercase, underscores as spaces, stripped.
    separator: put between actions.

  Returns:
    E.g. "open <v> fridge <a> take <v> eating utensil"; "" for an empty history (a tokenizer then
    gives just [CLS] [SEP]).

  Raises:
    ValueError: for an action id >= vocab.num_actions.
  """
  ids = [int(a) for a in np.asarray(history_ids).reshape(-1) if a >= 0]
  if hist_len > 0:
    ids = ids[-hist_len:]
  parts = []
  for a in ids:
    if a >= vocab.num_actions:
      raise ValueError(f"action id {a} is out of range [0, {vocab.num_actions})")
    verb_id, noun_id = vocab.actions[a]
    verb, noun = _clean(vocab.verb_names[verb_id]), _clean(vocab.noun_names[noun_id])
    parts.append(template.format(verb=verb, noun=noun, action=f"{verb} {noun}"))
  return separator.join(parts)


def read_corpus(path: PathLike) -> list[str]:
  """Reads a text corpus (DATA_FORMATS.md section 6): UTF-8, one document per line.

  Returns:
    The documents in file order, stripped of surrounding whitespace; blank lines are skipped.

  Raises:
    DataError: naming the file (and line), for a missing file, a line that is not UTF-8 or a corpus
      without any document.
  """
  documents = []
  try:
    with open(path, "rb") as f:
      for line_number, raw in enumerate(f, start=1):
        try:
          line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
          raise DataError(f"{path}:{line_number}: not UTF-8: {e}") from e
        if line_number == 1:
          line = line.removeprefix("\ufeff")  # A byte-order mark is not part of the first document.
        if line.strip():
          documents.append(line.strip())
  except OSError as e:
    raise DataError(f"{path}: cannot read the corpus: {e}") from e
  if not documents:
    raise DataError(f"{path}: empty corpus (no non-blank line)")
  return documents


def build_word_tokenizer(lines: Iterable[str], out_dir: PathLike, *,
                         min_count: int = 1) -> transformers.PreTrainedTokenizerFast:
  """Builds a word-level BERT-style tokenizer of a corpus, offline, and saves it to `out_dir`.

  Text is lowercased and split into words, punctuation marks and `<...>` markers (`<v>`, `<a>` stay
  single tokens). The vocabulary is [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then every word seen
  at least `min_count` times, by descending count, ties alphabetically, so equal corpora give equal
  ids. Encodings are "[CLS] text [SEP]"; truncation drops the oldest words (`truncation_side="left"`).

  Args:
    lines: the corpus documents.
    out_dir: where `save_pretrained` writes; `transformers.AutoTokenizer.from_pretrained(out_dir)`
      reloads it without network access.
    min_count: rarer words map to [UNK].

  Returns:
    The tokenizer.
  """
  normalizer = normalizers.Lowercase()
  pre_tokenizer = pre_tokenizers.Split(tokenizers.Regex(_WORD_PATTERN), behavior="removed", invert=True)
  counts = collections.Counter(
      word for line in lines for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
  words = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIAL_TOKENS),
                 key=lambda w: (-counts[w], w))
  vocab = {t: i for i, t in enumerate((*SPECIAL_TOKENS, *words))}
  tokenizer = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
  tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer
  tokenizer.add_special_tokens(list(SPECIAL_TOKENS))  # Matched whole, before lowercasing and splitting.
  tokenizer.post_processor = processors.TemplateProcessing(
      single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
      special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
  import transformers  # pylint: disable=g-import-not-at-top
  fast = transformers.PreTrainedTokenizerFast(
      tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
      sep_token="[SEP]", mask_token="[MASK]", truncation_side="left")
  fast.save_pretrained(os.fspath(out_dir))
  return fast


def tokenize(tokenizer: transformers.PreTrainedTokenizerBase, texts: Sequence[str],
             max_len: int) -> dict[str, np.ndarray]:
  """Tokenizes teacher texts to fixed-length arrays, keeping the most recent actions.

  Sets `tokenizer.truncation_side = "left"`: a history too long for `max_len` loses its oldest words,
  while [CLS] stays first and [SEP] last.

  Args:
    tokenizer: e.g. from `build_word_tokenizer` or `AutoTokenizer.from_pretrained`.
    texts: N texts, e.g. from `history_text`.
    max_len: tokens per text, special tokens included (>= 2).

  Returns:
    {"input_ids": int32 [N, max_len], "attention_mask": int32 [N, max_len]}, padded on the right.
  """
  if max_len < 2:
    raise ValueError(f"max_len must leave room for [CLS] and [SEP], got {max_len}")
  if not texts:
    empty = np.zeros((0, max_len), np.int32)
    return {"input_ids": empty, "attention_mask": empty.copy()}
  tokenizer.truncation_side = "left"
  encoded = tokenizer(list(texts), max_length=max_len, padding="max_length", truncation=True,
                      return_attention_mask=True, return_tensors="np")
  return {key: np.asarray(encoded[key], np.int32) for key in ("input_ids", "attention_mask")}
