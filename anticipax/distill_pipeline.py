"""Runs a distillation pipeline config: MLM -> teacher -> (baseline, distilled student) x seeds.

    python -m anticipax.distill_pipeline --config=configs/demo_kd.py --workdir=/tmp/anticipax_kd

Each stage is an ordinary trainer config run in `<workdir>/<stage>` (the arms once per seed in
`<workdir>/<arm>/seed_<k>`), so each resumes on its own; this module only wires one stage's outputs into
the next, then prints and writes the comparison (`comparison.json` / `.md`: mean ± std per arm over the
seeds, relative gain, paired t-test and a verdict; the teacher beside a class prior and a bigram
predictor fitted on the same training histories).

`config.parallel` trains that many arm runs at once, each in a worker process of its own (0: as many as the
CPU has cores). Only on the CPU: a small model's step there keeps about one core busy, while one accelerator
set serves one process, so with GPUs or TPUs the runs go one after another. Every run is the same as
alone (its own config, seed and workdir), so the numbers do not depend on `parallel`.
"""

import collections
import contextlib
from concurrent import futures
import itertools
import multiprocessing
import os
import sys
import tempfile
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from anticipax import compare
from anticipax.data import action_text
from anticipax.data import datasets
from anticipax.data.errors import DataError
from anticipax.data import teacher_outputs
from anticipax.next_action import references as baselines
from anticipax.next_step import captions
from anticipax.next_step import references as step_baselines
from anticipax.next_step import task as next_step
from anticipax import paths
from anticipax import runtime
from anticipax import tasks
from anticipax.tasks import mlm as mlm_task
from anticipax import train

def _corpus_tokenizer(stage_config, out_dir: str) -> str:
  """Builds (once) a word-level tokenizer over the stage's text (the MLM corpus, or the training step
  sentences of a next-step teacher); returns its directory."""
  if not (paths.path(out_dir) / "tokenizer.json").is_file():
    if stage_config.task == "next_step":
      lines = next_step.training_sentences(stage_config)
    else:
      lines = mlm_task.MlmTask.load_data(stage_config).train
    with tempfile.TemporaryDirectory() as scratch:  # written locally, then copied (out_dir may be gs://)
      action_text.build_word_tokenizer(lines, scratch)
      paths.copy_tree(scratch, out_dir)
  return out_dir


def _stage_dirs(config, workdir: str) -> dict[str, list[tuple[int, str]]]:
  """(seed, directory) of every run of every stage: the arms run once per seed in `<arm>/seed_<k>`."""
  arms = set(config.get("arms", ("baseline", "student")))
  seeds = int(config.get("seeds", 1))
  dirs = {}
  for name in config.order:
    base_seed = int(config.stages[name].seed)
    if name in arms:
      dirs[name] = [(base_seed + k, str(paths.path(workdir) / name / f"seed_{k}")) for k in range(seeds)]
    else:
      dirs[name] = [(base_seed, str(paths.path(workdir) / name))]
  return dirs


def _parallel(config, runs: int) -> int:
  """How many of `runs` arm runs train at once (`config.parallel`; see the module docstring)."""
  wanted = int(config.get("parallel", 1))
  if wanted < 0:
    raise ValueError(f"config key parallel: {wanted}; use 0 (one run per CPU core) or a positive count")
  if wanted != 1 and jax.default_backend() != "cpu":
    logging.info("parallel=%d: runs go one after another on %s (one process holds the devices).", wanted,
                 jax.default_backend())
    return 1
  return max(1, min(wanted or os.cpu_count() or 1, runs))


def _train(run_config, stage_dir: str, verbosity: int | None = None) -> dict:
  """One stage run; `verbosity` is given in a fresh worker process, which sets itself up first."""
  if verbosity is not None:
    logging.use_absl_handler()  # as absl's app.run does in the parent (runtime.setup filters it)
    logging.set_verbosity(verbosity)
    runtime.setup()
  return train.run(run_config, stage_dir)


