"""Trivial next-step predictors fitted on training recipes, to put the step teacher (method 2) in context.

A teacher that reads the ingredients and the first k steps is only worth distilling if its step k+1
beats what plain statistics of the training text already give. Three references, fitted on the text
the teacher saw (one or several sources of examples with `ingredients`, `steps`, `num_steps`):

- repeat_last:          the last observed step (k = 0: the most frequent first step);
- next_step_frequency:  the most frequent successor of the last observed sentence (exact normalized
                        text); if it was never seen followed by a step (or k = 0), the most frequent
                        step at position k+1 (0-based index k), then the most frequent step overall;
- retrieval:            the step k+1 of the nearest training recipe: TF-IDF cosine between the query's
                        ingredients + k observed steps and each training recipe's ingredients + first
                        k steps, among the recipes that have a step k+1 (see `StepBaselines.retrieval`).

"Most frequent" ties go to the lexicographically smallest sentence, so results depend on the data only.
Records are built by `records`, the one builder `NextStepTask` shares, and scored with
`captions.anticipation_caption_metrics`: the same keys and scale as the task's evaluation.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
import contextlib
import dataclasses
import re
from typing import Any

import numpy as np

from anticipax.data.text_values import as_text
from anticipax.next_step import captions

_WORD = re.compile(r"\w+")
_TIE = 1e-12  # cosines this close are equal: the matrix product's rounding must not break a tie
_BLOCK = 256  # queries scored together: bounds the dense [recipes, query words] matrix


@dataclasses.dataclass(frozen=True)
class Recipe:
  """The text of one example: its name, ingredients, its real (unpadded) step sentences as models read them
  (normalized) and as the dataset writes them (`raw_steps`, what references are scored as; the normalized
  ones where an example has no raw text)."""

  name: str
  ingredients: str
  steps: tuple[str, ...]
  raw_steps: tuple[str, ...] = ()

  def __post_init__(self):
    if not self.raw_steps:
      object.__setattr__(self, "raw_steps", self.steps)
    elif len(self.raw_steps) != len(self.steps):
      raise ValueError(f"recipe {self.name!r}: {len(self.raw_steps)} raw steps for {len(self.steps)} steps")

  @classmethod
  def from_example(cls, example: Mapping[str, Any] | Recipe) -> Recipe:
    if isinstance(example, Recipe):
      return example
    n = int(example["num_steps"])
    raw = tuple(as_text(s) for s in example["raw_steps"][:n]) if "raw_steps" in example else ()
    return cls(as_text(example.get("recipe", "")), as_text(example["ingredients"]),
               tuple(as_text(s) for s in example["steps"][:n]), raw)


def read(source: Sequence[Mapping[str, Any]]) -> list[Recipe]:
  """The text of every example of `source`, each read once (a TFDS data source or a list of dicts)."""
  if isinstance(source, Mapping):
    raise TypeError("expected a sequence of examples (a data source), got a single example")
  return [Recipe.from_example(source[i]) for i in range(len(source))]


def observed_counts(recipe: Recipe, first_k: int, last_k: int) -> range:
  """The k in [first_k, last_k] for which `recipe` has a step k+1 to predict."""
  return range(first_k, min(last_k, len(recipe.steps) - 1) + 1)


def records(eval_source: Sequence[Any], predict_fn: Callable[[int, Recipe, int], str], first_k: int,
            last_k: int, indices: Iterable[int] | None = None) -> list[dict[str, Any]]:
  """One record per (recipe, k): the k observed steps, the predicted and the reference step k+1.

  Args:
    eval_source: examples (dicts with `recipe`, `ingredients`, `steps`, `num_steps`; strings or bytes)
      or `Recipe`s.
    predict_fn: (row, recipe, k) -> the predicted sentence of step k+1; row is the position in `indices`.
    first_k: the smallest number of observed steps (0: ingredients only).
    last_k: the largest number of observed steps.
    indices: the examples of `eval_source` to read, in order (default: all).

  Returns:
    Dicts {"recipe", "k", "observed", "prediction", "reference"}, for `anticipation_caption_metrics`;
    "observed" are the normalized steps the models read, "reference" the dataset's own text of step k+1.
  """
  out = []
  for row, index in enumerate(range(len(eval_source)) if indices is None else indices):
    recipe = Recipe.from_example(eval_source[int(index)])
    for k in observed_counts(recipe, first_k, last_k):
      out.append({"recipe": recipe.name, "k": k, "observed": list(recipe.steps[:k]),
                  "prediction": predict_fn(row, recipe, k), "reference": recipe.raw_steps[k]})
  return out


def _most_frequent(counts: Mapping[str, int]) -> str:
  """The sentence with the highest count; among equal counts the lexicographically smallest."""
  return min(counts.items(), key=lambda item: (-item[1], item[0]))[0] if counts else ""


class StepBaselines:
  """Step statistics and a TF-IDF index of the training recipes of one or several sources.

  Args:
    train_sources: sequences of examples (e.g. Tasty's training split, an external corpus); each is
      iterated once, recipes keep the sources' order (which breaks retrieval ties).
  """

  def __init__(self, train_sources: Sequence[Sequence[Mapping[str, Any]]]):
    self.recipes = [r for source in train_sources for r in read(source)]
    overall, successors = collections.Counter(), collections.defaultdict(collections.Counter)
    at_position = collections.defaultdict(collections.Counter)
    for r in self.recipes:
      overall.update(r.steps)
      for i, step in enumerate(r.steps):
        at_position[i][step] += 1
        if i + 1 < len(r.steps):
          successors[step][r.steps[i + 1]] += 1
    # Reduce each table to its winner once: predictions are then dictionary look-ups.
    self.most_frequent = _most_frequent(overall)
    self.at_position = {i: _most_frequent(c) for i, c in at_position.items()}
    self.successor = {s: _most_frequent(c) for s, c in successors.items()}
    self._index_words()

  def repeat_last(self, observed: Sequence[str]) -> str:
    """The last observed step; with none observed, the most frequent first training step."""
    return observed[-1] if observed else self.at_position.get(0, self.most_frequent)

  def next_step_frequency(self, observed: Sequence[str]) -> str:
    """The most frequent successor of the last observed step, backed off as the module docstring says."""
    if observed and observed[-1] in self.successor:
      return self.successor[observed[-1]]
    return self.at_position.get(len(observed), self.most_frequent)

  # -- retrieval -------------------------------------------------------------------------------------
  def _index_words(self) -> None:
    """Word ids of every training recipe, prefix ends, and the IDF over training recipes."""
    self.vocab: dict[str, int] = {}
    self._tokens, self._ends = [], []
    for r in self.recipes:
      parts = [self._ids(r.ingredients, grow=True)] + [self._ids(s, grow=True) for s in r.steps]
      self._tokens.append(np.concatenate(parts))
      self._ends.append(np.cumsum([len(p) for p in parts]))  # ends[k]: end of ingredients + k steps
    df = np.zeros(len(self.vocab))
    for tokens in self._tokens:
      df[np.unique(tokens)] += 1
    # Smoothed IDF (scikit-learn's default): a word in every recipe still weighs 1, never 0.
    self.idf = np.log((1 + len(self.recipes)) / (1 + df)) + 1

  def _ids(self, text: str, grow: bool = False) -> np.ndarray:
    """Word ids of a text: its runs of word characters (punctuation, e.g. the ", " between ingredients, is
    skipped; normalized text has punctuation apart already, the joined ingredients do not).

    Queries drop words unseen in training: they match no recipe, so they cannot change the neighbour.
    """
    words = _WORD.findall(text)
    if grow:
      return np.array([self.vocab.setdefault(w, len(self.vocab)) for w in words], np.int64)
    return np.array([self.vocab[w] for w in words if w in self.vocab], np.int64)

  def _tfidf(self, docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse L2-normalized TF-IDF rows of word-id docs, as (row, word, weight) triples."""
    lengths = np.array([len(d) for d in docs], np.int64)
    rows = np.repeat(np.arange(len(docs)), lengths)
    words = np.concatenate(list(docs) + [np.zeros([0], np.int64)])
    keys, counts = np.unique(rows * len(self.vocab) + words, return_counts=True)
    rows, words = keys // len(self.vocab), keys % len(self.vocab)
    weights = counts * self.idf[words]
    norms = np.sqrt(np.bincount(rows, weights**2, minlength=len(docs)))
    return rows, words, weights / np.maximum(norms, 1e-30)[rows]

  def retrieval(self, queries: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The step k+1 of each query's nearest training recipe.

    A query is (ingredients, observed steps), k = len(observed). Every training recipe with a step k+1
    is a candidate, represented by its ingredients and first k steps; query and candidates are TF-IDF
    vectors (term counts x IDF over training recipes, L2-normalized). The candidate with the highest
    cosine wins; ties (within 1e-12) go to the first in training order, and a query with no word in
    common with any candidate gets the first candidate. If no training recipe has a step k+1, the
    prediction is the most frequent training step.

    Queries of the same k are scored together. numpy only, no scipy: the candidates' sparse triples are
    scattered into a dense [candidates, words of the block's queries] matrix, so that the cosines of a
    block are one BLAS product; the queries' few hundred distinct words keep that matrix small.
    """
    out = [self.most_frequent] * len(queries)
    by_k = collections.defaultdict(list)
    for q, (_, observed) in enumerate(queries):
      by_k[len(observed)].append(q)
    for k, members in sorted(by_k.items()):
      candidates = [i for i, r in enumerate(self.recipes) if len(r.steps) > k]
      if not candidates:
        continue
      rows, words, weights = self._tfidf([self._tokens[i][:self._ends[i][k]] for i in candidates])
      for start in range(0, len(members), _BLOCK):
        block = members[start:start + _BLOCK]
        docs = [np.concatenate([self._ids(queries[q][0])] + [self._ids(s) for s in queries[q][1]])
                for q in block]
        q_rows, q_words, q_weights = self._tfidf(docs)
        columns = np.unique(q_words)
        query = np.zeros((len(block), len(columns)))
        query[q_rows, np.searchsorted(columns, q_words)] = q_weights
        keep = np.isin(words, columns)
        matrix = np.zeros((len(candidates), len(columns)))
        matrix[rows[keep], np.searchsorted(columns, words[keep])] = weights[keep]
        cosine = query @ matrix.T
        best = np.argmax(cosine >= cosine.max(axis=1, keepdims=True) - _TIE, axis=1)
        for q, b in zip(block, best):
          out[q] = self.recipes[candidates[b]].steps[k]
    return out


def evaluate(train_sources: Sequence[Sequence[Mapping[str, Any]]], eval_source: Sequence[Mapping[str, Any]],
             *, first_k: int, last_k: int, scorer: captions.CaptionScorer | None = None
             ) -> dict[str, dict[str, float]]:
  """Scores the three predictors on `eval_source` with the task's caption metrics.

  Args:
    train_sources: the training text the teacher saw, one or several sources (see `StepBaselines`).
    eval_source: the evaluation recipes (read once).
    first_k: smallest number of observed steps (0 if `config.eval.include_k0` else 1).
    last_k: largest number of observed steps (`config.eval.max_observed`).
    scorer: an open `captions.CaptionScorer` to score with (default: one for this call).

  Returns:
    {"repeat_last": metrics, "next_step_frequency": metrics, "retrieval": metrics}, each with the keys
    and scale of `NextStepTask.evaluate` (`anticipation_caption_metrics`).
  """
  model = StepBaselines(train_sources)
  recipes = read(eval_source)
  pairs = [(row, k) for row, r in enumerate(recipes) for k in observed_counts(r, first_k, last_k)]
  if not pairs:
    raise ValueError("evaluation: no recipe has a step to predict (every recipe has a single step?)")
  retrieved = dict(zip(pairs, model.retrieval([(recipes[row].ingredients, recipes[row].steps[:k])
                                               for row, k in pairs])))
  predictors = {"repeat_last": lambda row, r, k: model.repeat_last(r.steps[:k]),
                "next_step_frequency": lambda row, r, k: model.next_step_frequency(r.steps[:k]),
                "retrieval": lambda row, r, k: retrieved[row, k]}
  with contextlib.nullcontext(scorer) if scorer is not None else captions.CaptionScorer() as scorer:
    return {name: captions.anticipation_caption_metrics(records(recipes, fn, first_k, last_k), scorer=scorer)
            for name, fn in predictors.items()}
