"""The text teacher for EGTEA Gaze+: BERT fine-tuned to predict the next action from the previous 15.

    python -m anticipax.main --config=configs/teacher_egtea.py --workdir=/tmp/teacher_egtea

Starts from `text.pretrained` (bert-base-uncased from the Hugging Face hub when online, or a local model
directory: `--config.text.pretrained=/models/bert-base-uncased`), or from a domain-pretrained MLM run:
`--config.text.init_workdir=/tmp/mlm_recipes` (configs/mlm_recipes.py). When it finishes,
`<workdir>/teacher_outputs_train.npz` holds its logits per training segment, which configs/egtea.py
distils (its docstring has the command; configs/egtea_kd.py runs the whole chain).

The recipe, from the seed paper's released teacher code and README (`egtea_finetuning.py -model_type bert
-batch_size 16 -num_epochs 5 -max_len 512 -weigh_classes True -hist_len 15 -multi_task True`): the
[CLS] state to action, verb and noun heads with losses weighted 0.8 / 0.1 / 0.1, each cross-entropy
with balanced class weights; AdamW at a constant lr 1e-5, eps 1e-8, weight decay 1e-7; batch 16, 5
epochs; the text of the previous 15 actions, its last 512 tokens kept.

Deliberate differences: each batch is padded to the shortest length bucket holding its longest text
(`text.length_buckets`: 16, 20, 24, 28, 32, 40, ..., 512, four per octave; one compilation per bucket
reached) where the released code pads each batch to its longest text; the logits are the same. Weight decay skips biases
and LayerNorm parameters (the released code's name filter skips biases only; at 1e-7 this is immaterial).
The released student's EGTEA teacher file is named after DistilBERT: `--config.text.pretrained=
distilbert-base-uncased` selects it.
"""

from configs import common
from configs import egtea


def get_config(arg: str | None = None):
  c = egtea.get_config(arg)  # same data, windows and split as the student
  common.teacher_recipe(c, pretrained="bert-base-uncased", train_examples=egtea.TRAIN_EXAMPLES, hist_len=15,
                        epochs=5)
  c.loss.update(next_action=0.8, verb=0.1, noun=0.1, class_weights="balanced")
  return c
