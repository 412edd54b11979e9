"""The step teacher's reference predictors (method 2) on hand-made recipes whose answers are counted by hand."""

import numpy as np
import pytest

from anticipax.next_step import captions
from anticipax.next_step import references as step_baselines


def _example(name, ingredients, steps, max_steps=5, as_bytes=False):
  """A `tasty_videos`-like example: steps padded with "" to `max_steps`, bytes as a data source returns."""
  enc = (lambda s: s.encode()) if as_bytes else (lambda s: s)
  padded = np.array([enc(s) for s in steps + [""] * (max_steps - len(steps))], dtype=object)
  return {"recipe": enc(name), "ingredients": enc(ingredients), "steps": padded, "num_steps": np.int32(len(steps)),
          "step_mask": (np.arange(max_steps) < len(steps)).astype(np.int32)}


CRACK, WHISK, FLOUR = "crack the egg open", "whisk the egg well", "add the flour slowly"
MILK, BOIL, RICE = "add the milk slowly", "boil the water now", "add the rice slowly"
SERVE, CHICKEN = "serve the rice warm", "add the chicken slowly"
TRAIN = [
    _example("t1", "egg, flour", [CRACK, WHISK, FLOUR]),
    _example("t2", "egg, milk", [CRACK, MILK, WHISK]),
    _example("t3", "rice, water", [BOIL, RICE, SERVE]),
    _example("t4", "rice, chicken", [BOIL, CHICKEN]),
    _example("t5", "egg, butter", [WHISK]),
]
# Hand counts of TRAIN (ties -> lexicographically smallest sentence):
#   first step:   crack 2, boil 2, whisk 1            -> BOIL
#   index 1:      whisk, milk, rice, chicken: 1 each  -> CHICKEN
#   index 2:      flour, whisk, serve: 1 each         -> FLOUR
#   index 3:      none                                -> overall: whisk 3, crack 2, boil 2 -> WHISK
#   successors:   crack -> whisk 1, milk 1 -> MILK;  whisk -> FLOUR;  milk -> WHISK;
#                 boil -> rice 1, chicken 1 -> CHICKEN;  rice -> SERVE;  flour, serve, chicken: never followed
SUGAR, BAKE = "add the sugar slowly", "bake the cake now"
EVAL = [
    _example("e1", "egg, sugar", [CRACK, WHISK, SUGAR, BAKE], as_bytes=True),
    _example("e2", "rice, chicken", [BOIL, CHICKEN, SERVE], as_bytes=True),
]
# Expected step k+1 per (recipe, k), k = 0..3 for e1 and 0..2 for e2 (it has 3 steps).
REFERENCE = {("e1", 0): CRACK, ("e1", 1): WHISK, ("e1", 2): SUGAR, ("e1", 3): BAKE,
             ("e2", 0): BOIL, ("e2", 1): CHICKEN, ("e2", 2): SERVE}
EXPECTED = {
    # k = 0: the most frequent first step; then the last observed step itself.
    "repeat_last": {("e1", 0): BOIL, ("e1", 1): CRACK, ("e1", 2): WHISK, ("e1", 3): SUGAR,
                    ("e2", 0): BOIL, ("e2", 1): BOIL, ("e2", 2): CHICKEN},
    # e1 k=3: SUGAR never seen, no training step at index 3 -> overall WHISK. e2 k=2: CHICKEN seen but never
    # followed -> index 2 -> FLOUR. k = 0: index 0 -> BOIL.
    "next_step_frequency": {("e1", 0): BOIL, ("e1", 1): MILK, ("e1", 2): FLOUR, ("e1", 3): WHISK,
                            ("e2", 0): BOIL, ("e2", 1): CHICKEN, ("e2", 2): FLOUR},
    # e1 k=0,1: t1, t2 (and t5 at k=0) prefixes weigh the same ("egg flour ..." vs "egg milk ...", flour
    # and milk both in one recipe) -> tie -> t1, the first. e1 k=2: t1 shares "whisk the egg well" -> FLOUR.
    # e1 k=3: no training recipe has a 4th step -> the most frequent step, WHISK. e2 k=0,1: its prefix IS t4's
    # (cosine 1); e2 k=2: t4 has no 3rd step, t3 shares rice/boil/water/now/add/slowly -> SERVE.
    "retrieval": {("e1", 0): CRACK, ("e1", 1): WHISK, ("e1", 2): FLOUR, ("e1", 3): WHISK,
                  ("e2", 0): BOIL, ("e2", 1): CHICKEN, ("e2", 2): SERVE},
}


@pytest.fixture(autouse=True)
def _no_java(monkeypatch):
  monkeypatch.setenv(captions.NO_JAVA_ENV, "1")  # METEOR is NaN; BLEU, ROUGE-L, CIDEr in pure Python


def _predictions(model, name):
  recipes = step_baselines.read(EVAL)
  pairs = [(r, k) for r in recipes for k in step_baselines.observed_counts(r, 0, 3)]
  if name == "retrieval":
    return dict(zip([(r.name, k) for r, k in pairs], model.retrieval([(r.ingredients, r.steps[:k]) for r, k in pairs])))
  return {(r.name, k): getattr(model, name)(r.steps[:k]) for r, k in pairs}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_predictor_gives_the_hand_counted_sentence(name):
  model = step_baselines.StepBaselines([TRAIN])
  assert _predictions(model, name) == EXPECTED[name]


