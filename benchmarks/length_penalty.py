"""Beam width and length penalty of method 2's decoding: BLEU-4 and mean sentence length of one trained run.

    python benchmarks/length_penalty.py --workdir=/tmp/tasty_demo/baseline/seed_0
    python benchmarks/length_penalty.py --workdir=/tmp/tasty_demo/teacher --widths=1,5 --alphas=0,0.6,1

Reads the run's own `config.json`, restores its best checkpoint (selected on validation) and decodes the
split (default validation) once per (beam width, alpha), writing nothing: a hypothesis's score is its summed
log-probability divided by ((5 + length) / 6) ** alpha (GNMT's penalty; alpha 0 ranks by the summed
log-probability alone, which favours short sentences). Prints one row per setting: BLEU-4 (mean over k and
pooled, percent) and the mean length in words of the predictions and of the references.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags
import ml_collections
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from anticipax import runtime  # pylint: disable=g-import-not-at-top
from anticipax import train  # pylint: disable=g-import-not-at-top
from anticipax.data import datasets  # pylint: disable=g-import-not-at-top

_WORKDIR = flags.DEFINE_string("workdir", None, "A finished next_step run (its config.json and best/).",
                               required=True)
_SPLIT = flags.DEFINE_string("split", "validation", "The split to decode.")
_WIDTHS = flags.DEFINE_list("widths", ["1", "5"], "Beam widths.")
_ALPHAS = flags.DEFINE_list("alphas", ["0", "0.6", "1.0"], "Length penalty exponents (with width > 1).")


def _length(sentence: str) -> int:
  return len([w for w in sentence.split() if any(c.isalnum() for c in w)])


def main(argv):
  del argv
  runtime.setup()
  with open(os.path.join(_WORKDIR.value, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  print(f"{_WORKDIR.value}, split {_SPLIT.value}")
  print("| beam | alpha | BLEU-4 (mean over k) | BLEU-4 (pooled) | words, predicted | words, reference |")
  print("|---|---|---|---|---|---|")
  for width in map(int, _WIDTHS.value):
    for alpha in map(float, _ALPHAS.value if width > 1 else ["0"]):
      config.eval.update(beam_width=width, length_penalty=alpha)
      trainer = train.Trainer(config)  # nothing is written to the run's directory
      params = train.restore_state(trainer, _WORKDIR.value, "best").params
      result = trainer.evaluate(params, datasets.source(config.data, _SPLIT.value))
      records = trainer.task.last_records
      predicted = np.mean([_length(r["prediction"]) for r in records])
      reference = np.mean([_length(r["reference"]) for r in records])
      print(f"| {width} | {alpha:g} | {100 * result['bleu4']:.2f} | {100 * result['pooled/bleu4']:.2f} | "
            f"{predicted:.2f} | {reference:.2f} |")


if __name__ == "__main__":
  app.run(main)
