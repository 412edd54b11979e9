"""Method 2 end to end on a synthetic Tasty collection: teacher, visual-only student and CCD student.

    python -m anticipax.distill_pipeline --config=configs/tasty_demo.py --workdir=/tmp/tasty_demo

The collection is generated locally in the real Tasty Videos format (encoded recipe XML + dictionary,
csvalignment.dat with steps without video, both split layouts, per-recipe .npy frame features that are a
noisy function of the step), so the real reader builds it. Stages, each the one trainer with the
`next_step` task, in `<workdir>/<stage>` (the two students once per seed in `<workdir>/<arm>/seed_<k>`):
  pretrain  the text teacher learns next-step generation on 4000 text-only recipes from the same dish
            grammars, written beside the collection in RecipeNLG's format (those equal to a validation or
            test recipe are dropped first);
  teacher   it then fine-tunes on the collection's training recipes: a small BERT (word-level tokenizer
            built from the corpus and training steps) reads each step's sentence; it predicts step k+1 from
            the ingredients and steps 1..k, and exports its per-step states and step vectors;
  baseline  the visual-only student: the same temporal transformer and decoder over frame features;
  student   the CCD student: the baseline plus the cross-modal contrastive loss to the teacher's states.
Then `comparison.md` / `.json`: BLEU-1..4, METEOR (with Java), ROUGE-L, CIDEr per arm, mean ± std over
`--config.seeds` seeds (default 3), the relative gain and a paired t-test on BLEU-4; example predictions
are in each run's `predictions.jsonl`; the teacher stands beside three reference predictors fitted on the
same text (repeat the last step, the most frequent next step, nearest-neighbour retrieval).
`configs/tasty_demo.py:ablation` adds a CCD student contrasting the other representation (`distill.contrast`).
"""

from configs import tasty


def get_config(arg: str | None = None):
  if arg not in (None, "", "ablation"):
    raise ValueError(f"configs/tasty_demo.py: config argument {arg!r} is unknown (known: ablation)")
  c = tasty.pipeline("demo", ablation=arg == "ablation")
  c.seeds = 3
  return c
