"""Builds a config's dataset once: `python -m anticipax.prepare --config=configs/ek55.py`.

Reads the public files from the manual dir, writes array_record files into TFDS's data dir and prints
the split sizes. Training builds it on first use as well; this just does it up front.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags

from anticipax import runtime
from anticipax.data import datasets
from anticipax.data.errors import DataError



def main(argv):
  del argv
  runtime.setup()
  try:
    builder = datasets.builder(flags.FLAGS.config.data)
  except DataError as e:
    sys.exit(f"anticipax: {e}")
  print(f"{builder.name} ({builder.builder_config.name}) in {builder.data_dir}")
  for name, split in builder.info.splits.items():
    print(f"  {name:<12s} {split.num_examples:>8d} examples")


def _define_flags():
  """The program's flags, defined only when it runs."""
  config_flags.DEFINE_config_file("config", None, "Experiment config.", lock_config=True)
  flags.mark_flags_as_required(["config"])

if __name__ == "__main__":
  _define_flags()
  app.run(main)
