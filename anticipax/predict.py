"""Evaluates a trained checkpoint, or exports an EPIC-Kitchens challenge submission.

    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55
    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55 \\
        --split=test_seen --output=/tmp/avt_ek55/test_seen.json

Without --output it prints the split's metrics; with it, it writes the challenge JSON (DATA_FORMATS.md
section 4) with verb/noun scores marginalized from the action scores and the top-100 actions.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags
import numpy as np

from anticipax import export
from anticipax import runtime
from anticipax import train
from anticipax.data import datasets
from anticipax.data.errors import DataError
from anticipax.data.text_values import as_text



def submission_uid(uid: str) -> str:
  """EK55's numeric uids are submitted without zero padding ("00330" -> "330"); EK100's as written."""
  return str(int(uid)) if uid.isdigit() else uid


def run(config, workdir: str, *, split: str | None = None, output: str | None = None,
        checkpoint: str = "best") -> dict:
  """Predicts `split` with the checkpoint; writes the submission if `output`, else returns metrics."""
  trainer = train.Trainer(config)
  state = train.restore_state(trainer, workdir, checkpoint)
  split = split or config.data.get("eval_split", "validation")
  source = datasets.source(config.data, split)
  outputs = trainer.predict(state.params, source)
  if output is None:
    if "action" in outputs and np.any(outputs["action"] < 0):
      raise DataError(f"{config.data.name}/{split} is unlabeled: pass --output to export predictions")
    metrics = trainer.task.evaluate(outputs, source)
    trainer.task.close()
    if hasattr(trainer.task, "write_predictions"):  # generated sentences: predictions_<split>.jsonl
      trainer.task.write_predictions(workdir, f"predictions_{split}.jsonl")
    return {"step": int(state.step), **{f"eval/{k}": v for k, v in metrics.items()}}
  if "action" not in outputs:
    raise ValueError(f"--output writes EPIC-Kitchens submissions; task {config.task!r} has none")
  info = trainer.splits.info
  uids = [submission_uid(as_text(source[int(i)]["uid"])) for i in outputs["index"]]
  levels = config.get("export", {}).get("supervision_levels")
  submission = export.epic_submission(
      uids, outputs["logits"], info.actions, num_verbs=info.num_verbs, num_nouns=info.num_nouns,
      verb_logits=outputs.get("verb_logits"), noun_logits=outputs.get("noun_logits"),
      supervision_levels=dict(levels) if levels is not None else None)
  export.write_json_atomically(submission, output)
  return {"step": int(state.step), "segments": len(uids), "output": output}


def main(argv):
  del argv
  runtime.setup()
  try:
    f = flags.FLAGS
    result = run(f.config, f.workdir, split=f.split, output=f.output, checkpoint=f.checkpoint)
  except (DataError, FileNotFoundError) as e:
    sys.exit(f"anticipax: {e}")
  if "output" in result:
    print(f"Wrote {result['segments']} segments (step {result['step']}) to {result['output']}")
  else:
    print(train.format_metrics(result))


def _define_flags():
  """The program's flags, defined only when it runs (so `run` imports beside other entry points)."""
  config_flags.DEFINE_config_file("config", None, "The run's config.", lock_config=True)
  flags.DEFINE_string("workdir", None, "The run's workdir (holds best/ and checkpoints/).")
  flags.DEFINE_string("split", None, "Split to predict; default: the config's eval split.")
  flags.DEFINE_string("output", None, "Write an EPIC-Kitchens submission JSON here.")
  flags.DEFINE_enum("checkpoint", "best", ["best", "latest"], "Which checkpoint to use.")
  flags.mark_flags_as_required(["config", "workdir"])

if __name__ == "__main__":
  _define_flags()
  app.run(main)
