"""Scoring: pycocoevalcap BLEU-1..4, METEOR, ROUGE-L and CIDEr, and their per-k aggregation.

See the `anticipax.next_step.captions` docstring for what is scored, the aggregation and the no-Java path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import contextlib
import math
import operator
from typing import Any

from absl import logging

from anticipax.next_step.captions.java import JavaError
from anticipax.next_step.captions.java import _Meteor
from anticipax.next_step.captions.java import java_available
from anticipax.next_step.captions.java import java_tokenize_many
from anticipax.next_step.captions.ptb import ptb_tokenize

METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")


class CaptionScorer:
  """pycocoevalcap BLEU-1..4, METEOR, ROUGE-L and CIDEr, reusing one METEOR process.

  Use as a context manager (or call `close()`): the METEOR Java process (a few seconds to start)
  is started on the first `score` call and kept for later ones.

  Args:
    use_java: None (default): Java if `java_available()`, else (or if a Java call fails) the
      pure-Python tokenizer and METEOR = NaN, with one warning per scorer. False: never Java.
      True: Java is required; failures raise JavaError.
  """

  def __init__(self, use_java: bool | None = None):
    self._require_java = use_java is True
    self._java = java_available() if use_java is None else bool(use_java)
    self._meteor: _Meteor | None = None
    self._warned = False

  def __enter__(self) -> CaptionScorer:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    if self._meteor is not None:
      self._meteor.close()
      self._meteor = None

  def _java_failed(self, what: str, error: Exception | None) -> None:
    if self._require_java:
      raise JavaError(f"{what}: {error}") from error
    self._java = False
    self.close()
    if not self._warned:
      self._warned = True
      logging.warning("Caption metrics without Java (%s%s): BLEU, ROUGE-L and CIDEr use the "
                      "pure-Python PTB tokenizer; METEOR is reported as NaN.", what,
                      f": {error}" if error else "")

  def _tokenize(self, sides: list[list[str]]) -> list[list[str]]:
    """Each side tokenized like one pycocoevalcap PTBTokenizer call."""
    if self._java:
      try:
        return java_tokenize_many(sides)
      except JavaError as e:
        self._java_failed("the Java PTBTokenizer failed", e)
    else:
      self._java_failed("Java disabled or not found", None)
    return [ptb_tokenize(side) for side in sides]

  def score(self, predictions: Mapping[Any, str],
            references: Mapping[Any, str]) -> dict[str, float]:
    """Scores of `predictions` against the single reference of each key; see `captions`."""
    return self.score_many([(predictions, references)])[0]

  def score_many(self, sets: Sequence[tuple[Mapping[Any, str], Mapping[Any, str]]]
                 ) -> list[dict[str, float]]:
    """`score` of each (predictions, references), tokenized together (one JVM)."""
    keys = []
    for predictions, references in sets:
      if set(predictions) != set(references):
        missing = set(references) - set(predictions)
        extra = set(predictions) - set(references)
        raise ValueError(
            f"predictions and references need the same keys; missing predictions "
            f"{sorted(map(repr, missing))[:5]}, extra {sorted(map(repr, extra))[:5]}.")
      for key, ref in references.items():
        if not isinstance(predictions[key], str) or not isinstance(ref, str):
          raise TypeError(f"captions must be str; key {key!r} has "
                          f"{type(predictions[key]).__name__}, {type(ref).__name__}.")
      keys.append(list(references))
    if any(keys):
      self._start_meteor()  # Its JVM loads the paraphrase table (seconds) while we tokenize.
    # As pycocoevalcap's COCOEvalCap: references, then predictions, each in key order.
    sides = []
    for (predictions, references), ks in zip(sets, keys):
      sides += [[references[k] for k in ks], [predictions[k] for k in ks]]
    tokenized = self._tokenize(sides)
    out = []
    for i, ((_, references), ks) in enumerate(zip(sets, keys)):
      refs, preds = tokenized[2 * i], tokenized[2 * i + 1]
      for key, ref in zip(ks, refs):
        if not ref:
          raise ValueError(f"reference of {key!r} is empty after tokenization: "
                           f"{references[key]!r}.")
      out.append(self._scores(refs, preds) if ks else {m: math.nan for m in METRICS})
    return out

  def _scores(self, refs: list[str], preds: list[str]) -> dict[str, float]:
    from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
    from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
    from pycocoevalcap.rouge.rouge import Rouge  # pylint: disable=g-import-not-at-top
    gts = {i: [r] for i, r in enumerate(refs)}
    res = {i: [p] for i, p in enumerate(preds)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, _ = Rouge().compute_score(gts, res)
    cider, _ = Cider().compute_score(gts, res)
    out = {f"bleu{n + 1}": float(b) for n, b in enumerate(bleu)}
    out.update(meteor=self._meteor_score(gts, res), rouge_l=float(rouge), cider=float(cider))
    return {m: out[m] for m in METRICS}

  def _start_meteor(self) -> None:
    if self._java and self._meteor is None:
      try:
        self._meteor = _Meteor()
      except JavaError as e:
        self._java_failed("METEOR failed", e)

  def _meteor_score(self, gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    self._start_meteor()
    if not self._java or self._meteor is None:
      return math.nan
    try:
      return float(self._meteor.score(gts, res))
    except JavaError as e:
      self._meteor = None
      self._java_failed("METEOR failed", e)
      return math.nan


def score_captions(predictions: Mapping[Any, str], references: Mapping[Any, str], *,
                   use_java: bool | None = None) -> dict[str, float]:
  """BLEU-1..4, METEOR, ROUGE-L, CIDEr of `predictions` against one reference per key.

  Keys of both mappings must be the same. Returns {"bleu1".."bleu4", "meteor", "rouge_l",
  "cider"}: pycocoevalcap's scores over the whole set (BLEU and METEOR corpus-level, ROUGE-L
  and CIDEr means of sentence scores, CIDEr's IDF over these references), NaN for all when
  there are no keys and NaN for METEOR without Java (see `CaptionScorer` for `use_java`).
  """
  with CaptionScorer(use_java) as scorer:
    return scorer.score(predictions, references)


def _field(record: Any, name: str) -> Any:
  if isinstance(record, Mapping):
    return record[name]
  return getattr(record, name)


def anticipation_caption_metrics(records: Iterable[Any], *, use_java: bool | None = None,
                                 scorer: CaptionScorer | None = None) -> dict[str, float]:
  """Per-k and overall caption metrics of next-step sentence anticipation.

  Args:
    records: mappings (or objects with these attributes) with `recipe` (hashable id), `k`
      (int, the number of observed steps; the prediction is of step k+1), `prediction` and
      `reference` (str). At most one record per (recipe, k).
    use_java: see `CaptionScorer` (ignored with `scorer`).
    scorer: an open `CaptionScorer` to reuse, and its METEOR process (seconds to start) with it, across
      calls; None: one of its own for this call, closed when it returns.

  Returns:
    ``k{k}/{m}`` for every k present and every m in METRICS: pycocoevalcap's score over the
    recipes that have a record at k; ``{m}``: the unweighted mean over k of ``k{k}/{m}``;
    ``pooled/{m}``: one score over every (recipe, k) record together (corpus-level BLEU and METEOR,
    CIDEr's IDF over all the references), the other common way to aggregate.
    All NaN-free except METEOR without Java (NaN). Empty `records` give NaN for every ``{m}`` and
    ``pooled/{m}``.
    See the `anticipax.next_step.captions` docstring for what the averages are exactly.
  """
  by_k: dict[int, tuple[dict[Any, str], dict[Any, str]]] = {}
  for record in records:
    recipe, k = _field(record, "recipe"), _field(record, "k")
    try:
      if isinstance(k, bool):
        raise TypeError
      k = operator.index(k)
    except TypeError:
      raise ValueError(f"k must be an integer, got {k!r} for recipe {recipe!r}.") from None
    preds, refs = by_k.setdefault(k, ({}, {}))
    if recipe in preds:
      raise ValueError(f"two records for recipe {recipe!r} at k={k}.")
    preds[recipe] = _field(record, "prediction")
    refs[recipe] = _field(record, "reference")
  out: dict[str, float] = {}
  per_metric: dict[str, list[float]] = {m: [] for m in METRICS}
  ks = sorted(by_k)
  pooled = tuple({(recipe, k): text for k in ks for recipe, text in by_k[k][side].items()} for side in (0, 1))
  with contextlib.nullcontext(scorer) if scorer is not None else CaptionScorer(use_java) as scorer:
    *per_k, pooled_scores = scorer.score_many([by_k[k] for k in ks] + [pooled])
  for k, scores in zip(ks, per_k):
    for m in METRICS:
      out[f"k{k}/{m}"] = scores[m]
      per_metric[m].append(scores[m])
  for m in METRICS:
    values = per_metric[m]
    out[m] = math.fsum(values) / len(values) if values else math.nan
    out[f"pooled/{m}"] = pooled_scores[m]
  return out
