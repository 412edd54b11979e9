"""The text teacher for EPIC-Kitchens-55: BERT fine-tuned on the text of the previous 5 actions.

    python -m anticipax.main --config=configs/teacher_ek55.py --workdir=/tmp/teacher_ek55

As configs/teacher_egtea.py; then distil with configs/ek55.py and `--config.distill.kind=kl
--config.distill.teacher_outputs=/tmp/teacher_ek55/teacher_outputs_train.npz` (T = 5, weight 20, top-50
are already its defaults).
"""

from configs import common
from configs import ek55


def get_config(arg: str | None = None):
  c = ek55.get_config(arg)  # same data, windows and split as the student
  common.teacher_training(c, train_examples=ek55.TRAIN_EXAMPLES, hist_len=5, max_len=64)
  # Paper: action / verb / noun losses weighted 0.7 / 0.15 / 0.15.
  c.loss.update(next_action=0.7, verb=0.15, noun=0.15, class_weights="")
  c.eval.best_metric = "action/mean_top5_recall"
  return c
