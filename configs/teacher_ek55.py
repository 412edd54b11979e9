"""The text teacher for EPIC-Kitchens-55: BERT fine-tuned on the text of the previous 5 actions.

    python -m anticipax.main --config=configs/teacher_ek55.py --workdir=/tmp/teacher_ek55

As configs/teacher_egtea.py; then distil with configs/ek55.py and `--config.distill.kind=kl
--config.distill.teacher_outputs=/tmp/teacher_ek55/teacher_outputs_train.npz` (T = 5, weight 20, top-50
are already its defaults).
"""

from configs import common
from configs import ek55


def get_config(arg: str | None = None):
  c = ek55.get_config(arg)
  c.task = "teacher"
  c.text = common.text_config(pretrained="bert-base-uncased", max_len=64, hist_len=5)
  c.model = common.base_config().model
  c.model.dropout = 0.1
  # Paper: action / verb / noun losses weighted 0.7 / 0.15 / 0.15.
  c.loss.update(next_action=0.7, verb=0.15, noun=0.15, class_weights="")
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  steps_per_epoch = ek55.TRAIN_EXAMPLES // 32
  c.schedule.update(peak_lr=1e-5, warmup_steps=steps_per_epoch)
  c.train.update(batch_size=32, steps=10 * steps_per_epoch, eval_every=steps_per_epoch,
                 checkpoint_every=steps_per_epoch, profile_steps=0)
  c.eval.best_metric = "action/mean_top5_recall"
  c.distill.kind = ""
  return c
