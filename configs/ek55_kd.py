"""Method 1 on EPIC-Kitchens-55, one command: (MLM) -> teacher -> baseline and distilled AVT students x seeds.

    python -m anticipax.distill_pipeline --config=configs/ek55_kd.py --workdir=/tmp/ek55_kd \\
        --config.manual_dir=/data/ek55_rulstm --config.seeds=3

As configs/egtea_kd.py, with configs/teacher_ek55.py (DistilBERT, the previous 5 actions) and
configs/ek55.py (KL at T = 5, weight 20, over the teacher's top 50 classes). The verdict is on the
validation class-mean top-5 recall of many-shot actions (the paper reports +7.2 % relative).
`get_config("features=ig65m")` uses the IG65M features, as the seed paper's EK55 student did.
"""

from configs import common
from configs import ek55
from configs import mlm_recipes
from configs import teacher_ek55


def get_config(arg: str | None = None):
  teacher = teacher_ek55.get_config(arg)
  mlm = mlm_recipes.get_config()
  return common.kd_pipeline(teacher, ek55.get_config(arg), mlm=mlm,
                            compare_metric="action/many_shot_mean_top5_recall")
