"""Method 1 carried to EPIC-Kitchens-100: (MLM) -> teacher -> baseline and distilled AVT students x seeds.

    python -m anticipax.distill_pipeline --config=configs/ek100_kd.py --workdir=/tmp/ek100_kd \\
        --config.manual_dir=/data/ek100_rulstm --config.seeds=3

The seed paper has no EK100 experiment: the teacher is EK55's recipe (DistilBERT, the previous 5
actions; configs/teacher_ek55.py's settings on EK100's data) and the student configs/ek100.py with EK55's
distillation settings (T = 5, weight 20, top 50, class-averaged). The verdict is on the validation
class-mean top-5 recall of actions, EK100's challenge metric.
"""

from configs import common
from configs import ek100
from configs import mlm_recipes


def get_config(arg: str | None = None):
  teacher = ek100.get_config(arg)
  common.teacher_recipe(teacher, pretrained="distilbert-base-uncased", train_examples=ek100.TRAIN_EXAMPLES,
                        hist_len=5, epochs=8)
  teacher.loss.update(next_action=0.7, verb=0.15, noun=0.15, class_weights="")
  return common.kd_pipeline(teacher, ek100.get_config(arg), mlm=mlm_recipes.get_config(),
                            compare_metric="action/mean_top5_recall")
