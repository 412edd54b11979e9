"""Defaults shared by every experiment config; each config file overrides what differs."""

import os
from typing import Any

import ml_collections


def parse_arg(arg: str | None, config_file: str, **known: Any) -> dict[str, Any]:
  """The `--config=configs/x.py:k=v,k2=v2` argument of a config, parsed strictly.

  Args:
    arg: what follows the ':' (None or "" for none).
    config_file: the config's `__file__`, named in errors.
    **known: each accepted key with its default; a tuple default `(default, choice, ...)` also lists the
      values allowed (the default first). Values are converted to the default's type.

  Returns:
    Every known key, with its given or default value.

  Raises:
    ValueError: one line naming the config file and the key, for a part without '=', an unknown or
      repeated key, or a value of the wrong type or outside the choices.
  """
  name = f"configs/{os.path.basename(config_file)}"
  choices = {k: tuple(dict.fromkeys(v)) if isinstance(v, tuple) else None for k, v in known.items()}
  out = {k: (v[0] if isinstance(v, tuple) else v) for k, v in known.items()}
  given = set()
  for part in (arg or "").split(","):
    if not part:
      continue
    key, eq, text = part.partition("=")
    if not eq:
      raise ValueError(f"{name}: config argument {part!r} is not key=value (known keys: {', '.join(known)})")
    if key not in known:
      raise ValueError(f"{name}: config argument key {key!r} is unknown (known keys: {', '.join(known)})")
    if key in given:
      raise ValueError(f"{name}: config argument key {key!r} is given twice")
    given.add(key)
    kind = type(out[key])
    try:
      value = kind(text)
    except ValueError:
      raise ValueError(f"{name}: config argument {key}={text!r} is not {kind.__name__}") from None
    if choices[key] is not None and value not in choices[key]:
      raise ValueError(f"{name}: config argument {key}={text!r}; known: {', '.join(map(str, choices[key]))}")
    out[key] = value
  return out


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = "anticipation"

  c.data = ml_collections.ConfigDict()
  c.data.name = ""
  c.data.tfds_data_dir = ml_collections.FieldReference(None, field_type=str)  # None: TFDS default
  c.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.num_threads = 4

  c.model = ml_collections.ConfigDict()
  c.model.dtype = "float32"
  # "identity": pre-extracted features straight into AVT-h (AVT); "linear": projected to `dim` first.
  c.model.backbone = ml_collections.ConfigDict({"kind": "linear", "dim": 768})
  # head.dropout: AVT-h's GPT-2 embedding, attention and residual dropout (transformers' default 0.1);
  # model.dropout: AVT's `model.dropout`, before the classifiers only.
  c.model.head = ml_collections.ConfigDict(
      {"inter_dim": 2048, "num_layers": 2, "num_heads": 4, "dropout": 0.1, "max_len": 64})
  c.model.dropout = 0.2
  c.model.verb_noun_heads = False

  c.loss = ml_collections.ConfigDict(
      {"next_action": 1.0, "future_feature": 1.0, "past_action": 1.0, "verb": 0.0, "noun": 0.0,
       "label_smoothing": 0.0})

  c.optimizer = ml_collections.ConfigDict(
      {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-6, "grad_clip": 0.0, "b1": 0.9, "b2": 0.999,
       "eps": 1e-8, "decay_all": False})
  c.schedule = ml_collections.ConfigDict(
      {"peak_lr": 1e-3, "warmup_steps": 0, "decay": "cosine", "end_factor": 0.0})

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32
  c.train.steps = 1000
  c.train.max_steps_per_run = 0  # stop this invocation early (0: run to train.steps); resume continues
  c.train.log_every = 50
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.train.keep_checkpoints = 2
  c.train.async_checkpointing = True
  c.train.profile_steps = 0
  c.train.profile_first_step = 10

  # test_split: a labelled split scored once training ends, with the checkpoint best on `best_metric` over the
  # evaluation split ("" = none: EPIC's test sets are unlabelled and go to the challenge export instead).
  c.eval = ml_collections.ConfigDict({"batch_size": 64, "best_metric": "action/mean_top1", "test_split": ""})

  # Knowledge distillation from a text teacher (anticipation task). kind: "" (off), "kl", "contrastive".
  # reduction: "sum" = KL summed over classes (Hinton); "mean" = averaged over them (the seed paper's code).
  c.distill = ml_collections.ConfigDict({
      "kind": "", "weight": 0.0, "temperature": 1.0, "top_k": 0, "reduction": "sum",
      # cached: teacher_outputs_train.npz file(s) of teacher runs, comma-separated (several = ensemble)
      "teacher_outputs": "",
      "online_teacher": "",   # or a teacher run's workdir, evaluated frozen inside the train step
  })

  # Mesh axes (-1 fills with the remaining devices) and logical-axis -> mesh-axis rules.
  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.logical_axis_rules = [
      ("batch", ("data", "fsdp")),
      ("embed", "fsdp"),
      ("mlp", "tensor"),
      ("heads", "tensor"),
      ("kv", None),
      ("classes", "tensor"),
      ("features", None),
      ("input", None),
      ("length", None),
  ]
  return c


