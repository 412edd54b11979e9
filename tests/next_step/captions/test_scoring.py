"""Tests for anticipax.next_step.captions' scoring: hand-computed scores, the Java-free path, aggregation.

Java (for pycocoevalcap's PTBTokenizer jar and METEOR) is optional: tests that need it are
skipped without it. One METEOR JVM is shared by the whole module (it takes seconds to start).
"""

import collections
import logging
import math
import os
import shutil
import stat

import pytest

pytest.importorskip("pycocoevalcap")
from anticipax.next_step import captions  # pylint: disable=g-import-not-at-top
from anticipax.next_step.captions import scoring  # pylint: disable=g-import-not-at-top

HAVE_JAVA = shutil.which("java") is not None
needs_java = pytest.mark.skipif(not HAVE_JAVA, reason="needs Java (pycocoevalcap's jars)")
BETA = 1.2  # pycocoevalcap's ROUGE-L beta.

# One pytest-xdist worker runs the module (`--dist loadgroup`): one METEOR JVM, not one per worker.
pytestmark = pytest.mark.xdist_group("caption_scoring")


@pytest.fixture(scope="module")
def java_scorer():
  if not HAVE_JAVA:
    pytest.skip("needs Java (pycocoevalcap's jars)")
  scorer = captions.CaptionScorer(use_java=True)
  yield scorer
  scorer.close()


@pytest.fixture(scope="module")
def python_scorer():
  with captions.CaptionScorer(use_java=False) as scorer:
    yield scorer


# The JVM side (METEOR, the PTB tokenizer: seconds per start) is the slow tier.
@pytest.fixture(params=["python", pytest.param("java", marks=pytest.mark.slow)])
def scorer(request):
  return request.getfixturevalue(f"{request.param}_scorer")


def _rouge_f(lcs, n_hyp, n_ref):
  p, r = lcs / n_hyp, lcs / n_ref
  return (1 + BETA**2) * p * r / (r + BETA**2 * p)


def _warnings(caplog):
  return [r for r in caplog.records
          if r.levelno == logging.WARNING and "without Java" in r.getMessage()]


# ------------------------------------------------------------------------------ known pairs


def test_identical_sentences(scorer):
  refs = {"a": "Preheat the oven to 350 degrees.", "b": "Chop the onions, then fry them!"}
  s = scorer.score(refs, refs)
  for n in (1, 2, 3, 4):  # 1 up to pycocoevalcap's 1e-15 / 1e-9 guards.
    assert s[f"bleu{n}"] == pytest.approx(1.0, abs=1e-6)
  assert s["rouge_l"] == 1.0
  assert s["cider"] == pytest.approx(10.0)  # CIDEr-D's x10.


def test_bleu_1_2_by_hand(scorer):
  # Tokens (lower-cased, punctuation dropped):
  #   r1  hyp "the the the cat"        ref "the cat is on the mat"
  #   r2  hyp "stir the sauce well"    ref "stir the sauce well"
  preds = {"r1": "The the THE cat!", "r2": "Stir the sauce well."}
  refs = {"r1": "The cat is on the mat.", "r2": "Stir the sauce well."}
  # Clipped unigram matches: r1 "the" min(3, 2) + "cat" 1 = 3 of 4; r2 4 of 4.
  p1 = (3 + 4) / (4 + 4)
  # Bigrams: r1 "the the" x2 (not in ref), "the cat" (in ref): 1 of 3; r2 3 of 3.
  p2 = (1 + 3) / (3 + 3)
  # Corpus brevity penalty: hypothesis length 8 < reference length 10.
  bp = math.exp(1 - 10 / 8)
  s = scorer.score(preds, refs)
  assert s["bleu1"] == pytest.approx(bp * p1, rel=1e-8)
  assert s["bleu2"] == pytest.approx(bp * math.sqrt(p1 * p2), rel=1e-8)


