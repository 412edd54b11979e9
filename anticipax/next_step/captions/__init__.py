"""Caption metrics for next-step sentence anticipation (method 2, Tasty Videos).

Evaluation as in Sener & Yao (ICCV 2019): for k = 1..K observed steps of a recipe the model
predicts the sentence of step k+1, scored against that single reference sentence with
BLEU-1..4, METEOR, ROUGE-L and CIDEr. Keys: METRICS. Values are fractions as pycocoevalcap
returns them (CIDEr is x10 and not bounded by 1).

Scorers (`scoring`). pycocoevalcap's `Bleu(4)`, `Meteor`, `Rouge` and `Cider` (no SPICE), on
text tokenized as pycocoevalcap's `PTBTokenizer` does (the jar it ships on the sentences of one
side, references then predictions, each its own input as in its `COCOEvalCap`; `java`), every
line-break character first turned into a space. One METEOR JVM per `CaptionScorer` (it takes
seconds to load its paraphrase table), closed on exit, on error and after a timeout.

Without Java. If `java` is not on PATH, ANTICIPAX_NO_JAVA=1 is set, `use_java=False` is passed
or a Java call fails, BLEU, ROUGE-L and CIDEr are computed on text tokenized by `ptb_tokenize`,
a pure-Python port of the jar's PTBLexer that gives the jar's tokens (`ptb`). METEOR, a Java
program, is then NaN (the key stays, so tables keep their columns) and ONE warning is logged
per `CaptionScorer` (per `score_captions` / `anticipation_caption_metrics` call).
`use_java=True` instead raises JavaError when Java is unusable.

Empty predictions (empty, blank or only punctuation) are scored as empty hypotheses by all
four scorers (length 0, no n-grams: 0 for that item, and BLEU's pooled length counts 0);
pycocoevalcap 1.2 and its meteor-1.5.jar accept them, which the tests check. References must
not be empty after tokenization (ValueError).

Aggregation (`anticipation_caption_metrics`). S_k is the set of recipes with a record at k
(they have at least k+1 steps). ``k{k}/<m>`` is pycocoevalcap's score over S_k, which is what
"averaged over recipes" means here:
- BLEU-n is corpus-level over S_k: clipped n-gram matches, candidate n-gram counts and
  hypothesis/reference lengths are summed over S_k before the precisions and the brevity
  penalty are formed (not a mean of sentence BLEUs);
- METEOR is Meteor 1.5's score of the statistics pooled over S_k (not a mean of sentence
  METEORs);
- ROUGE-L is the mean over S_k of sentence ROUGE-L F-measures (beta = 1.2);
- CIDEr (pycocoevalcap's CIDEr-D form: clipped tf-idf, Gaussian length penalty, x10) is the
  mean over S_k of sentence scores whose IDF comes from the references of S_k only, so it
  depends on which recipes reach k; with one recipe every IDF is 0 and CIDEr is 0.
The overall ``<m>`` is the unweighted mean over k of ``k{k}/<m>`` (every k counts the same,
however many recipes reach it); ``pooled/<m>`` scores every (recipe, k) record as one set (each
record counts the same, so small k, which more recipes reach, weigh more; CIDEr's IDF is over all
the references). Tokenization is per k as well, in the records' order; the
jar's tokens of a line can depend on the start of the next line (rarely: a period after a
lone letter or an acronym at the end of a sentence), which the Python port reproduces.
"""

from anticipax.next_step.captions.java import JavaError
from anticipax.next_step.captions.java import NO_JAVA_ENV
from anticipax.next_step.captions.java import java_available
from anticipax.next_step.captions.java import java_tokenize
from anticipax.next_step.captions.java import java_tokenize_many
from anticipax.next_step.captions.ptb import PUNCTUATIONS
from anticipax.next_step.captions.ptb import ptb_tokenize
from anticipax.next_step.captions.scoring import CaptionScorer
from anticipax.next_step.captions.scoring import METRICS
from anticipax.next_step.captions.scoring import anticipation_caption_metrics
from anticipax.next_step.captions.scoring import score_captions

__all__ = [
    "METRICS",
    "NO_JAVA_ENV",
    "PUNCTUATIONS",
    "JavaError",
    "CaptionScorer",
    "score_captions",
    "anticipation_caption_metrics",
    "java_available",
    "ptb_tokenize",
    "java_tokenize",
    "java_tokenize_many",
]