def _train_all(jobs: list[tuple[str, object]], parallel: int) -> Iterator[dict]:
  """Results of (stage_dir, run config) jobs, in order, `parallel` at a time; a job not yet started when
  the caller stops reading (a run stopped early) never starts."""
  if parallel == 1:
    yield from (_train(c, d) for d, c in jobs)
    return
  # spawn: JAX's runtime threads do not survive fork.
  pool = futures.ProcessPoolExecutor(parallel, mp_context=multiprocessing.get_context("spawn"))
  try:
    yield from pool.map(_train, [c for _, c in jobs], [d for d, _ in jobs],
                        itertools.repeat(logging.get_verbosity()))
  finally:
    pool.shutdown(cancel_futures=True)


def _skipped(c) -> bool:
  """A stage that trains on a corpus (MLM, or a next-step teacher's pretraining) is skipped when none is
  configured: domain pretraining is optional on real data."""
  if c.task == "mlm":
    return c.data.name == "corpus" and not c.data.get("corpus")
  return "corpus" in c.data and not c.data.corpus


def run(config, workdir: str) -> dict[str, list[dict]]:
  """Runs every stage of `config.stages` in `config.order`; returns each stage's final metrics per run.

  `config.seeds` = N runs each arm (`config.arms`, default baseline and student) with the seeds
  stage.seed + 0..N-1, `config.parallel` of them at once; the other stages run once. A stage whose run
  finished is only re-scored.
  """
  stages = config.stages
  arms = set(config.get("arms", ("baseline", "student")))
  dirs = _stage_dirs(config, workdir)
  # "<stage>" in text.init_workdir: that stage's run ("" when it was skipped: start from text.pretrained).
  ran = {name: dirs[name][0][1] for name in config.order if name not in arms
         and not _skipped(stages[name])}
  teacher_dir = dirs["teacher"][0][1] if "teacher" in dirs else ""
  results, pending = {}, []  # pending: (stage, stage_dir, run config) of arm runs, trained together
  for name in config.order:  # ConfigDict keys iterate sorted, so the order is explicit
    c = stages[name]
    if _skipped(c):
      logging.info("Stage %s skipped: no corpus configured (data.corpus).", name)
      continue
    if "text" in c and c.text.tokenizer == "build_from_corpus":
      c.text.tokenizer = _corpus_tokenizer(c, str(paths.path(workdir) / "tokenizer"))
    if "text" in c and c.text.init_workdir.startswith("<") and c.text.init_workdir.endswith(">"):
      source = c.text.init_workdir[1:-1]
      if source not in config.order[:config.order.index(name)]:
        raise ValueError(f"config key stages.{name}.text.init_workdir: {c.text.init_workdir} names no earlier "
                         f"stage (order: {', '.join(config.order)})")
      c.text.init_workdir = ran.get(source, "")
    if c.get("distill") and c.distill.kind:
      # "<teacher>": the teacher run's export for this student (teacher_outputs_train.npz; for a next-step
      # student the file of what distill.contrast contrasts); "<teacher>/<file>": another of its files.
      outputs = teacher_outputs.config_paths(c.distill.teacher_outputs) if not c.distill.online_teacher else []
      default = (next_step.teacher_file(c.distill.get("contrast", "states")) if c.task == "next_step"
                 else "teacher_outputs_train.npz")
      c.distill.teacher_outputs = ",".join(
          str(paths.path(teacher_dir) / default) if p == "<teacher>" else
          str(paths.path(teacher_dir) / p[len("<teacher>/"):]) if p.startswith("<teacher>/") else p
          for p in outputs)
      if c.distill.online_teacher == "<teacher>":
        c.distill.online_teacher = teacher_dir
    for seed, stage_dir in dirs[name]:
      run_config = c.copy_and_resolve_references()
      run_config.seed = seed
      pending.append((name, stage_dir, run_config))
    following = config.order[config.order.index(name) + 1:]
    if name not in arms or not following or following[0] not in arms:  # the arms read no arm's output
      _finish(pending, results, _parallel(config, len(pending)))
      pending = []
  return results


def _finish(runs, results, parallel: int) -> None:
  """Trains `runs` ((stage, stage_dir, run config)) and files their results by stage."""
  with contextlib.closing(_train_all([r[1:] for r in runs], parallel)) as trained:
    for (name, stage_dir, run_config), result in zip(runs, trained):
      if result["step"] < run_config.train.steps:  # SIGTERM or max_steps_per_run: later stages must wait
        raise Unfinished(f"stage {name} stopped at step {result['step']} of {run_config.train.steps} in "
                         f"{stage_dir}; rerun the same command to continue")
      results.setdefault(name, []).append(result)