def avt_recipe(c: ml_collections.ConfigDict, *, train_examples: int, optimizer: str, lr: float,
               weight_decay: float, epochs: int, warmup_epochs: int, batch_size: int, world: int = 1) -> None:
  """An AVT `expts/*.txt` training recipe (Girdhar & Grauman's released code).

  AVT's numbers are per process: `train.batch_size` per GPU, and `func/train.py` multiplies the learning
  rate by the number of processes. `world` = 1 is one process (how the seed paper's student runs were
  launched, `launch.py -g`); `world` = N reproduces an N-GPU AVT run: global batch N x batch_size at
  N x lr. Weight decay is PyTorch's coupled L2 on every parameter (`bias_bn_wd_scale` 1.0); the schedule
  warms up linearly from 0 for `warmup_epochs`, then anneals (cosine) to 0 over the rest; no clipping;
  evaluated and checkpointed every epoch (AVT's `eval_freq` 1; the last epoch's model is reported).
  """
  global_batch = batch_size * world
  steps_per_epoch = train_examples // global_batch
  c.optimizer.update(name=optimizer, momentum=0.9, weight_decay=weight_decay, grad_clip=0.0, decay_all=True)
  c.schedule.update(peak_lr=lr * world, warmup_steps=warmup_epochs * steps_per_epoch, decay="cosine",
                    end_factor=0.0)
  c.train.update(batch_size=global_batch, steps=epochs * steps_per_epoch, log_every=100,
                 eval_every=steps_per_epoch, checkpoint_every=steps_per_epoch, profile_steps=5)
  c.eval.batch_size = global_batch


def teacher_recipe(c: ml_collections.ConfigDict, *, pretrained: str, train_examples: int, hist_len: int,
                   epochs: int, batch_size: int = 16, max_len: int = 512) -> None:
  """Turns a student config into its text teacher's, as the seed paper's released teacher code trains it.

  `teacher/code/{egtea,epic55}_finetuning.py`: the [CLS] state of `pretrained` -> three linear heads
  (action, verb, noun; no dropout before them), AdamW at a constant lr 1e-5 (eps 1e-8, weight decay 1e-7;
  no warmup, no clipping) on the text of the previous `hist_len` actions, the last `max_len` tokens kept.
  """
  c.task = "teacher"
  c.text = text_config(pretrained=pretrained, max_len=max_len, hist_len=hist_len)
  c.model = base_config().model
  c.model.dropout = 0.0
  c.optimizer.update(name="adamw", weight_decay=1e-7, eps=1e-8, grad_clip=0.0, decay_all=False)
  steps_per_epoch = train_examples // batch_size
  c.schedule.update(peak_lr=1e-5, warmup_steps=0, decay="constant")
  c.train.update(batch_size=batch_size, steps=epochs * steps_per_epoch, eval_every=steps_per_epoch,
                 checkpoint_every=steps_per_epoch, profile_steps=0)
  c.eval.batch_size = 64
  c.distill.kind = ""


def text_config(**overrides) -> ml_collections.ConfigDict:
  """The `text` section of MLM / teacher configs (see anticipax/text_encoders.py)."""
  t = ml_collections.ConfigDict({
      "pretrained": "",    # HF model dir or hub name (e.g. "bert-base-uncased"); "" = from scratch
      "tokenizer": "",     # default: the pretrained model's
      "init_workdir": "",  # start from an earlier MLM / teacher run instead
      "scratch": {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 512,
                  "max_position_embeddings": 128, "dropout": 0.1, "attention_dropout": 0.1,
                  "hidden_act": "gelu", "type_vocab_size": 2},
      "max_len": 64,
      # Each batch is cut to the shortest of these lengths that holds its longest text (one compilation
      # per length; anticipax/data/buckets.py): "auto" = 16, 20, 24, 28, 32, 40, ... (<= 25 % padding); "none" = always max_len.
      "length_buckets": "auto",
      "hist_len": 15,      # most recent actions written as teacher text
      "template": "{verb} <v> {noun}",
      "separator": " <a> ",
      "dtype": "float32",
  })
  t.update(overrides)
  return t


def kd_pipeline(teacher: ml_collections.ConfigDict, student: ml_collections.ConfigDict, *,
                mlm: ml_collections.ConfigDict | None = None,
                compare_metric: str) -> ml_collections.ConfigDict:
  """A `python -m anticipax.distill_pipeline` config on real data: (MLM) -> teacher -> baseline and
  distilled student, the two students once per seed.

  Top-level fields reach every stage: `manual_dir` and `tfds_data_dir` (the dataset), `pretrained` (the
  teacher's and MLM's starting model: a local HF directory or hub name), `corpus` (MLM text, one document
  a line; empty = no MLM stage, the teacher starts from `pretrained`) and `seeds`. Any single stage's
  field: `--config.stages.<stage>.<field>=...`.
  """
  manual_dir = ml_collections.FieldReference(None, field_type=str)
  tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  pretrained = ml_collections.FieldReference(teacher.text.pretrained, field_type=str)
  corpus = ml_collections.FieldReference("", field_type=str)
  baseline = student.copy_and_resolve_references()
  student = student.copy_and_resolve_references()
  student.distill.update(kind="kl", teacher_outputs="<teacher>")
  teacher.text.init_workdir = "<mlm>"  # the MLM run when there is one, else text.pretrained
  teacher.text.pretrained = pretrained
  stages = {"teacher": teacher, "baseline": baseline, "student": student}
  if mlm is not None:
    mlm.data.corpus = corpus
    mlm.text.pretrained = pretrained
    stages["mlm"] = mlm
  for c in stages.values():
    c.data.tfds_data_dir = tfds_data_dir
    if c.task != "mlm":
      c.data.manual_dir = manual_dir
  order = [n for n in ("mlm", "teacher", "baseline", "student") if n in stages]
  return ml_collections.ConfigDict({
      "manual_dir": manual_dir, "tfds_data_dir": tfds_data_dir, "pretrained": pretrained, "corpus": corpus,
      "seeds": 3, "stages": stages, "order": order, "arms": ["baseline", "student"],
      "parallel": 1,  # arm runs at once: accelerators serve one process (0: one per core, on the CPU)
      "compare_metric": compare_metric})
