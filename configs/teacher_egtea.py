"""The text teacher for EGTEA Gaze+: BERT fine-tuned on the text of the previous 15 actions.

    python -m anticipax.main --config=configs/teacher_egtea.py --workdir=/tmp/teacher_egtea

Starts from `text.pretrained` (bert-base-uncased from the Hugging Face hub when online, or a local model
directory), or from a domain-pretrained MLM run: `--config.text.init_workdir=/tmp/mlm_recipes`
(configs/mlm_recipes.py). When it finishes, `<workdir>/teacher_outputs_train.npz` holds its logits per
training segment; configs/egtea.py distils it with `--config.distill.kind=kl
--config.distill.teacher_outputs=/tmp/teacher_egtea/teacher_outputs_train.npz`.
"""

from configs import common
from configs import egtea


def get_config(arg: str | None = None):
  c = egtea.get_config(arg)  # same data, windows and split as the student
  common.teacher_training(c, train_examples=egtea.TRAIN_EXAMPLES, hist_len=15, max_len=128)
  # Paper: action / verb / noun losses weighted 0.8 / 0.1 / 0.1, balanced class weights for actions.
  c.loss.update(next_action=0.8, verb=0.1, noun=0.1, class_weights="balanced")
  return c
