"""Runs a distillation pipeline config: MLM -> teacher -> (baseline, distilled student).

    python -m anticipax.distill_pipeline --config=configs/demo_kd.py --workdir=/tmp/anticipax_kd

Each stage is an ordinary trainer config run in `<workdir>/<stage>` (so each resumes on its own);
this module only wires one stage's outputs into the next and prints the comparison.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from ml_collections import config_flags

from anticipax import runtime
from anticipax import train
from anticipax.data import action_text
from anticipax.data.errors import DataError
from anticipax.tasks import mlm as mlm_task

_CONFIG = config_flags.DEFINE_config_file("config", None, "A pipeline config (configs/demo_kd.py).",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Each stage runs in <workdir>/<stage>.")
flags.mark_flags_as_required(["config", "workdir"])


def _corpus_tokenizer(stage_config, out_dir: str) -> str:
  """Builds (once) a word-level tokenizer over the MLM corpus; returns its directory."""
  if not os.path.isfile(os.path.join(out_dir, "tokenizer.json")):
    lines = mlm_task.MlmTask.load_data(stage_config).train
    action_text.build_word_tokenizer(lines, out_dir)
  return out_dir


def run(config, workdir: str) -> dict[str, dict]:
  """Runs every stage of `config.stages` in order; returns each stage's final metrics."""
  stages = config.stages
  dirs = {name: os.path.join(workdir, name) for name in stages}
  results = {}
  for name in config.order:  # ConfigDict keys iterate sorted, so the order is explicit
    c = stages[name]
    if c.task in ("mlm", "teacher") and c.text.tokenizer == "build_from_corpus":
      c.text.tokenizer = _corpus_tokenizer(c, os.path.join(workdir, "tokenizer"))
    if c.task == "teacher" and c.text.init_workdir == "<mlm>":
      c.text.init_workdir = dirs["mlm"]
    if c.task == "anticipation" and c.distill.kind:
      c.distill.teacher_outputs = [os.path.join(dirs["teacher"], "teacher_outputs_train.npz")
                                   if p == "<teacher>" else p for p in c.distill.teacher_outputs]
      if c.distill.online_teacher == "<teacher>":
        c.distill.online_teacher = dirs["teacher"]
    results[name] = train.run(c, dirs[name])
  return results


def comparison(results: dict[str, dict], metric: str) -> str:
  """Side-by-side table of the anticipation stages (percent)."""
  rows = [n for n in ("teacher", "baseline", "student") if n in results]
  keys = sorted({k for n in rows for k in results[n] if k.startswith("eval/") and k.count("/") == 2})
  lines = ["", f"{'metric':<28s}" + "".join(f"{n:>11s}" for n in rows)]
  for k in keys:
    lines.append(f"{k[5:]:<28s}" + "".join(f"{100 * results[n].get(k, float('nan')):10.2f}%" for n in rows))
  if "baseline" in results and "student" in results:
    base, kd = results["baseline"][f"eval/{metric}"], results["student"][f"eval/{metric}"]
    lines.append(f"\nDistillation changes {metric} from {100 * base:.2f} % to {100 * kd:.2f} % "
                 f"({100 * (kd - base) / max(base, 1e-9):+.1f} % relative).")
  if "mlm" in results:
    lines.append(f"MLM pretraining: held-out masked-token accuracy "
                 f"{100 * results['mlm']['eval/mlm/accuracy']:.2f} %.")
  return "\n".join(lines)


def main(argv):
  del argv
  runtime.setup()
  try:
    results = run(_CONFIG.value, _WORKDIR.value)
  except DataError as e:
    sys.exit(f"anticipax: {e}")
  print(comparison(results, _CONFIG.value.compare_metric))


if __name__ == "__main__":
  app.run(main)
