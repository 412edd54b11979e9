"""Next-step sentence anticipation on Tasty Videos (method 2: Yang et al. 2022, CCD).

A recipe's ingredients and its first k steps are observed; the model writes the sentence of step k+1.
One task serves the three stages of the method (`config.model.modality`, `config.distill.kind`):

- teacher  ("text"): a BERT step encoder reads each step's sentence; word cross-entropy;
- student  ("visual"): a transformer pools each step's frame features; word cross-entropy;
- CCD student ("visual", distill.kind="contrastive"): plus the cross-modal contrastive loss between the
  student's per-step temporal states and the frozen teacher's, each through its own projection head
  (the teacher's head is trained with the student), optionally KL on the decoder's word distributions
  (`distill.word_kl`, online teacher only).

The teacher is cached (`distill.teacher_outputs`: the `teacher_states_train.npz` a teacher run exports;
per-step states keyed `<recipe>#<step>`) or online (`distill.online_teacher`: its workdir, run frozen
inside the student's step). Evaluation (Sener & Yao's protocol): every state decodes its next sentence
(greedy or beam, `eval.beam_width`); for k = 1..`eval.max_observed` observed steps (k = 0: ingredients
only, with `eval.include_k0`) the prediction of step k+1 is scored against its reference with BLEU-1..4,
METEOR, ROUGE-L and CIDEr (`anticipax.next_step.captions`); `predictions.jsonl` lands in the workdir.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from anticipax import checkpointing
from anticipax.data import action_text
from anticipax.data.corpus import builder as corpus_builder
from anticipax.data import datasets
from anticipax.data.errors import DataError
from anticipax.data import pipeline
from anticipax.data.pipeline import Splits
from anticipax.data.tasty import builder as tasty_builder
from anticipax.data.tasty import text as tasty_text
from anticipax.data import teacher_outputs
from anticipax.data.text_values import as_text
from anticipax import losses
from anticipax.models.layers import dense
from anticipax.next_step import captions
from anticipax.next_step import decoding
from anticipax.next_step import losses as step_losses
from anticipax.next_step.model import build_next_step_model
from anticipax.next_step import references as step_baselines
from anticipax import paths
from anticipax import sharding
from anticipax.tasks import base
from anticipax import text_encoders

STATES_FILE = "teacher_states_{split}.npz"  # the temporal states that predict each step
STEPS_FILE = "teacher_steps_{split}.npz"  # each step's own vector (the step encoder's, before the temporal model)
CONTRASTS = ("states", "steps")  # what CCD may contrast (`distill.contrast`)


def teacher_file(contrast: str, split: str = "train") -> str:
  """The teacher export holding what `distill.contrast` contrasts."""
  return (STATES_FILE if contrast == "states" else STEPS_FILE).format(split=split)
PREDICTIONS_FILE = "predictions.jsonl"
_TEACHER_HEAD = "teacher_projection"


@dataclasses.dataclass(frozen=True)
class TastyInfo:
  vocab: Any  # data.tasty.text.Vocab
  feature_dim: int
  max_steps: int
  frames_per_step: int


def training_sentences(config) -> list[str]:
  """Every step sentence of the training recipes, the corpus's too when the stage trains on one (e.g. to
  build a word-level tokenizer for the teacher)."""
  sources = [datasets.builder(config.data).as_data_source(config.data.get("train_split", "train"))]
  if config.data.get("corpus"):
    sources.append(corpus_source(config))
  lines = []
  for source in sources:
    for i in range(len(source)):
      example = source[i]
      lines += [as_text(s) for s in example["steps"][:int(example["num_steps"])]]
  return lines


def corpus_source(config):
  """The training split of `data.corpus` (external recipe text), without the Tasty evaluation recipes."""
  return corpus_dataset(config).as_data_source("train")


def corpus_dataset(config):
  """The prepared `recipe_corpus` of `data.corpus`; `.info.metadata["counts"]` says what was dropped and why.

  The leak guard holds the validation and test recipes of the Tasty split layout the stage uses; a corpus
  recipe equal to one of them step for step, or from the same URL, is dropped.
  """
  d = config.data
  path = datasets.corpus_file(d)
  guard = corpus_builder.LeakGuard.from_tasty(datasets.tasty_manual_dir(d), d.get("split", "split_4022"))
  b = corpus_builder.load(path, data_dir=d.get("tfds_data_dir"), format=d.get("corpus_format") or None,
                          leak_guard=guard, max_steps=int(d.get("max_steps", 16)),
                          max_recipes=int(d.get("corpus_max_recipes", 0)))
  return b


def observed_range(config) -> tuple[int, int]:
  """(first, last) numbers of observed steps k scored (`eval.include_k0`, `eval.max_observed`)."""
  e = config.eval
  return (0 if e.get("include_k0", False) else 1), int(e.get("max_observed", 8))


def step_key(recipe, step: int) -> str:
  """The key of one step's teacher state in a teacher-outputs file."""
  return f"{as_text(recipe)}#{step}"


