"""Entry point: `python -m anticipax.main --config=configs/demo.py --workdir=/tmp/demo`.

Config fields can be overridden on the command line, e.g. `--config.train.steps=10`.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow, where installed, may come in through TFDS

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
from ml_collections import config_flags

from anticipax import runtime
from anticipax import train
from anticipax.checkpointing import CheckpointError
from anticipax.data.errors import DataError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config (a configs/*.py file).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and metrics.json go.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Discard the workdir's checkpoints of another config.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  runtime.setup()
  try:
    result = train.run(_CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value)
  except (DataError, CheckpointError, train.NumericalError) as e:
    sys.exit(f"anticipax: {e}")
  if jax.process_index() == 0:
    print(train.format_metrics(result))


if __name__ == "__main__":
  app.run(main)