def test_retrieval_weighs_words_by_smoothed_idf_apart_from_commas():
  model = step_baselines.StepBaselines([TRAIN])
  # IDF = ln((1 + N) / (1 + df)) + 1 over the N = 5 training recipes (ingredients + all steps).
  idf = {w: model.idf[model.vocab[w]] for w in ("the", "egg", "water", "flour")}
  assert idf == pytest.approx({"the": 1.0, "egg": np.log(6 / 4) + 1, "water": np.log(6 / 3) + 1,
                               "flour": np.log(6 / 2) + 1})
  # "egg, water" at k = 0: with equal weights t1 "egg flour", t2, t3 "rice water", t5 would tie (t1 wins);
  # the rarer "water" makes t3 nearest -> its first step BOIL.
  assert model.retrieval([("egg, water", [])]) == [BOIL]
  # "salt, rice": "rice" must match the "rice," of t3's and t4's ingredients (a whitespace split would
  # match nothing and fall to t1's CRACK); both start with BOIL.
  assert model.retrieval([("salt, rice", [])]) == [BOIL]
  # A query of unknown words only matches nothing: the first candidate, t1.
  assert model.retrieval([("salt", ["fry fish"])]) == [WHISK]


def test_frequency_backs_off_from_successor_to_position_to_overall():
  model = step_baselines.StepBaselines([TRAIN])
  assert model.next_step_frequency(["x", CRACK]) == MILK  # successor tie MILK/WHISK: lexicographic
  assert model.next_step_frequency(["never seen"]) == CHICKEN  # unseen: most frequent at index 1
  assert model.next_step_frequency([BOIL, SERVE]) == FLOUR  # seen, never followed: index 2
  assert model.next_step_frequency([BOIL, BOIL, SERVE]) == WHISK  # nothing at index 3: overall
  assert model.next_step_frequency([]) == model.repeat_last([]) == BOIL  # first-step tie BOIL/CRACK


def test_sources_are_concatenated_in_order_and_read_once():
  class Counting(list):
    reads = 0

    def __getitem__(self, i):
      Counting.reads += 1
      return list.__getitem__(self, i)

  split = step_baselines.StepBaselines([Counting(TRAIN[:2]), Counting(TRAIN[2:])])
  assert Counting.reads == len(TRAIN)
  whole = step_baselines.StepBaselines([TRAIN])
  for name in EXPECTED:
    assert _predictions(split, name) == _predictions(whole, name)
  # Order breaks the retrieval tie: with t2 first, e1's first steps come from t2.
  swapped = step_baselines.StepBaselines([[TRAIN[1], TRAIN[0], *TRAIN[2:]]])
  assert swapped.retrieval([("egg, sugar", [CRACK])]) == [MILK]
  with pytest.raises(TypeError, match="single example"):
    step_baselines.StepBaselines([TRAIN[0]])


def test_records_match_the_task_layout():
  got = step_baselines.records(EVAL, lambda row, recipe, k: f"{row}:{k}", 1, 2, indices=[1, 0])
  assert got == [
      {"recipe": "e2", "k": 1, "observed": [BOIL], "prediction": "0:1", "reference": CHICKEN},
      {"recipe": "e2", "k": 2, "observed": [BOIL, CHICKEN], "prediction": "0:2", "reference": SERVE},
      {"recipe": "e1", "k": 1, "observed": [CRACK], "prediction": "1:1", "reference": WHISK},
      {"recipe": "e1", "k": 2, "observed": [CRACK, WHISK], "prediction": "1:2", "reference": SUGAR}]


def test_perfect_predictor_scores_bleu4_one():
  perfect = step_baselines.records(EVAL, lambda row, recipe, k: recipe.steps[k], 0, 3)
  assert {(r["recipe"], r["k"]): r["reference"] for r in perfect} == REFERENCE
  metrics = captions.anticipation_caption_metrics(perfect)
  assert metrics["bleu4"] == pytest.approx(1.0) and metrics["rouge_l"] == pytest.approx(1.0)


def test_evaluate_scores_the_hand_computed_bleu4():
  result = step_baselines.evaluate([TRAIN], EVAL, first_k=0, last_k=3)
  assert sorted(result) == sorted(EXPECTED)
  assert set(result["retrieval"]) == ({f"{g}/{m}" for g in ("k0", "k1", "k2", "k3", "pooled") for m in captions.METRICS}
                                      | set(captions.METRICS))
  # Corpus BLEU-4 per k over the recipes reaching k (4-word sentences, equal lengths: no brevity penalty).
  # A 4-word exact match + a pair sharing only "the": 1-grams 5/8, 2-grams 3/6, 3-grams 2/4, 4-grams 1/2.
  one_of_two = (5 / 8 * 3 / 6 * 2 / 4 * 1 / 2) ** 0.25
  # retrieval at k=2: SERVE exact + FLOUR for SUGAR (add, the, slowly; "add the"): 7/8, 4/6, 2/4, 1/2.
  flour_for_sugar = (7 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25
  expected = {  # k0..k3 BLEU-4; None: no 4-gram matches (pycocoevalcap's smoothing leaves ~1e-5, not 0)
      "repeat_last": [one_of_two, None, None, None],  # no observed step is ever repeated after k = 0
      "next_step_frequency": [one_of_two, one_of_two, None, None],
      "retrieval": [1.0, 1.0, flour_for_sugar, None]}
  for name, per_k in expected.items():
    for k, value in enumerate(per_k):
      got = result[name][f"k{k}/bleu4"]
      assert got < 1e-3 if value is None else got == pytest.approx(value, rel=1e-6), (name, k, got)
    assert result[name]["bleu4"] == pytest.approx(np.mean([v or 0.0 for v in per_k]), abs=1e-3)
    assert np.isnan(result[name]["meteor"])  # no Java here, by the fixture
  # First and last k bound the records: k = 1 only.
  only_k1 = step_baselines.evaluate([TRAIN], EVAL, first_k=1, last_k=1)["retrieval"]
  assert only_k1["bleu4"] == pytest.approx(1.0) and "k0/bleu4" not in only_k1 and "k2/bleu4" not in only_k1