def test_rouge_l_by_hand(scorer):
  preds = {0: "Put chicken in oven now.", 1: "Serve hot."}
  refs = {0: "Put the chicken in the hot oven.", 1: "Serve hot."}
  # LCS("put chicken in oven now", "put the chicken in the hot oven") = put chicken in oven.
  expected = (_rouge_f(4, 5, 7) + 1.0) / 2  # Mean of the sentence F-measures.
  assert scorer.score(preds, refs)["rouge_l"] == pytest.approx(expected, rel=1e-12)


def test_cider_prefers_the_better_prediction(python_scorer):
  refs = {0: "Chop the onion finely.", 1: "Heat the oil in a large pan.",
          2: "Season with salt and pepper.", 3: "Bake for twenty minutes."}
  good = {0: "Chop the onion.", 1: "Heat oil in a large pan.", 2: "Season with salt.",
          3: "Bake for twenty minutes."}
  fair = {0: "Cut the onion.", 1: "Heat the butter.", 2: "Add salt and sugar.",
          3: "Bake for an hour."}
  bad = {0: "Serve the cake.", 1: "Pour the milk.", 2: "Wash the bowl.", 3: "Stir it."}
  cider = [python_scorer.score(p, refs)["cider"] for p in (refs, good, fair, bad)]
  assert cider == sorted(cider, reverse=True)
  assert cider[0] > cider[1] > cider[2] > cider[3] >= 0


def test_cider_is_zero_for_a_single_item(python_scorer):
  # IDF from the references of the set: log(1) - log(df=1) = 0 for every n-gram.
  assert python_scorer.score({0: "mix well"}, {0: "mix well"})["cider"] == 0.0


@pytest.mark.slow
def test_meteor(java_scorer):
  refs = {0: "Put the chicken in the hot oven.", 1: "Season with salt and pepper, then serve."}
  perfect = java_scorer.score(refs, refs)["meteor"]
  worse = java_scorer.score({0: "put chicken in oven now", 1: "serve with pepper"},
                            refs)["meteor"]
  unrelated = java_scorer.score({0: "wash the dishes", 1: "pour milk"}, refs)["meteor"]
  assert perfect == pytest.approx(1.0, abs=1e-3)
  assert perfect > worse > unrelated >= 0.0


def test_empty_predictions(scorer):
  refs = {0: "Stir well.", 1: "Add the salt.", 2: "Serve.", 3: "Mix it."}
  preds = {0: "Stir well.", 1: "", 2: "   ", 3: "..."}  # The last three tokenize to "".
  s = scorer.score(preds, refs)
  assert all(math.isfinite(s[m]) for m in captions.METRICS if m != "meteor")
  # Empty hypotheses: length 0, no n-grams. Pooled unigrams 2/2, lengths 2 vs 2+3+1+2.
  assert s["bleu1"] == pytest.approx(math.exp(1 - 8 / 2), rel=1e-8)
  assert s["rouge_l"] == pytest.approx(0.25)  # 1, 0, 0, 0.
  if not math.isnan(s["meteor"]):  # Java path: METEOR takes empty hypotheses too.
    assert 0.0 < s["meteor"] < 1.0


# ------------------------------------------------------------------------ without Java


PUNCTUATED = {
    "r1": ("Preheat the oven to 350°F (175°C).", "Preheat your oven to 350 F."),
    "r2": ("Add 1 1/2 cups of flour, and mix well!", "Add 1 1/2 cups flour; mix."),
    "r3": ("Don't over-mix the batter; it'll be tough.", "Don't mix the batter too much."),
    "r4": ("Whisk the eggs... then add \"fresh\" milk.", "Whisk eggs, then add the milk!"),
    "r5": ("Season w/ salt & pepper, etc.", "Season with salt and pepper."),
    "r6": ("Cook for 5-7 minutes, until golden-brown.", "Cook 5 minutes until golden."),
    "r7": ("Serve with rice [optional] and enjoy :)", "Serve with the rice."),
}