class StepText:
  """Host-side: a recipe's step sentences -> BERT token ids [S, T] (the teacher's step inputs)."""

  def __init__(self, text_cfg):
    self.tokenizer = text_encoders.load_tokenizer(text_cfg)
    self.max_len = int(text_cfg.max_len)

  def __call__(self, steps) -> dict[str, np.ndarray]:
    tokens = action_text.tokenize(self.tokenizer, [as_text(s) for s in steps], self.max_len)
    return {"step_tokens": tokens["input_ids"], "step_attention": tokens["attention_mask"]}


class NextStepTask(base.Task):
  """Teacher, visual student or CCD student (see the module docstring)."""

  @classmethod
  def load_data(cls, config) -> Splits[TastyInfo]:
    b = datasets.builder(config.data)
    meta = b.info.metadata
    info = TastyInfo(tasty_builder.vocab(b), int(meta["feature_dim"]), int(meta["max_steps"]),
                     int(meta["frames_per_step"]))
    if "corpus" in config.data and not config.data.corpus:
      raise DataError("config key data.corpus: a pretraining stage needs recipe text (RecipeNLG full_dataset.csv, "
                      "Recipe1M layer1.json or plain text, one recipe a line)")
    # Pretraining on external recipe text: the corpus's recipes train, Tasty's evaluation split scores.
    train = (corpus_source(config) if config.data.get("corpus")
             else b.as_data_source(config.data.get("train_split", "train")))
    return Splits(train, b.as_data_source(config.data.get("eval_split", "validation")), info)

  def __init__(self, config, splits: Splits[TastyInfo]):
    super().__init__(config, splits)
    self.info = info = splits.info
    self.vocab = info.vocab
    self.modality = config.model.modality
    self.max_words = int(config.data.max_words)
    self.max_ingredients = int(config.data.max_ingredient_words)
    self.distill = config.get("distill", ml_collections.ConfigDict())
    self.kind = self.distill.get("kind", "")
    if self.kind not in ("", "contrastive"):
      raise ValueError(f"config.distill.kind: unknown {self.kind!r} for next_step (contrastive or empty)")
    if self.modality == "text" and self.kind:
      raise ValueError("config.distill: the text teacher distils from nobody (distill.kind must be empty)")
    self.contrast = self.distill.get("contrast", "states")
    if self.kind and self.contrast not in CONTRASTS:
      raise ValueError(f"config.distill.contrast: unknown {self.contrast!r} ({' or '.join(CONTRASTS)})")
    if self.modality != "text" and config.data.get("corpus"):
      raise ValueError("config.data.corpus: a corpus is text without video; only the text teacher trains on it")

    bert_config, self.step_text = None, None
    if self.modality == "text":
      self.step_text = StepText(config.text)
      bert_config = text_encoders.bert_config(config.text, self.step_text.tokenizer)
    proj_dim = int(self.distill.get("proj_dim", 128)) if self.kind else 0
    self.model = build_next_step_model(config.model, vocab_size=len(self.vocab), modality=self.modality,
                                       bert_config=bert_config, bos_id=self.vocab.bos_id)
    if proj_dim:
      self.model = self.model.clone(proj_dim=proj_dim, contrast=self.contrast)
    self.cached = self.online = None
    distill_keys = []
    if self.kind and self.distill.get("online_teacher"):
      self.online = OnlineStepTeacher(self.distill.online_teacher, info, self.contrast)
      distill_keys = ["step_tokens", "step_attention", "teacher_mask"]
      self.teacher_dim = self.online.dim
    elif self.kind:
      paths = teacher_outputs.config_paths(self.distill.teacher_outputs)
      self.cached = teacher_outputs.TeacherOutputs.load(paths)
      kinds = {m.get("kind") for m in self.cached.metadata}
      if kinds != {f"next_step_teacher_{self.contrast}"}:
        raise ValueError(f"config.distill.teacher_outputs: {', '.join(paths)} hold {', '.join(map(str, kinds))}, "
                         f"not the teacher's {self.contrast} that distill.contrast={self.contrast!r} contrasts "
                         f"({teacher_file(self.contrast)})")
      distill_keys = ["teacher_states", "teacher_mask"]
      self.teacher_dim = self.cached.feature_dim
    if self.kind:
      self.teacher_head = dense(proj_dim, ("embed", "features"), name=_TEACHER_HEAD)
    inputs = (["step_tokens", "step_attention"] if self.modality == "text"
              else ["step_features", "frame_mask", "has_video"])
    common = ["ingredient_ids", "step_mask", "target_tokens"]
    self.eval_keys = tuple(common + inputs)
    self.train_keys = tuple(dict.fromkeys(common + inputs + distill_keys))  # ordered, unique

  @property
  def train_metric_names(self) -> tuple[str, ...]:
    names = ("loss", "word_loss", "token_accuracy")
    if self.kind:
      names += ("contrastive_loss", "contrastive_accuracy", "teacher_coverage")
      if self.online is not None and self.distill.get("word_kl", 0.0):
        names += ("word_kl",)
    return names

  # -- host side -------------------------------------------------------------------------------------
  def preprocess(self, example):
    steps = example["steps"]
    out = dict(example)
    out["target_tokens"] = np.stack([self.vocab.encode(as_text(s), self.max_words + 1)[1:] for s in steps])
    # Normalized as the steps are: "onion, bell pepper" -> "onion , bell pepper" (a bare split would make
    # "onion," an unknown word, leaving the model only the last ingredient).
    words = tasty_text.normalize(as_text(example["ingredients"])).split()[:self.max_ingredients]
    ingredients = np.zeros([self.max_ingredients], np.int32)
    ingredients[:len(words)] = [self.vocab.id(w) for w in words]
    out["ingredient_ids"] = ingredients
    if self.step_text is not None:
      out.update(self.step_text(steps))
    if self.online is not None:
      out.update(self.online.step_text(steps))
      out["teacher_mask"] = np.asarray(example["step_mask"], np.float32)
    elif self.cached is not None:
      keys = [step_key(example["recipe"], s) for s in range(len(steps))]
      _, states, present = self.cached.lookup_batch(keys)
      out["teacher_states"] = states
      out["teacher_mask"] = present * np.asarray(example["step_mask"], np.float32)
    return out

  def dummy_batch(self, batch_size: int, eval: bool = False) -> dict[str, np.ndarray]:  # pylint: disable=redefined-builtin
    s, f, d = self.info.max_steps, self.info.frames_per_step, self.info.feature_dim
    t = self.step_text.max_len if self.step_text else self.online.step_text.max_len if self.online else 1
    shapes = {"ingredient_ids": (self.max_ingredients,), "step_mask": (s,), "target_tokens": (s, self.max_words),
              "step_features": (s, f, d), "frame_mask": (s, f), "has_video": (s,), "step_tokens": (s, t),
              "step_attention": (s, t), "teacher_states": (s, getattr(self, "teacher_dim", 1)),
              "teacher_mask": (s,)}
    floats = ("step_features", "teacher_states", "teacher_mask")
    return {k: np.zeros((batch_size, *shapes[k]), np.float32 if k in floats else np.int32)
            for k in (self.eval_keys if eval else self.train_keys)}

  # -- device side -----------------------------------------------------------------------------------
  def init(self, rng: jax.Array, batch: dict[str, jax.Array]) -> Any:
    model_rng, head_rng = jax.random.split(rng)
    params = dict(self.model.init({"params": model_rng}, batch, batch["target_tokens"], batch["step_mask"])["params"])
    if self.kind:
      states = jnp.zeros((1, self.teacher_dim), jnp.float32)
      params[_TEACHER_HEAD] = self.teacher_head.init({"params": head_rng}, states)["params"]
    return params

  def pretrained_params(self):
    """A text teacher starts from `text.init_workdir`: a next-step teacher run (pretrained on a recipe
    corpus) gives the whole model; an MLM run, or `text.pretrained`, the step encoder's BERT."""
    if self.modality != "text":
      return None
    if self.config.text.get("init_workdir"):
      params = text_encoders.restore_params(self.config.text.init_workdir)
      if "step_encoder" in params:
        return self._model_params(params)
    encoder = text_encoders.pretrained_params(self.config.text, with_mlm_head=False)
    return None if encoder is None else {"step_encoder": {"encoder": encoder["encoder"]}}

  def frozen_params(self):
    return None if self.online is None else self.online.frozen()

  def _model_params(self, params):
    return {k: v for k, v in params.items() if k != _TEACHER_HEAD}

  def loss_fn(self, params, batch, rng, frozen):
    outputs, aux = self.model.apply({"params": self._model_params(params)}, batch, batch["target_tokens"],
                                    batch["step_mask"], train=True, rngs={"dropout": rng})
    recipes = batch["mask"] if "mask" in batch else jnp.ones(batch["step_mask"].shape[:1], jnp.float32)
    steps = batch["step_mask"].astype(jnp.float32) * recipes[:, None]
    tokens = (batch["target_tokens"] != self.vocab.pad_id) * steps[..., None]
    word_loss, word_aux = step_losses.next_step_ce(outputs["logits"], batch["target_tokens"], tokens,
                                              label_smoothing=self.config.loss.get("label_smoothing", 0.0))
    total = word_loss
    terms = {"word_loss": word_loss, "token_accuracy": word_aux["token_accuracy"]}
    if self.kind:
      teacher_states, teacher_logits = self.teacher_states(batch, frozen)
      teacher_mask = batch["teacher_mask"] * steps
      head = self.teacher_head.apply({"params": params[_TEACHER_HEAD]}, teacher_states)
      contrastive, c_aux = step_losses.cross_modal_contrastive(aux["projected"], head, teacher_mask,
                                                          temperature=self.distill.temperature)
      total += self.distill.weight * contrastive
      terms.update(contrastive_loss=contrastive, contrastive_accuracy=c_aux["contrastive_accuracy"],
                   teacher_coverage=jnp.sum(teacher_mask) / jnp.maximum(jnp.sum(steps), 1.0))
      if teacher_logits is not None and self.distill.get("word_kl", 0.0):
        vocab = outputs["logits"].shape[-1]
        kl, _ = losses.distillation_kl(outputs["logits"].reshape(-1, vocab), teacher_logits.reshape(-1, vocab),
                                       tokens.reshape(-1), temperature=self.distill.get("word_temperature", 1.0))
        total += self.distill.word_kl * kl
        terms["word_kl"] = kl
    terms["loss"] = total
    return total, terms

  def teacher_states(self, batch, frozen):
    """(teacher states [B, S, Dt], word logits [B, S, L, V] or None): cached, or the online teacher's."""
    if self.online is not None:
      return self.online(frozen, batch)
    return jax.lax.stop_gradient(batch["teacher_states"]), None

  def predict(self, params, batch, frozen):
    del frozen
    e = self.config.eval
    tokens, _ = decoding.generate(self.model, {"params": self._model_params(params)}, batch, batch["step_mask"],
                                  eos_id=self.vocab.eos_id, max_len=self.max_words,
                                  width=int(e.get("beam_width", 1)), alpha=float(e.get("length_penalty", 0.0)),
                                  pad_id=self.vocab.pad_id)
    return {"tokens": tokens}

  def encode_states(self, params, batch):
    """What a teacher exports: `(steps, states)`, each step's own vector and the temporal states that
    predict each step, [B, S, D] each."""
    return self.model.apply({"params": self._model_params(params)}, batch, batch["step_mask"],
                            method="encode_steps")

  # -- evaluation ------------------------------------------------------------------------------------
  def records(self, outputs: dict[str, np.ndarray], source) -> list[dict[str, Any]]:
    """One record per (recipe, k): the k observed steps, the predicted and the reference step k+1."""
    first, last = observed_range(self.config)
    tokens = outputs["tokens"]
    return step_baselines.records(source, lambda row, _, k: self.vocab.decode(tokens[row, k]), first, last,
                                  indices=outputs["index"])

  def evaluate(self, outputs, source=None) -> dict[str, float]:
    source = self.splits.eval if source is None else source
    self.last_records = self.records(outputs, source)
    if not self.last_records:
      raise ValueError("evaluation: no recipe has a step to predict (every recipe has a single step?)")
    if getattr(self, "_scorer", None) is None:  # one METEOR process for all of a run's evaluations
      self._scorer = captions.CaptionScorer()
    return captions.anticipation_caption_metrics(self.last_records, scorer=self._scorer)

  def close(self) -> None:
    if getattr(self, "_scorer", None) is not None:
      self._scorer.close()
      self._scorer = None

  def write_predictions(self, workdir: str, name: str = PREDICTIONS_FILE) -> str | None:
    """`predictions.jsonl`: one line per (recipe, k) of the last evaluation."""
    if jax.process_index() != 0 or not getattr(self, "last_records", None):
      return None
    path = paths.path(workdir) / name
    with paths.open_atomic(path, "w") as f:
      for r in self.last_records:
        f.write(json.dumps(r) + "\n")
    return str(path)

  def finalize(self, trainer, state, workdir: str) -> None:
    """Writes the final evaluation's predictions; a text teacher also exports its per-step states."""
    self.write_predictions(workdir)
    if self.modality == "text":
      text_encoders.save(workdir, text_encoders.bert_config(self.config.text, self.step_text.tokenizer),
                      self.step_text.tokenizer)
      # A teacher pretrained on a corpus exports nothing: its states are for no student (it is fine-tuned first).
      if not self.config.data.get("corpus"):
        for split, source in (("train", self.splits.train), ("eval", self.splits.eval)):
          export_states(self, trainer, state.params, source, workdir, split)