class Unfinished(Exception):
  """A stage stopped early (preemption notice, `train.max_steps_per_run`); the pipeline stops with it."""


def history_baselines(config) -> dict[str, dict[str, float]]:
  """The prior and bigram predictors on the teacher's data (what the teacher must beat)."""
  c = config.stages.teacher
  splits = tasks.load_data(c)
  return baselines.evaluate(splits)


def step_references(config, results) -> dict[str, dict[str, float]]:
  """Method 2's reference predictors (repeat the last step, the most frequent next step, nearest-neighbour
  retrieval), fitted on the text the teacher learned from (Tasty's training recipes and the corpus when the
  teacher was pretrained on one) and scored as the teacher is."""
  c = config.stages.teacher
  splits = tasks.load_data(c)
  sources = [splits.train]
  if "pretrain" in results:
    sources.append(next_step.corpus_source(config.stages.pretrain))
  first, last = next_step.observed_range(c)
  evaluated = {"eval": splits.eval}
  if c.eval.get("test_split"):  # scored where the teacher is: its test numbers come from the test split
    evaluated["test"] = datasets.source(c.data, c.eval.test_split)
  out = collections.defaultdict(dict)
  with captions.CaptionScorer() as scorer:  # one METEOR process for every split and predictor
    for prefix, source in evaluated.items():
      for name, metrics in step_baselines.evaluate(sources, source, first_k=first, last_k=last,
                                                   scorer=scorer).items():
        out[name].update({f"{prefix}/{k}": v for k, v in metrics.items()})
  return dict(out)


def summarize(config, results: dict[str, list[dict]], workdir: str) -> dict:
  """Builds, prints and writes (`comparison.json` / `.md`) the comparison of the pipeline's runs."""
  arms = [a for a in config.get("arms", ("baseline", "student")) if a in results]
  references = {}
  if "teacher" in results:
    if config.stages.teacher.task == "teacher":  # next-action teachers: beside trivial history predictors
      references.update(history_baselines(config))
    elif config.stages.teacher.task == "next_step":  # next-step teachers: beside trivial step predictors
      references.update(step_references(config, results))
    references["teacher"] = results["teacher"][0]
  summary = compare.compare({a: results[a] for a in arms}, references, config.compare_metric)
  if "mlm" in results:
    summary["mlm_accuracy"] = results["mlm"][0]["eval/mlm/accuracy"]
  if "pretrain" in results:
    summary["corpus"] = dict(next_step.corpus_dataset(config.stages.pretrain).info.metadata["counts"])
  compare.write(summary, workdir)
  return summary


def main(argv):
  del argv
  runtime.setup()
  config, workdir = flags.FLAGS.config, flags.FLAGS.workdir
  try:
    results = run(config, workdir)
    summary = summarize(config, results, workdir)
  except DataError as e:
    sys.exit(f"anticipax: {e}")
  except Unfinished as e:
    print(f"anticipax: {e}")
    return
  print("\n" + compare.format_table(summary))
  if "mlm_accuracy" in summary:
    print(f"MLM pretraining: held-out masked-token accuracy {100 * summary['mlm_accuracy']:.2f} %.")
  if "corpus" in summary:
    n = summary["corpus"]
    print(f"Teacher pretraining corpus: {n['kept']} of {n['read']} recipes kept; dropped as Tasty validation/test "
          f"recipes: {n['leak_steps']} (same steps), {n['leak_url']} (same URL); {n['too_short']} with fewer than "
          "two steps.")
  print(f"Written to {paths.path(workdir) / 'comparison.md'} and comparison.json.")


def _define_flags():
  """The program's flags, defined only when it runs (so its functions import beside other entry points)."""
  config_flags.DEFINE_config_file("config", None, "A pipeline config (configs/demo_kd.py).", lock_config=False)
  flags.DEFINE_string("workdir", None, "Each stage runs in <workdir>/<stage>.")
  flags.mark_flags_as_required(["config", "workdir"])

if __name__ == "__main__":
  _define_flags()
  app.run(main)
