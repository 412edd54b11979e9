"""Method 2's corpus pretraining: the text teacher learns next-step generation on external recipe text
(`data.corpus`, without the Tasty evaluation recipes), the teacher stage fine-tunes it, the CCD student
contrasts either representation it exports, and the pipeline wires it all and survives a kill.

Java may be missing on a user's machine: these tests run the caption metrics without it (METEOR is NaN).
Everything that trains is a chain (pretrain -> teacher -> student or the pipeline): the slow tier; the fast
tier checks the corpus and the pipeline's wiring on the prepared data.
"""

import glob
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from anticipax.data import action_text
from anticipax.data.corpus import leak_guard
from anticipax.data.corpus import readers as corpus_readers
from anticipax.data import datasets
from anticipax.data.tasty import reader
from anticipax.data.tasty import synthetic as tasty_synthetic
from anticipax.data import teacher_outputs
from anticipax import distill_pipeline
from anticipax.next_step import captions
from anticipax.next_step import task as next_step
from anticipax import text_encoders
from anticipax import train
from configs import tasty
from tests import processes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_CORPUS = 60
# Tiny sizes, as dotted config keys: applied in process (`_shrink`) and as command-line flags (`_cmd`).
SMALL = {"data.num_recipes": 120, "data.feature_dim": 16, "data.max_steps": 6, "data.max_words": 8,
         "data.max_ingredient_words": 8, "model.dim": 32, "model.num_heads": 2, "model.visual.num_layers": 1,
         "model.temporal.num_layers": 1, "model.temporal.max_steps": 6, "model.decoder.num_layers": 1,
         "model.decoder.max_len": 8, "train.steps": 2, "train.batch_size": 8, "train.log_every": 1,
         "train.eval_every": 2, "train.checkpoint_every": 2, "train.async_checkpointing": False,
         "schedule.warmup_steps": 1, "eval.batch_size": 64, "eval.beam_width": 2, "distill.proj_dim": 16}
TEXT = {"text.max_len": 12, "text.scratch.hidden_size": 32, "text.scratch.num_layers": 1,
        "text.scratch.num_heads": 2, "text.scratch.intermediate_size": 64,
        "text.scratch.max_position_embeddings": 16}
CORPUS = {"data.num_corpus_recipes": NUM_CORPUS}

# One pytest-xdist worker runs the module (`--dist loadgroup`): its module fixtures train once, not once per worker.
pytestmark = [pytest.mark.xdist_group("corpus_pretraining"), pytest.mark.usefixtures("no_java")]


def _sizes(c) -> dict:
  return {**SMALL, **(TEXT if "text" in c else {}), **(CORPUS if "corpus" in c.data else {})}


def _shrink(c):
  for key, value in _sizes(c).items():
    *parents, leaf = key.split(".")
    node = c
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