@pytest.mark.slow
def test_raw_references_score_as_coco_caption_scores_them(java_scorer):
  """References as a dataset writes them (contractions, decimals, hyphens, fractions, degrees, parentheses)
  and predictions as a model writes them (normalized): the per-k and pooled scores are coco-caption's,
  i.e. pycocoevalcap's own PTBTokenizer and scorers on the same raw strings. Ours run in the module's
  METEOR process (`java_scorer`: one JVM start, not one per call)."""
  from anticipax.data.tasty import text  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.meteor.meteor import Meteor  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.rouge.rouge import Rouge  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # pylint: disable=g-import-not-at-top

  references = {"r1": "Don't over-mix the batter; it'll be tough.", "r2": "Bake at 350°F for 1.5 hours.",
                "r3": "Add 1/2 cup of stir-fry sauce (or soy sauce).", "r4": "Let it rest 5-7 minutes, then serve!",
                "r5": "Whisk the eggs until they're frothy.", "r6": "Preheat the oven to 175°C."}
  predictions = {"r1": text.normalize("Don't mix the batter."), "r2": text.normalize("Bake at 350°F for 1.5 hours."),
                 "r3": text.normalize("Add the stir-fry sauce."), "r4": "let it rest .",
                 "r5": text.normalize("Whisk the eggs."), "r6": "preheat the oven to 175 ° c ."}
  out = captions.anticipation_caption_metrics(
      [dict(recipe=r, k=1, prediction=predictions[r], reference=references[r]) for r in references],
      scorer=java_scorer)
  gts = PTBTokenizer().tokenize({r: [{"caption": c}] for r, c in references.items()})
  res = PTBTokenizer().tokenize({r: [{"caption": c}] for r, c in predictions.items()})
  assert gts["r1"] == ["do n't over-mix the batter it 'll be tough"]  # what coco-caption counts
  expected = dict(zip(("bleu1", "bleu2", "bleu3", "bleu4"), Bleu(4).compute_score(gts, res, verbose=0)[0]))
  expected["rouge_l"] = Rouge().compute_score(gts, res)[0]
  expected["cider"] = Cider().compute_score(gts, res)[0]
  expected["meteor"] = Meteor().compute_score(gts, res)[0]  # its JVM ends with the object
  for m in captions.METRICS:
    assert out[f"k1/{m}"] == pytest.approx(expected[m], rel=1e-9, abs=1e-12), m
    assert out[f"pooled/{m}"] == pytest.approx(expected[m], rel=1e-9, abs=1e-12), m
  # Normalizing the references first (what anticipax did before) changes the counts: "don ' t" is not
  # "do n't", "1 . 5" is not "1.5", "stir - fry" is not "stir-fry".
  normalized = captions.anticipation_caption_metrics(
      [dict(recipe=r, k=1, prediction=predictions[r], reference=text.normalize(references[r])) for r in references],
      scorer=java_scorer)
  assert normalized["bleu4"] != pytest.approx(out["bleu4"], rel=1e-3)


@pytest.mark.slow
@needs_java
def test_no_java_equals_java(java_scorer, monkeypatch, caplog):
  refs = {k: v[0] for k, v in PUNCTUATED.items()}
  preds = {k: v[1] for k, v in PUNCTUATED.items()}
  with_java = java_scorer.score(preds, refs)
  monkeypatch.setenv(captions.NO_JAVA_ENV, "1")  # Forced, although Java is here.
  caplog.set_level(logging.WARNING)
  without = captions.score_captions(preds, refs)
  assert math.isnan(without["meteor"]) and math.isfinite(with_java["meteor"])
  for m in captions.METRICS:
    if m != "meteor":
      assert without[m] == pytest.approx(with_java[m], rel=1e-12, abs=1e-15), m
  assert len(_warnings(caplog)) == 1


def test_no_java_one_warning_for_all_k(caplog):
  caplog.set_level(logging.WARNING)
  records = [dict(recipe=r, k=k, prediction="add the salt", reference="Add salt.")
             for r in ("a", "b") for k in (1, 2, 3)]
  out = captions.anticipation_caption_metrics(records, use_java=False)
  assert len(_warnings(caplog)) == 1
  assert math.isnan(out["meteor"]) and all(math.isnan(out[f"k{k}/meteor"]) for k in (1, 2, 3))
  assert all(math.isfinite(out[m]) for m in captions.METRICS if m != "meteor")


