"""Entry point: `python -m anticipax.main --config=configs/demo.py --workdir=/tmp/demo`.

Config fields can be overridden on the command line, e.g. `--config.train.steps=10`.
"""

import logging as std_logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow is here only for clu's summary writers

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from anticipax import train
from anticipax.data.errors import DataError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config (a configs/*.py file).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, summaries and metrics.json go.")
flags.mark_flags_as_required(["config", "workdir"])


def _maybe_initialize_distributed():
  """Joins the other processes of a multi-process job; a single process needs nothing.

  Explicit: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (any launcher). Otherwise
  JAX detects TPU pod slices and SLURM jobs itself.
  """
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    jax.distributed.initialize(env["JAX_COORDINATOR_ADDRESS"], int(env["JAX_NUM_PROCESSES"]),
                               int(env["JAX_PROCESS_ID"]))
  elif env.get("TPU_WORKER_HOSTNAMES", "localhost") != "localhost" or "SLURM_JOB_ID" in env:
    jax.distributed.initialize()


class _QuietCheckpointing(std_logging.Filter):
  """Orbax logs every file it writes at INFO; keep its warnings, drop the chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _hide_accelerators_from_tensorflow():
  """clu's TensorBoard writers run TensorFlow; keep it off the GPUs/TPUs that JAX owns."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  _hide_accelerators_from_tensorflow()
  logging.get_absl_handler().addFilter(_QuietCheckpointing())
  _maybe_initialize_distributed()
  logging.info("JAX process %d/%d, local devices %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
  try:
    result = train.run(_CONFIG.value, _WORKDIR.value)
  except DataError as e:
    sys.exit(f"anticipax: {e}")
  if jax.process_index() == 0:
    print(train.format_metrics(result))


if __name__ == "__main__":
  app.run(main)
