"""Method 2 end to end on a synthetic Tasty collection: teacher, visual-only student and CCD student.

    python -m anticipax.distill_pipeline --config=configs/tasty_demo.py --workdir=/tmp/tasty_demo

The collection is generated locally in the real Tasty Videos format (encoded recipe XML + dictionary,
csvalignment.dat with steps without video, both split layouts, per-recipe .npy frame features that are a
noisy function of the step), so the real reader builds it. Stages, each the one trainer with the
`next_step` task, in `<workdir>/<stage>` (the two students once per seed in `<workdir>/<arm>/seed_<k>`):
  teacher   a small BERT (word-level tokenizer built from the training steps) reads each step's
            sentence; it predicts step k+1 from the ingredients and steps 1..k, and exports its per-step
            temporal states;
  baseline  the visual-only student: the same temporal transformer and decoder over frame features;
  student   the CCD student: the baseline plus the cross-modal contrastive loss to the teacher's states.
Then `comparison.md` / `.json`: BLEU-1..4, METEOR (with Java), ROUGE-L, CIDEr per arm, mean ± std over
`--config.seeds` seeds (default 3), the relative gain and a paired t-test on BLEU-4; example predictions
are in each run's `predictions.jsonl`.
"""

from configs import tasty


def get_config(arg: str | None = None):
  c = tasty.pipeline("demo", ablation=arg == "ablation")
  c.seeds = 3
  return c
