"""Tests for anticipax.next_step.captions' tokenizers: the pure-Python PTBTokenizer against the jar's outputs.

Java (for pycocoevalcap's PTBTokenizer jar) is optional: the test that needs it is skipped
without it.
"""

import random
import shutil

import pytest

pytest.importorskip("pycocoevalcap")
from anticipax.next_step import captions  # pylint: disable=g-import-not-at-top
from tests.next_step.captions.test_scoring import PUNCTUATED  # pylint: disable=g-import-not-at-top

HAVE_JAVA = shutil.which("java") is not None
needs_java = pytest.mark.skipif(not HAVE_JAVA, reason="needs Java (pycocoevalcap's jars)")


# Jar outputs (pycocoevalcap's PTBTokenizer, punctuation dropped), recorded with Java 17.
TOKENIZED = [
    ("Add 1 1/2 cups (about 350 g) of flour, don't stir.",
     "add 1\u00a01/2 cups -lrb- about 350 g -rrb- of flour do n't stir"),
    ("Preheat to 350°F. Cannot wait!", "preheat to 350 ° f. can not wait"),
    ("Add 2 tbsp. sugar, 1 tbsp., and ½ tsp salt.",
     "add 2 tbsp sugar 1 tbsp. and 1/2 tsp salt"),
    ("It's the chefs' knife: \u201cvery sharp\u201d \u2014 really\u2026",
     "it 's the chefs knife very sharp really"),
    ("Mix etc. Then bake at 180C/350F for 20-25 mins.",
     "mix etc. then bake at 180c/350f for 20-25 mins"),
    ("Serve w/ rice & beans [optional] {hot} :)",
     "serve w / rice & beans -lsb- optional -rsb- -lcb- hot -rcb- :-rrb-"),
    ("See tasty.co/recipe or a@b.com \U0001f600 #yum", "see tasty.co / recipe or a@b.com #yum"),
]


def test_ptb_tokenize_known_outputs():
  got = captions.ptb_tokenize([s for s, _ in TOKENIZED])
  assert got == [t for _, t in TOKENIZED]


def test_ptb_tokenize_line_context():
  # The jar's quirk: a line-final "F." before a line starting with "The" loses its period.
  assert captions.ptb_tokenize(["Heat to 350 F.", "The dough rises."]) == [
      "heat to 350 f", "the dough rises"]
  assert captions.ptb_tokenize(["Heat to 350 F.", "the dough rises."]) == [
      "heat to 350 f.", "the dough rises"]
  assert captions.ptb_tokenize([]) == [] and captions.ptb_tokenize([""]) == [""]


_PIECES = """Preheat the oven to 350 degrees F . Add 1 1/2 cups of flour , sugar ; mix well !
Don't can't won't it's they're I'm cannot gonna e.g. etc. a.m. U.S. Mr. tbsp. oz. min. no. Co.
( ) [ ] { } " ' ` “ ” ‘ ’ ... -- - — / * & % $ # @ + = ~ ^ | < > : ? ! ½ ¼ ° × é
stir-fry 5-7 1-inch 1/2-inch 2x2 350F 180C/350F and/or w/ 3.5 1,000 10:30 1.5-2.5 o'clock
'90s y'all chefs' :) ;-) <3 ^_^ www.tasty.com a@b.com #yum F. I. x. The A In It You""".split()


def _random_sentences(n, seed):
  rng = random.Random(seed)
  out = []
  for _ in range(n):
    words = [rng.choice(_PIECES) for _ in range(rng.randint(0, 12))]
    words = [w.capitalize() if rng.random() < 0.2 else w for w in words]
    out.append("".join(w + rng.choice([" ", " ", "", "  "]) for w in words).strip() +
               rng.choice(["", ".", ".", "!", " ."]))
  return out


@needs_java
def test_ptb_tokenize_matches_the_jar():
  sentences = [s for s, _ in TOKENIZED] + [v for pair in PUNCTUATED.values() for v in pair]
  sentences += _random_sentences(400, seed=0) + ["", "   ", "...", "ünïcödé ½ café"]
  assert captions.ptb_tokenize(sentences) == captions.java_tokenize(sentences)
  # Several sides in one JVM: each its own input (a line's context ends with its side).
  sides = [sentences[:150], [], sentences[150:]]
  assert captions.java_tokenize_many(sides) == [captions.ptb_tokenize(side) for side in sides]
