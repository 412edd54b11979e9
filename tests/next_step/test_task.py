"""Method 2 end to end on a tiny synthetic Tasty: the text teacher, the visual student and the CCD student
(`tasks/next_step.py`), their exports, the cached and online teachers, `predict.run` and determinism.

Java may be missing on a user's machine: these tests run the caption metrics without it (METEOR is NaN).
"""

import json
import math
import os

import jax
import numpy as np
import pytest

from anticipax.data import action_text
from anticipax.data import datasets
from anticipax.data.tasty import text
from anticipax.data import teacher_outputs
from anticipax.next_step import captions
from anticipax.next_step import task as next_step
from anticipax import predict
from anticipax import train
from configs import tasty

SCORED = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l", "cider")

# One pytest-xdist worker runs the module (`--dist loadgroup`): `runs` trains once, not once per worker.
pytestmark = [pytest.mark.xdist_group("next_step"), pytest.mark.usefixtures("no_java")]


def _tiny(stage: str, data_dir: str, tokenizer: str = ""):
  c = tasty.stage_config(stage, demo=True)
  c.data.update(num_recipes=120, feature_dim=16, max_steps=6, max_words=8, max_ingredient_words=8,
                tfds_data_dir=data_dir)
  c.model.update(dim=32, num_heads=2)
  c.model.visual.num_layers = 1
  c.model.temporal.update(num_layers=1, max_steps=6)
  c.model.decoder.update(num_layers=1, max_len=8)
  c.train.update(steps=2, batch_size=8, log_every=1, eval_every=2, checkpoint_every=2,
                 async_checkpointing=False)
  c.schedule.warmup_steps = 1
  c.eval.update(batch_size=64, beam_width=2)
  c.distill.proj_dim = 16
  if stage == "teacher":
    c.text.update(tokenizer=tokenizer, max_len=12)
    c.text.scratch.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                          max_position_embeddings=16)
  return c


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The synthetic dataset (built once), the word tokenizer and the three stages' configs (nothing trained)."""
  root = tmp_path_factory.mktemp("next_step")
  data_dir = str(root / "tfds")
  probe = _tiny("visual", data_dir)
  tokenizer = str(root / "tokenizer")
  action_text.build_word_tokenizer(next_step.training_sentences(probe), tokenizer)
  configs = {"teacher": _tiny("teacher", data_dir, tokenizer), "visual": _tiny("visual", data_dir),
             "ccd": _tiny("ccd", data_dir)}
  configs["ccd"].distill.teacher_outputs = str(root / "teacher" / next_step.STATES_FILE.format(split="train"))
  return root, configs


@pytest.fixture(scope="module")
def runs(prepared):
  """2-step runs of the teacher, the visual and the CCD student (a chain: the slow tier only)."""
  root, configs = prepared
  results = {name: train.run(c, str(root / name)) for name, c in configs.items()}  # in this order
  return root, configs, results


def _source(config, split):
  return datasets.builder(config.data).as_data_source(split)


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _steps(example, key="steps") -> list[str]:
  return [_text(s) for s in example[key][:int(example["num_steps"])]]


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


def _same_metrics(a: dict, b: dict) -> None:
  assert a.keys() == b.keys()
  for k in a:
    assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k], (k, a[k], b[k])


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["teacher", "visual", "ccd"])
def test_stage_trains_scores_and_writes_predictions(runs, stage):
  root, configs, results = runs
  with open(root / stage / "metrics.json") as f:
    metrics = json.load(f)
  _same_metrics(metrics, results[stage])
  assert metrics["step"] == 2
  # Every validation recipe with n steps has a record for k = 1..min(8, n - 1), reference = step k + 1.
  source = _source(configs[stage], "validation")
  recipes = {_text(source[i]["recipe"]): _steps(source[i]) for i in range(len(source))}
  raw = {_text(source[i]["recipe"]): _steps(source[i], "raw_steps") for i in range(len(source))}
  records = _read_jsonl(root / stage / "predictions.jsonl")
  assert all(set(r) == {"recipe", "k", "observed", "prediction", "reference"} for r in records)
  assert sorted((r["recipe"], r["k"]) for r in records) == sorted(
      (name, k) for name, steps in recipes.items() for k in range(1, min(8, len(steps) - 1) + 1))
  for r in records:
    steps = recipes[r["recipe"]]
    assert r["k"] >= 1 and r["observed"] == steps[:r["k"]]
    # The reference is the dataset's own sentence ("Add the shrimp to the wok."), not the model's
    # normalized text ("add the shrimp to the wok ."): coco-caption tokenizes it as the papers' scorer does.
    assert r["reference"] == raw[r["recipe"]][r["k"]] != steps[r["k"]]
    assert text.normalize(r["reference"]) == steps[r["k"]]
    assert isinstance(r["prediction"], str)
  # k-averaged and per-k keys; the average is the unweighted mean over k; METEOR is NaN without Java.
  ks = sorted({r["k"] for r in records})
  assert ks[0] == 1 and len(ks) >= 2
  for m in SCORED:
    per_k = [metrics[f"eval/k{k}/{m}"] for k in ks]
    assert all(math.isfinite(v) and v >= 0 for v in per_k)
    assert metrics[f"eval/{m}"] == pytest.approx(np.mean(per_k), rel=1e-9, abs=1e-15)
    assert metrics[f"eval/{m}"] <= (10.0 if m == "cider" else 1.0)
  assert math.isnan(metrics["eval/meteor"]) and math.isnan(metrics["eval/k1/meteor"])
  # The file holds exactly what was scored.
  rescored = captions.anticipation_caption_metrics(records)
  _same_metrics({f"eval/{k}": v for k, v in rescored.items()},
                {k: v for k, v in metrics.items() if k.startswith("eval/")})
  # Then the test split, with the checkpoint selected on validation: its own records and scores.
  assert metrics["test_step"] == 2
  test = _source(configs[stage], "test")
  test_records = _read_jsonl(root / stage / "predictions_test.jsonl")
  assert {r["recipe"] for r in test_records} == {_text(test[i]["recipe"]) for i in range(len(test))
                                                 if int(test[i]["num_steps"]) > 1}
  assert not {r["recipe"] for r in test_records} & set(recipes)
  _same_metrics({f"test/{k}": v for k, v in captions.anticipation_caption_metrics(test_records).items()},
                {k: v for k, v in metrics.items() if k.startswith("test/")})


