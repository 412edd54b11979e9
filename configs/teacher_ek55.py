"""The text teacher for EPIC-Kitchens-55: DistilBERT fine-tuned to predict the next action from the previous 5.

    python -m anticipax.main --config=configs/teacher_ek55.py --workdir=/tmp/teacher_ek55

As configs/teacher_egtea.py; configs/ek55.py's docstring has the distillation command (T = 5, weight 20,
top-50 are its defaults) and configs/ek55_kd.py runs the whole chain.

The recipe, from the seed paper's released teacher code and README (`epic55_finetuning.py -model_type
distillbert -batch_size 16 -num_epochs 8 -max_len 512 -hist_len 5 -weigh_classes False -multi_task True`):
the [CLS] state to action, verb and noun heads with losses weighted 0.7 / 0.15 / 0.15, no class weights;
AdamW at a constant lr 1e-5, eps 1e-8, weight decay 1e-7; batch 16, 8 epochs; the text of the previous 5
actions, its last 512 tokens kept.

Deliberate differences: as configs/teacher_egtea.py (length buckets, no decay on LayerNorm); the released
EK55 training loader does not shuffle, this one does (every run here shuffles its training data).
"""

from configs import common
from configs import ek55


def get_config(arg: str | None = None):
  c = ek55.get_config(arg)  # same data, windows and split as the student
  common.teacher_recipe(c, pretrained="distilbert-base-uncased", train_examples=ek55.TRAIN_EXAMPLES, hist_len=5,
                        epochs=8)
  c.loss.update(next_action=0.7, verb=0.15, noun=0.15, class_weights="")
  c.eval.best_metric = "action/mean_top5_recall"
  return c