def test_failing_java_falls_back(tmp_path, monkeypatch, caplog):
  fake = tmp_path / "java"
  fake.write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
  fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
  monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
  monkeypatch.delenv(captions.NO_JAVA_ENV, raising=False)
  assert captions.java_available()
  refs = {k: v[0] for k, v in PUNCTUATED.items()}
  preds = {k: v[1] for k, v in PUNCTUATED.items()}
  caplog.set_level(logging.WARNING)
  out = captions.score_captions(preds, refs)
  assert len(_warnings(caplog)) == 1
  assert math.isnan(out["meteor"])
  expected = captions.score_captions(preds, refs, use_java=False)
  assert {m: out[m] for m in captions.METRICS if m != "meteor"} == {
      m: expected[m] for m in captions.METRICS if m != "meteor"}
  with pytest.raises(captions.JavaError):
    captions.score_captions(preds, refs, use_java=True)


# ------------------------------------------------------------------------------- aggregation


Record = collections.namedtuple("Record", "recipe k prediction reference")


def test_anticipation_aggregation_by_hand():
  records = [
      dict(recipe="r1", k=1, prediction="Add the salt.", reference="Add the salt now."),
      Record("r2", 1, "Mix well.", "Mix the flour well."),
      dict(recipe="r1", k=2, prediction="Bake for ten minutes.",
           reference="Bake for ten minutes."),
  ]
  out = captions.anticipation_caption_metrics(records, use_java=False)
  assert set(out) == set(captions.METRICS) | {f"{g}/{m}" for g in ("k1", "k2", "pooled") for m in captions.METRICS}
  # k=1 over {r1, r2}: unigram matches 3/3 + 2/2, lengths 5 vs 4 + 4.
  k1_bleu1 = math.exp(1 - 8 / 5) * 1.0
  k1_rouge = (_rouge_f(3, 3, 4) + _rouge_f(2, 2, 4)) / 2
  assert out["k1/bleu1"] == pytest.approx(k1_bleu1, rel=1e-8)
  assert out["k1/rouge_l"] == pytest.approx(k1_rouge, rel=1e-12)
  # k=2 over {r1}: identical; CIDEr of a one-recipe set is 0 (IDF over that set).
  assert out["k2/bleu1"] == pytest.approx(1.0, abs=1e-6)
  assert out["k2/rouge_l"] == 1.0 and out["k2/cider"] == 0.0
  # Overall: unweighted mean over k.
  assert out["bleu1"] == pytest.approx((k1_bleu1 + 1.0) / 2, rel=1e-8)
  # Pooled: one corpus over the three records (unigrams 3/3 + 2/2 + 4/4, lengths 3 + 2 + 4 vs 4 + 4 + 4),
  # which weighs k by its number of recipes; ROUGE-L is then the mean over records.
  assert out["pooled/bleu1"] == pytest.approx(math.exp(1 - 12 / 9), rel=1e-8)
  assert out["pooled/rouge_l"] == pytest.approx((2 * k1_rouge + 1.0) / 3, rel=1e-12)
  assert out["pooled/bleu1"] != pytest.approx(out["bleu1"], rel=1e-3)
  assert out["rouge_l"] == pytest.approx((k1_rouge + 1.0) / 2, rel=1e-12)
  for m in captions.METRICS:
    if m != "meteor":
      assert out[m] == pytest.approx((out[f"k1/{m}"] + out[f"k2/{m}"]) / 2, rel=1e-12)
  # Each k is pycocoevalcap over that k's recipes.
  k1 = captions.score_captions({"r1": "Add the salt.", "r2": "Mix well."},
                         {"r1": "Add the salt now.", "r2": "Mix the flour well."},
                         use_java=False)
  assert all(out[f"k1/{m}"] == k1[m] for m in captions.METRICS if m != "meteor")


def _python_tokenize_many(sides):
  return [captions.ptb_tokenize(side) for side in sides]


class _FakeMeteor:
  instances = []

  def __init__(self):
    self.closed = False
    _FakeMeteor.instances.append(self)

  def score(self, gts, res):
    assert len(gts) == len(res)
    return 0.5

  def close(self):
    self.closed = True