@pytest.mark.slow
def test_teacher_exports_one_state_per_real_step(runs):
  root, configs, _ = runs
  dim = configs["teacher"].model.dim
  for split, name in (("train", "train"), ("eval", "validation")):
    path = root / "teacher" / next_step.STATES_FILE.format(split=split)
    outputs = teacher_outputs.TeacherOutputs.load(str(path))
    source = _source(configs["teacher"], name)
    want = {next_step.step_key(source[i]["recipe"], s) for i in range(len(source))
            for s in range(int(source[i]["num_steps"]))}
    assert len(outputs) == len(want) and set(outputs.uids) == want
    assert outputs.feature_dim == dim and outputs.num_classes == 0
    _, states, present = outputs.lookup_batch(sorted(want))
    assert present.all() and np.all(np.isfinite(states))
    assert np.all(np.abs(states).max(axis=1) > 0)  # no step left at zero
  assert not outputs.lookup("no-such-recipe#0")[2]


def test_every_ingredient_reaches_the_model(prepared):
  # Stored ingredients are "name, name, ..."; each name must become its words, none an unknown "name,".
  _, configs = prepared
  task = train.Trainer(configs["visual"], devices=jax.devices()[:1]).task
  example = dict(_source(configs["visual"], "train")[0])
  example["ingredients"] = b"onion, bell pepper, oil"
  ids = task.preprocess(example)["ingredient_ids"]
  want = [task.vocab.id(w) for w in ("onion", ",", "bell", "pepper", ",", "oil")]
  assert task.vocab.unk_id not in want[:1] + want[2:4]
  np.testing.assert_array_equal(ids[:6], want)
  assert not ids[6:].any()


@pytest.mark.parametrize("contrast, exported", [("steps", "states"), ("states", "steps")])
def test_a_student_refuses_exports_of_the_other_kind(prepared, tmp_path, contrast, exported):
  # Files in the layout `next_step.export_states` writes (keys <recipe>#<step>, zero-class logits, the
  # vectors as features, the kind in the metadata); the slow test below uses a trained teacher's.
  _, configs = prepared
  source = _source(configs["visual"], "train")
  keys = [next_step.step_key(source[i]["recipe"], s) for i in range(4) for s in range(int(source[i]["num_steps"]))]
  path = str(tmp_path / f"teacher_{exported}_train.npz")
  teacher_outputs.write(path, keys, np.zeros((len(keys), 0), np.float32), np.ones((len(keys), 32), np.float32),
                        metadata={"kind": f"next_step_teacher_{exported}"})
  c = configs["ccd"].copy_and_resolve_references()
  c.distill.update(contrast=contrast, teacher_outputs=path)
  with pytest.raises(ValueError, match=rf"distill.teacher_outputs: .*teacher_{exported}_train.npz hold "
                                       rf"next_step_teacher_{exported}, not the teacher's {contrast}"):
    train.Trainer(c, devices=jax.devices()[:1])


@pytest.mark.slow
def test_a_student_refuses_teacher_outputs_of_the_other_representation(runs):
  root, configs, _ = runs
  c = configs["ccd"].copy_and_resolve_references()
  c.distill.update(contrast="steps", teacher_outputs=str(root / "teacher" / next_step.STATES_FILE.format(split="train")))
  with pytest.raises(ValueError, match=r"distill.teacher_outputs: .*teacher_states_train.npz hold next_step_teacher_"
                                       r"states, not the teacher's steps"):
    train.Trainer(c, devices=jax.devices()[:1])


