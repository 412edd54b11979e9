"""Masked-LM domain pretraining of BERT on a recipe text corpus (one document per line).

    python -m anticipax.main --config=configs/mlm_recipes.py --workdir=/tmp/mlm_recipes \\
        --config.data.corpus=/data/recipes_as_actions.txt

The corpus is plain UTF-8 text, one recipe per line, e.g. converted to action sequences
("take <v> knife <a> cut <v> onion ..."). The teacher configs start from it with
`--config.text.init_workdir=/tmp/mlm_recipes`.
"""

from configs import common


def get_config(arg: str | None = None):
  common.parse_arg(arg, __file__)  # takes no argument: one given is refused
  c = common.base_config()
  c.task = "mlm"
  c.data.name = "corpus"
  c.data.corpus = ""
  c.data.eval_fraction = 0.01
  c.text = common.text_config(pretrained="bert-base-uncased", max_len=128)
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  c.schedule.update(peak_lr=5e-5, warmup_steps=1000)
  c.train.update(batch_size=64, steps=20000, log_every=100, eval_every=2000, checkpoint_every=2000)
  c.eval.update(batch_size=128, best_metric="mlm/accuracy")
  return c