def test_one_meteor_process_per_call_and_always_closed(monkeypatch):
  monkeypatch.setattr(scoring, "_Meteor", _FakeMeteor)
  monkeypatch.setattr(scoring, "java_tokenize_many", _python_tokenize_many)  # No JVM needed.
  _FakeMeteor.instances = []
  records = [dict(recipe=r, k=k, prediction="add salt", reference="Add the salt.")
             for r in range(3) for k in (1, 2, 3)]
  out = captions.anticipation_caption_metrics(records, use_java=True)
  assert out["meteor"] == 0.5 and out["k3/meteor"] == 0.5
  assert len(_FakeMeteor.instances) == 1 and _FakeMeteor.instances[0].closed
  with pytest.raises(ValueError, match="empty after tokenization"):
    captions.score_captions({0: "x"}, {0: "..."}, use_java=True)
  assert len(_FakeMeteor.instances) == 2 and _FakeMeteor.instances[1].closed
  # A scorer passed in serves several calls with one process, left open until its owner closes it.
  with captions.CaptionScorer(use_java=True) as shared:
    first = captions.anticipation_caption_metrics(records, scorer=shared)
    second = captions.anticipation_caption_metrics(records[:3], scorer=shared)
    assert len(_FakeMeteor.instances) == 3 and not _FakeMeteor.instances[2].closed
  assert _FakeMeteor.instances[2].closed and first == out and second["k1/meteor"] == 0.5


class _BrokenMeteor(_FakeMeteor):

  def score(self, gts, res):
    raise captions.JavaError("out of memory")


def test_failing_meteor_gives_nan_and_one_warning(monkeypatch, caplog):
  monkeypatch.setattr(scoring, "_Meteor", _BrokenMeteor)
  monkeypatch.setattr(scoring, "java_tokenize_many", _python_tokenize_many)
  monkeypatch.delenv(captions.NO_JAVA_ENV, raising=False)
  monkeypatch.setattr(scoring, "java_available", lambda: True)
  caplog.set_level(logging.WARNING)
  records = [dict(recipe=r, k=k, prediction="add salt", reference="Add the salt.")
             for r in range(2) for k in (1, 2)]
  out = captions.anticipation_caption_metrics(records)
  assert math.isnan(out["meteor"]) and math.isnan(out["k1/meteor"])
  assert out["bleu1"] == captions.anticipation_caption_metrics(records, use_java=False)["bleu1"]
  assert len(_warnings(caplog)) == 2  # One per call: the METEOR failure, then use_java=False.
  with pytest.raises(captions.JavaError, match="out of memory"):
    captions.anticipation_caption_metrics(records, use_java=True)


@pytest.mark.slow
def test_meteor_process_is_killed_on_close(java_scorer):
  java_scorer.score({0: "stir"}, {0: "Stir."})
  proc = java_scorer._meteor._proc  # pylint: disable=protected-access
  assert proc.poll() is None
  java_scorer.close()
  assert proc.poll() is not None and java_scorer._meteor is None  # pylint: disable=protected-access


# -------------------------------------------------------------------------------- validation


def test_invalid_inputs(python_scorer):
  with pytest.raises(ValueError, match="same keys"):
    python_scorer.score({0: "a"}, {1: "a"})
  with pytest.raises(ValueError, match="empty after tokenization"):
    python_scorer.score({0: "a"}, {0: " "})
  with pytest.raises(TypeError):
    python_scorer.score({0: None}, {0: "a"})
  with pytest.raises(ValueError, match="two records"):
    captions.anticipation_caption_metrics(
        [dict(recipe=0, k=1, prediction="a", reference="a")] * 2, use_java=False)
  with pytest.raises(ValueError, match="integer"):
    captions.anticipation_caption_metrics(
        [dict(recipe=0, k=1.5, prediction="a", reference="a")], use_java=False)


def test_empty_inputs():
  assert all(math.isnan(v) for v in captions.score_captions({}, {}, use_java=False).values())
  out = captions.anticipation_caption_metrics([], use_java=False)
  assert set(out) == set(captions.METRICS) | {f"pooled/{m}" for m in captions.METRICS}
  assert all(math.isnan(v) for v in out.values())