def export_states(task: NextStepTask, trainer, params, source, workdir: str, split: str) -> None:
  """Writes the per-step states (`STATES_FILE`) and step vectors (`STEPS_FILE`) of every recipe of `source`
  (keys `<recipe>#<step>`, real steps only) into `workdir`."""
  encode = jax.jit(task.encode_states, out_shardings=sharding.replicated(trainer.mesh))
  keys, rows, step_rows = [], [], []
  with trainer.mesh, nn.logical_axis_rules(trainer.rules):
    for local in pipeline.eval_batches(source, keys=task.eval_keys, preprocess=task.preprocess,
                                       batch_size=trainer.eval_batch_size // jax.process_count(),
                                       process_index=jax.process_index(), process_count=jax.process_count()):
      batch = sharding.global_batch(local, trainer.mesh)
      steps, states = (np.asarray(x, np.float32) for x in jax.device_get(encode(params, batch)))
      index, mask = jax.device_get((batch["index"], batch["mask"]))
      step_mask = jax.device_get(batch["step_mask"])
      for row in np.flatnonzero(mask > 0):
        recipe = source[int(index[row])]["recipe"]
        for s in np.flatnonzero(step_mask[row] > 0):
          keys.append(step_key(recipe, int(s)))
          rows.append(states[row, s])
          step_rows.append(steps[row, s])
  if jax.process_index() == 0:
    # Feature-only files: logits with zero classes, the vectors as features.
    for name, values, kind in ((STATES_FILE, rows, "next_step_teacher_states"),
                               (STEPS_FILE, step_rows, "next_step_teacher_steps")):
      path = paths.path(workdir) / name.format(split=split)
      teacher_outputs.write(path, keys, np.zeros((len(values), 0), np.float32), np.stack(values),
                            metadata={"kind": kind})
      logging.info("Exported %d step vectors to %s.", len(values), path)


class OnlineStepTeacher:
  """A finished teacher run (its workdir) evaluated frozen inside the CCD student's train step."""

  def __init__(self, workdir: str, info: TastyInfo, contrast: str = "states"):
    teacher_config = ml_collections.ConfigDict(checkpointing.stored_config(workdir))
    teacher_config.text.init_workdir = workdir
    teacher_config.text.pretrained = ""
    self.splits = Splits((), (), info)
    self.task = NextStepTask(teacher_config, self.splits)
    self.step_text = self.task.step_text
    self.workdir = workdir
    self.contrast = contrast
    self.dim = int(teacher_config.model.dim)

  def frozen(self):
    batch = jax.tree.map(jnp.asarray, self.task.dummy_batch(1))
    boxed = jax.eval_shape(lambda: self.task.init(jax.random.key(0), batch))
    return jax.device_get(text_encoders.restore_params(self.workdir)), nn.get_partition_spec(boxed)

  def __call__(self, params, batch):
    outputs, aux = self.task.model.apply({"params": params}, batch, batch["target_tokens"], batch["step_mask"])
    return jax.lax.stop_gradient(aux[self.contrast]), jax.lax.stop_gradient(outputs["logits"])
