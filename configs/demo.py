"""AVT on the embedded synthetic_kitchen dataset: a few minutes on 2 CPU cores.

    python -m anticipax.main --config=configs/demo.py --workdir=/tmp/anticipax_demo

The dataset is generated locally on first use (no download) into TFDS's data dir; a smoke run:
`--config.train.steps=10`.
"""

from configs import common


def get_config(arg: str | None = None):
  common.parse_arg(arg, __file__)  # takes no argument: one given is refused
  c = common.base_config()
  c.data.name = "synthetic_kitchen"
  c.model.backbone.dim = 64
  c.model.head.update(inter_dim=128, num_layers=2, num_heads=4, dropout=0.1)
  c.model.dropout = 0.3
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  c.schedule.update(peak_lr=1e-3, warmup_steps=50)
  c.train.update(batch_size=64, steps=3000, log_every=100, eval_every=1000, checkpoint_every=1000)
  c.eval.batch_size = 256
  return c


def sweep(arg: str | None = None):
  """Peak learning rate x seed, 6 trials (each a demo run), then their table:

      python -m anticipax.launch --config=configs/demo.py --workdir_root=/tmp/anticipax_sweeps
      python -m anticipax.report /tmp/anticipax_sweeps/demo

  `--dry_run` prints the 6 commands; `--trials=1,4` runs two of them.
  """
  del arg
  from anticipax.sweeps import axis, product  # pylint: disable=g-import-not-at-top  # only when sweeping
  return product(axis("schedule.peak_lr", [3e-4, 1e-3, 3e-3]), axis("seed", [0, 1]))
