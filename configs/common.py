"""Defaults shared by every experiment config; each config file overrides what differs."""

import ml_collections


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
  c.model.backbone = ml_collections.ConfigDict({"dim": 768})
  c.model.head = ml_collections.ConfigDict(
      {"inter_dim": 2048, "num_layers": 2, "num_heads": 4, "dropout": 0.2, "max_len": 64})
  c.model.dropout = 0.2
  c.model.verb_noun_heads = False

  c.loss = ml_collections.ConfigDict(
      {"next_action": 1.0, "future_feature": 1.0, "past_action": 1.0, "verb": 0.0, "noun": 0.0,
       "label_smoothing": 0.0})

  c.optimizer = ml_collections.ConfigDict(
      {"name": "sgd", "momentum": 0.9, "weight_decay": 1e-6, "grad_clip": 0.0, "b1": 0.9, "b2": 0.999})
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

  c.eval = ml_collections.ConfigDict({"batch_size": 64, "best_metric": "action/mean_top1"})

  # Knowledge distillation from a text teacher (anticipation task). kind: "" (off), "kl", "contrastive".
  c.distill = ml_collections.ConfigDict({
      "kind": "", "weight": 0.0, "temperature": 1.0, "top_k": 0,
      "teacher_outputs": [],  # cached: teacher_outputs_train.npz file(s) of teacher runs (several = ensemble)
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


def avt_training(c: ml_collections.ConfigDict, *, train_examples: int, batch_size: int = 32,
                 epochs: int = 50, warmup_epochs: int = 20) -> None:
  """AVT's recipe (Girdhar & Grauman): SGD + momentum 0.9, lr 1e-4, weight decay 1e-6, 50 epochs of which
  20 warm up and 30 anneal (cosine); evaluated every 5 epochs, checkpointed every epoch."""
  steps_per_epoch = train_examples // batch_size
  c.optimizer.update(name="sgd", momentum=0.9, weight_decay=1e-6)
  c.schedule.update(peak_lr=1e-4, warmup_steps=warmup_epochs * steps_per_epoch)
  c.train.update(batch_size=batch_size, steps=epochs * steps_per_epoch, log_every=100,
                 eval_every=5 * steps_per_epoch, checkpoint_every=steps_per_epoch, profile_steps=5)


def teacher_training(c: ml_collections.ConfigDict, *, train_examples: int, hist_len: int, max_len: int,
                     batch_size: int = 32, epochs: int = 10) -> None:
  """Turns a student config into its text teacher's: BERT fine-tuned with AdamW at lr 1e-5 (one epoch of
  warmup) on the text of the previous `hist_len` actions."""
  c.task = "teacher"
  c.text = text_config(pretrained="bert-base-uncased", max_len=max_len, hist_len=hist_len)
  c.model = base_config().model
  c.model.dropout = 0.1
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  steps_per_epoch = train_examples // batch_size
  c.schedule.update(peak_lr=1e-5, warmup_steps=steps_per_epoch)
  c.train.update(batch_size=batch_size, steps=epochs * steps_per_epoch, eval_every=steps_per_epoch,
                 checkpoint_every=steps_per_epoch, profile_steps=0)
  c.distill.kind = ""


def text_config(**overrides) -> ml_collections.ConfigDict:
  """The `text` section of MLM / teacher configs (see anticipax/tasks/text_model.py)."""
  t = ml_collections.ConfigDict({
      "pretrained": "",    # HF model dir or hub name (e.g. "bert-base-uncased"); "" = from scratch
      "tokenizer": "",     # default: the pretrained model's
      "init_workdir": "",  # start from an earlier MLM / teacher run instead
      "scratch": {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 512,
                  "max_position_embeddings": 128, "dropout": 0.1, "attention_dropout": 0.1,
                  "hidden_act": "gelu", "type_vocab_size": 2},
      "max_len": 64,
      "hist_len": 15,      # most recent actions written as teacher text
      "template": "{verb} <v> {noun}",
      "separator": " <a> ",
      "dtype": "float32",
  })
  t.update(overrides)
  return t