def _tiny(stage: str, data_dir: str, tokenizer: str = ""):
  c = _shrink(tasty.stage_config(stage, demo=True))
  c.data.tfds_data_dir = data_dir
  if stage == "pretrain":
    c.data.corpus = tasty_synthetic.CORPUS
  if "text" in c:
    c.text.tokenizer = tokenizer
  return c


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_same_tree(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(_leaves(a), _leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The synthetic Tasty collection and corpus (built once), the word tokenizer and the two stages' configs."""
  root = tmp_path_factory.mktemp("corpus_pretraining")
  data_dir = str(root / "tfds")
  tokenizer = str(root / "tokenizer")
  pretrain = _tiny("pretrain", data_dir)
  action_text.build_word_tokenizer(next_step.training_sentences(pretrain), tokenizer)
  pretrain.text.tokenizer = tokenizer
  teacher = _tiny("teacher", data_dir, tokenizer)
  teacher.text.init_workdir = str(root / "pretrain")
  return root, {"pretrain": pretrain, "teacher": teacher}


@pytest.fixture(scope="module")
def runs(prepared):
  """A 2-step pretrain run on the synthetic corpus, then a 2-step teacher started from it (a chain: the slow
  tier only)."""
  root, configs = prepared
  results = {"pretrain": train.run(configs["pretrain"], str(root / "pretrain")),
             "teacher": train.run(configs["teacher"], str(root / "teacher"))}
  return root, configs, results


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.slow
def test_pretrain_trains_on_the_corpus_and_scores_on_tasty_validation(runs):
  root, configs, results = runs
  c = configs["pretrain"]
  source = next_step.corpus_source(c)
  guard = leak_guard.LeakGuard.from_tasty(datasets.tasty_manual_dir(c.data), c.data.split)
  leaked = {i for i, row in enumerate(tasty_synthetic.corpus_rows(NUM_CORPUS, 0)) if guard.leak(row[2], row[3])}
  assert [_text(source[i]["recipe"]) for i in range(len(source))] == [
      f"recipenlg:{i}" for i in range(NUM_CORPUS) if i not in leaked]
  # It scores on Tasty's validation split, writes the text model and exports no states.
  assert results["pretrain"]["step"] == 2 and math.isfinite(results["pretrain"]["eval/bleu1"])
  validation = datasets.builder(c.data).as_data_source("validation")
  with open(root / "pretrain" / next_step.PREDICTIONS_FILE) as f:
    scored = {json.loads(line)["recipe"] for line in f}
  assert scored == {_text(validation[i]["recipe"]) for i in range(len(validation))}
  assert os.path.isfile(root / "pretrain" / text_encoders.TEXT_MODEL_DIR / "bert_config.json")
  assert glob.glob(str(root / "pretrain" / "teacher_*_*.npz")) == []


def test_leak_guard_drops_copies_of_tasty_evaluation_recipes_only(prepared, tmp_path):
  _, configs = prepared
  c = configs["pretrain"].copy_and_resolve_references()
  tasty_files = reader.Collection(datasets.tasty_manual_dir(c.data), c.data.split)
  valid, test, train_recipe = (tasty_files.splits[s][0] for s in ("validation", "test", "train"))
  rows = tasty_synthetic.corpus_rows(20, 0)
  title, lines, directions, link, site, ner = rows[3]
  rows[3] = (title, lines, [s.upper() for s in valid.steps], link, site, ner)  # the same steps, upper-cased
  rows[7] = (title, lines, directions, test.url.replace("https://", "http://www.") + "/", site, ner)  # same page
  rows[11] = (title, lines, list(train_recipe.steps), link, site, ner)  # Tasty training recipes may be seen
  c.data.corpus = str(tmp_path / "full_dataset.csv")
  corpus_readers.write_recipenlg(c.data.corpus, rows)
  dataset = next_step.corpus_dataset(c)
  source = dataset.as_data_source("train")
  assert [_text(source[i]["recipe"]) for i in range(len(source))] == [
      f"recipenlg:{i}" for i in range(20) if i not in (3, 7)]
  counts = dataset.info.metadata["counts"]
  assert (counts["read"], counts["kept"], counts["leak_steps"], counts["leak_url"]) == (20, 18, 1, 1)


@pytest.mark.slow
def test_teacher_starts_from_the_whole_pretrained_model(runs):
  root, configs, _ = runs
  pretrained = text_encoders.restore_params(str(root / "pretrain"))
  trainer = train.Trainer(configs["teacher"])
  _assert_same_tree(trainer.task.pretrained_params(), pretrained)
  _assert_same_tree(trainer.init_state().params, pretrained)
  scratch = configs["teacher"].copy_and_resolve_references()
  scratch.text.init_workdir = ""
  fresh = train.Trainer(scratch, splits=trainer.splits).init_state().params
  assert any(not np.array_equal(x, y) for x, y in zip(_leaves(fresh), _leaves(pretrained)))


@pytest.mark.slow
def test_teacher_exports_states_and_step_vectors(runs):
  root, configs, _ = runs
  states = teacher_outputs.TeacherOutputs.load(str(root / "teacher" / next_step.STATES_FILE.format(split="train")))
  steps = teacher_outputs.TeacherOutputs.load(str(root / "teacher" / next_step.STEPS_FILE.format(split="train")))
  assert states.uids == steps.uids and len(states) > 0
  assert all(not u.startswith("recipenlg:") for u in states.uids)  # Tasty's training recipes, not the corpus
  assert states.feature_dim == steps.feature_dim == configs["teacher"].model.dim
  _, a, _ = states.lookup_batch(list(states.uids))
  _, b, _ = steps.lookup_batch(list(steps.uids))
  assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and not np.allclose(a, b)


@pytest.mark.slow
def test_ccd_student_contrasts_the_teacher_step_vectors(runs, tmp_path, caplog):
  root, configs, _ = runs
  c = _tiny("ccd", configs["teacher"].data.tfds_data_dir)
  c.distill.update(contrast="steps", teacher_outputs=str(root / "teacher" / next_step.STEPS_FILE.format(split="train")))
  caplog.set_level(logging.INFO)
  assert train.run(c, str(tmp_path / "ccd"))["step"] == 2
  logged = [float(m.split("train/contrastive_accuracy=")[1].split(",")[0]) for m in caplog.messages
            if "train/contrastive_accuracy=" in m]
  assert len(logged) == 2 and all(0.0 <= a <= 1.0 for a in logged)  # log_every=1
  # The loss projects each step's own vector, not the temporal state.
  trainer = train.Trainer(c)
  params = {k: v for k, v in trainer.init_state().params.items() if k != "teacher_projection"}
  batch = next(trainer.train_iterator())
  _, aux = trainer.task.model.apply({"params": params}, batch, batch["target_tokens"], batch["step_mask"])
  kernel, bias = (np.asarray(params["projection"][k]) for k in ("kernel", "bias"))
  np.testing.assert_allclose(aux["projected"], np.asarray(aux["steps"]) @ kernel + bias, rtol=1e-4, atol=1e-5)
  assert not np.allclose(aux["projected"], np.asarray(aux["states"]) @ kernel + bias, atol=1e-3)
  c.distill.contrast = "bogus"
  with pytest.raises(ValueError, match=r"contrast.*'bogus'"):
    train.Trainer(c, splits=trainer.splits)


def _pipeline(data_dir: str, **top):
  c = tasty.pipeline("demo")
  c.update(seeds=2, tfds_data_dir=data_dir, parallel=processes.ARM_RUNS_AT_ONCE, **top)
  for stage in c.stages.values():
    _shrink(stage)
  return c


@pytest.fixture(scope="module")
def pipeline_run(runs):
  root, configs, _ = runs
  c = _pipeline(configs["teacher"].data.tfds_data_dir)
  workdir = str(root / "pipeline")
  results = distill_pipeline.run(c, workdir)
  return workdir, results, distill_pipeline.summarize(c, results, workdir), c.stages.pretrain


def _run_config(path) -> dict:
  with open(os.path.join(path, "config.json")) as f:
    return json.load(f)


@pytest.mark.slow  # the whole pipeline: pretrain -> teacher -> 2 baselines -> 2 students
def test_pipeline_puts_the_pretrained_teacher_beside_the_step_references(pipeline_run):
  workdir, results, summary, pretrain = pipeline_run
  assert list(results) == ["pretrain", "teacher", "baseline", "student"]
  assert [len(results[s]) for s in results] == [1, 1, 2, 2]
  assert _run_config(os.path.join(workdir, "teacher"))["text"]["init_workdir"] == os.path.join(workdir, "pretrain")
  student = _run_config(os.path.join(workdir, "student", "seed_0"))
  assert student["distill"]["teacher_outputs"] == os.path.join(workdir, "teacher", "teacher_states_train.npz")
  with open(os.path.join(workdir, "comparison.json")) as f:
    assert json.load(f) == json.loads(json.dumps(summary))
  row = summary["rows"]["bleu4"]
  assert set(row) == {"teacher", "repeat_last", "next_step_frequency", "retrieval", "baseline", "student",
                      "relative_gain", "paired_t"}
  assert row["teacher"]["value"] == results["teacher"][0]["eval/bleu4"]
  assert all(0.0 <= row[name]["value"] <= 1.0 for name in ("repeat_last", "next_step_frequency", "retrieval"))
  assert row["paired_t"]["n"] == 2 and len(row["student"]["seeds"]) == 2
  # What the leak guard dropped is in the comparison, not only in the build log.
  counts = summary["corpus"]
  assert counts["read"] == NUM_CORPUS and counts["kept"] == len(next_step.corpus_source(pretrain))
  assert counts["kept"] == NUM_CORPUS - counts["leak_steps"] - counts["leak_url"] - counts["too_short"]


@pytest.mark.slow
def test_pipeline_without_corpus_skips_pretraining(runs, tmp_path):
  _, configs, _ = runs
  c = _pipeline(configs["teacher"].data.tfds_data_dir, corpus="", order=["pretrain", "teacher"])
  results = distill_pipeline.run(c, str(tmp_path))
  assert list(results) == ["teacher"] and not os.path.exists(tmp_path / "pretrain")
  assert _run_config(tmp_path / "teacher")["text"]["init_workdir"] == ""  # from scratch


def test_pipeline_refuses_an_init_workdir_naming_no_earlier_stage(prepared, tmp_path):
  _, configs = prepared
  bad = _pipeline(configs["teacher"].data.tfds_data_dir, corpus="")
  bad.stages.teacher.text.init_workdir = "<nosuchstage>"
  with pytest.raises(ValueError, match=r"stages\.teacher\.text\.init_workdir: <nosuchstage>"):
    distill_pipeline.run(bad, str(tmp_path / "bad"))
  assert not os.path.exists(tmp_path / "bad" / "teacher")


_ENV = processes.env(**{captions.NO_JAVA_ENV: "1"})


def _cmd(workdir, data_dir) -> list[str]:
  """The tiny demo pipeline, one seed; the pretrain stage takes 16 steps and checkpoints after each."""
  flags = [f"--config.tfds_data_dir={data_dir}", "--config.seeds=1", f"--config.parallel={processes.ARM_RUNS_AT_ONCE}"]
  for name, stage in tasty.pipeline("demo").stages.items():
    sizes = _sizes(stage)
    if name == "pretrain":
      sizes.update({"train.steps": 16, "train.checkpoint_every": 1, "train.eval_every": 0})
    flags += [f"--config.stages.{name}.{k}={v}" for k, v in sizes.items()]
  return [sys.executable, "-m", "anticipax.distill_pipeline", "--config=configs/tasty_demo.py",
          f"--workdir={workdir}", *flags]


def _pipeline_cli(workdir, data_dir, log) -> subprocess.Popen:
  with open(f"{log}.out", "w") as out, open(f"{log}.err", "w") as err:
    return subprocess.Popen(_cmd(workdir, data_dir), cwd=REPO, env=_ENV, stdout=out, stderr=err, text=True)


def _finish(proc, log) -> tuple[str, str]:
  proc.wait(timeout=900)
  with open(f"{log}.out") as out, open(f"{log}.err") as err:
    stdout, stderr = out.read(), err.read()
  assert proc.returncode == 0, stderr[-3000:]
  return stdout, stderr


def _state(workdir):
  directory = os.path.join(workdir, "pretrain", "checkpoints")
  with ocp.CheckpointManager(directory, item_names=("state", "data")) as mngr:
    step = mngr.latest_step()
    return step, mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  root = tmp_path_factory.mktemp("straight")
  stdout, stderr = _finish(_pipeline_cli(root / "run", root / "tfds", root / "log"), root / "log")
  return root / "run", stdout, stderr


def _kill_at(proc, checkpoints, step: int, log) -> str:
  """SIGKILLs the pipeline once its pretrain stage has a checkpoint of `step` or later; its stderr."""
  deadline = time.time() + 600
  while not (checkpoints.is_dir() and any(d.isdigit() and int(d) >= step for d in os.listdir(checkpoints))):
    assert proc.poll() is None and time.time() < deadline, open(f"{log}.err").read()[-3000:]
    time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with open(f"{log}.err") as err:
    return err.read()


@pytest.mark.slow
def test_pipeline_killed_while_pretraining_resumes_bit_identically(straight, tmp_path):
  """Killed twice: resumed once with the prepared corpus deleted (built again), then with it kept."""
  workdir, data_dir, log = tmp_path / "run", tmp_path / "tfds", tmp_path / "log"
  checkpoints = workdir / "pretrain" / "checkpoints"
  _kill_at(_pipeline_cli(workdir, data_dir, log), checkpoints, 3, log)
  assert not (workdir / "pretrain" / "metrics.json").exists() and not (workdir / "teacher").exists()
  prepared = glob.glob(str(data_dir / "recipe_corpus" / "*"))
  assert prepared
  for path in prepared:
    shutil.rmtree(path)
  latest = max(int(d) for d in os.listdir(checkpoints) if d.isdigit())
  stderr = _kill_at(_pipeline_cli(workdir, data_dir, log), checkpoints, latest + 2, log)  # the corpus rebuilt
  assert f"Resumed from {checkpoints}" in stderr and "Corpus full_dataset.csv (recipenlg): read" in stderr
  assert not (workdir / "pretrain" / "metrics.json").exists()
  stdout, stderr = _finish(_pipeline_cli(workdir, data_dir, log), log)  # the corpus reused
  assert f"Resumed from {checkpoints}" in stderr and "Corpus full_dataset.csv (recipenlg): read" not in stderr
  (step, state), (straight_step, straight_state) = _state(workdir), _state(straight[0])
  assert step == straight_step == 16
  _assert_same_tree(state, straight_state)
  # The user sees what the leak guard dropped, whether or not the corpus was built in this run.
  line = next(l for l in stdout.splitlines() if l.startswith("Teacher pretraining corpus:"))
  assert line == next(l for l in straight[1].splitlines() if l.startswith("Teacher pretraining corpus:"))
  assert f"of {NUM_CORPUS} recipes kept" in line