def _ccd_trainer(configs, **distill):
  c = configs["ccd"].copy_and_resolve_references()
  c.distill.update(**distill)
  return train.Trainer(c, devices=jax.devices()[:1])


@pytest.mark.slow
def test_cached_and_online_teacher_give_the_same_loss(runs):
  root, configs, _ = runs
  cached = _ccd_trainer(configs, teacher_outputs=str(root / "teacher" / "teacher_states_train.npz"))
  online = _ccd_trainer(configs, teacher_outputs="", online_teacher=str(root / "teacher"))
  assert "teacher_states" in cached.task.train_keys and "step_tokens" not in cached.task.train_keys
  assert "step_tokens" in online.task.train_keys and "teacher_states" not in online.task.train_keys
  state = cached.init_state()
  # The online teacher's parameters are frozen inputs of the step, not part of the trained state; the
  # teacher's projection head is trained with the student in both modes.
  online_params = online.abstract_state.params
  assert "encoder" in online.frozen["step_encoder"] and "encoder" not in online_params["step_encoder"]
  assert jax.tree.structure(online_params) == jax.tree.structure(state.params)
  assert "teacher_projection" in state.params
  batch_a = next(cached.train_iterator())
  batch_b = next(online.train_iterator())
  np.testing.assert_array_equal(batch_a["target_tokens"], batch_b["target_tokens"])  # same recipes, order
  rng = jax.random.key(3)
  _, terms_a = jax.jit(cached.task.loss_fn)(state.params, batch_a, rng, cached.frozen)
  # Online: the loss and its gradients w.r.t. the trained params and the frozen teacher, in one compile.
  grad_fn = jax.value_and_grad(online.task.loss_fn, argnums=(0, 3), has_aux=True)
  (_, terms_b), (grad_params, grad_frozen) = jax.jit(grad_fn)(state.params, batch_b, rng, online.frozen)
  assert float(terms_a["teacher_coverage"]) == 1.0 == float(terms_b["teacher_coverage"])
  assert float(terms_a["contrastive_loss"]) > 0.0
  for k in ("contrastive_loss", "contrastive_accuracy", "word_loss", "loss"):
    np.testing.assert_allclose(float(terms_a[k]), float(terms_b[k]), rtol=1e-5, err_msg=k)
  # Gradients reach the teacher's projection head, never the frozen teacher.
  assert float(np.abs(grad_params["teacher_projection"]["kernel"]).max()) > 0
  assert all(np.all(g == 0) for g in jax.tree.leaves(grad_frozen))


@pytest.mark.slow
def test_predict_reproduces_the_final_evaluation(runs):
  root, configs, results = runs
  workdir = str(root / "teacher")
  result = predict.run(configs["teacher"], workdir)
  _same_metrics(result, {k: v for k, v in results["teacher"].items() if k == "step" or k.startswith("eval/")})
  path = os.path.join(workdir, "predictions_validation.jsonl")
  assert _read_jsonl(path) == _read_jsonl(os.path.join(workdir, "predictions.jsonl"))
  # The test numbers of training are those of the best checkpoint on the test split.
  test = predict.run(configs["teacher"], workdir, split="test")
  assert test["step"] == results["teacher"]["test_step"]
  _same_metrics({f"test/{k[5:]}": v for k, v in test.items() if k.startswith("eval/")},
                {k: v for k, v in results["teacher"].items() if k.startswith("test/")})


@pytest.mark.slow
def test_same_seed_gives_identical_metrics(runs):
  root, configs, _ = runs
  train.run(configs["visual"], str(root / "visual_again"))
  with open(root / "visual" / "metrics.json") as f, open(root / "visual_again" / "metrics.json") as g:
    assert f.read() == g.read()
  assert (_read_jsonl(root / "visual" / "predictions.jsonl")
          == _read_jsonl(root / "visual_again" / "predictions.jsonl"))


@pytest.mark.slow
def test_online_teacher_adds_kl_on_the_word_distributions(runs):
  root, configs, _ = runs
  plain = _ccd_trainer(configs, teacher_outputs="", online_teacher=str(root / "teacher"))
  with_kl = _ccd_trainer(configs, teacher_outputs="", online_teacher=str(root / "teacher"), word_kl=0.5)
  assert "word_kl" in with_kl.task.train_metric_names and "word_kl" not in plain.task.train_metric_names
  state = plain.init_state()
  batch = next(plain.train_iterator())
  rng = jax.random.key(5)
  _, a = jax.jit(plain.task.loss_fn)(state.params, batch, rng, plain.frozen)
  _, b = jax.jit(with_kl.task.loss_fn)(state.params, batch, rng, with_kl.frozen)
  assert float(b["word_kl"]) > 0.0
  np.testing.assert_allclose(float(b["loss"]), float(a["loss"]) + 0.5 * float(b["word_kl"]), rtol=1e-5)
