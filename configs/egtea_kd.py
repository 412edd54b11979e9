"""Method 1 on EGTEA Gaze+, one command: (MLM) -> text teacher -> baseline and distilled AVT students x seeds.

    python -m anticipax.distill_pipeline --config=configs/egtea_kd.py --workdir=/tmp/egtea_kd \\
        --config.manual_dir=/data/egtea_rulstm --config.seeds=3

Stages (each the ordinary trainer config, resumable in `<workdir>/<stage>`, students in
`<workdir>/<arm>/seed_<k>`):
  mlm       only with `--config.corpus=<recipe text, one document a line>`: masked-LM domain pretraining
            of the teacher's encoder (configs/mlm_recipes.py);
  teacher   configs/teacher_egtea.py from the MLM run or `--config.pretrained` (bert-base-uncased; a local
            HF directory works offline); exports its logits for every training segment;
  baseline  configs/egtea.py (AVT-h on TSN features, AVT's recipe), `--config.seeds` seeds;
  student   the same with KL distillation from the teacher (T = 10, weight 150, class-averaged).
Then `<workdir>/comparison.md` / `.json`: every metric as mean ± std per arm, the relative gain, a paired
t-test over seeds and a verdict on class-mean top-1 (the paper reports +3.5 % relative), beside the
teacher and two history-only predictors (class prior, bigram).

`get_config("split=2")` runs another split. The seed paper's EGTEA student was AVT-b (ViT on frames);
this pipeline distils into AVT-h on the distributed TSN features.
"""

from configs import common
from configs import egtea
from configs import mlm_recipes
from configs import teacher_egtea


def get_config(arg: str | None = None):
  return common.kd_pipeline(teacher_egtea.get_config(arg), egtea.get_config(arg), mlm=mlm_recipes.get_config(),
                            compare_metric="action/mean_top1")
