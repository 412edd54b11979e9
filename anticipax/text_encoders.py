"""Where a text model's architecture, tokenizer and starting weights come from (`config.text`).

Three sources, in order of precedence:
- `text.init_workdir`: an earlier anticipax run (MLM pretraining or teacher fine-tuning); its
  `text_model/` holds the architecture and tokenizer, its latest checkpoint the weights.
- `text.pretrained`: a Hugging Face model directory or hub name (safetensors, imported by
  `models.hf_import`); the tokenizer comes from `text.tokenizer` or the same place.
- neither: a fresh encoder of shape `text.scratch` over the tokenizer at `text.tokenizer`.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from typing import Any

from absl import logging
import jax.numpy as jnp
import numpy as np

from anticipax import checkpointing
from anticipax.data import action_text
from anticipax import paths

from anticipax.models.bert import BertConfig
from anticipax.models import hf_import

TEXT_MODEL_DIR = "text_model"


def _workdir_model(workdir: str):
  path = paths.path(workdir) / TEXT_MODEL_DIR
  if not (path / "bert_config.json").is_file():
    raise FileNotFoundError(f"config key text.init_workdir: {path} has no bert_config.json "
                            "(is it the workdir of a finished MLM or teacher run?)")
  return path


def load_tokenizer(text_cfg):
  if text_cfg.get("init_workdir"):
    return hf_import.load_tokenizer(paths.local_copy(_workdir_model(text_cfg.init_workdir) / "tokenizer"))
  source = text_cfg.get("tokenizer") or text_cfg.get("pretrained")
  if not source:
    raise ValueError("config key text.tokenizer: a text model from scratch needs a tokenizer")
  return hf_import.load_tokenizer(source)


def bert_config(text_cfg, tokenizer) -> BertConfig:
  """The encoder architecture for `config.text`."""
  dtype = jnp.dtype(text_cfg.get("dtype", "float32"))
  if text_cfg.get("init_workdir"):
    fields = json.loads((_workdir_model(text_cfg.init_workdir) / "bert_config.json").read_text())
    return BertConfig(**{**fields, "dtype": dtype})
  if text_cfg.get("pretrained"):
    model_dir = hf_import.resolve_model_dir(text_cfg.pretrained)
    return BertConfig.from_hf_dict(json.loads((paths.path(model_dir) / "config.json").read_text()), dtype=dtype)
  return BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, dtype=dtype,
                    **dict(text_cfg.scratch))


def restore_params(workdir: str) -> dict[str, Any]:
  """The parameters of an anticipax run's latest checkpoint (as numpy-backed arrays)."""
  return checkpointing.restore(workdir, None, "latest")[1]["params"]


def pretrained_params(text_cfg, *, with_mlm_head: bool) -> dict[str, Any] | None:
  """Starting weights: `{"encoder": ...}` (plus `"mlm_head"` if asked and available), or None."""
  if text_cfg.get("init_workdir"):
    params = restore_params(text_cfg.init_workdir)
    keep = ("encoder", "mlm_head") if with_mlm_head else ("encoder",)
    return {k: v for k, v in params.items() if k in keep}
  if text_cfg.get("pretrained"):
    if with_mlm_head and not hf_import.has_mlm_head(text_cfg.pretrained):
      logging.warning("%s has no masked-LM head: the encoder is loaded, the head starts from scratch.",
                      text_cfg.pretrained)
      _, params = hf_import.load_hf_bert(text_cfg.pretrained)
      return {"encoder": params}
    _, params = hf_import.load_hf_bert(text_cfg.pretrained, with_mlm_head=with_mlm_head)
    return dict(params) if with_mlm_head else {"encoder": params}
  return None


def save(workdir: str, config: BertConfig, tokenizer) -> None:
  """Writes `workdir/text_model/` so later runs can start from this one (`text.init_workdir`)."""
  path = paths.path(workdir) / TEXT_MODEL_DIR
  fields = {k: v for k, v in dataclasses.asdict(config).items() if k != "dtype"}
  paths.write_text(path / "bert_config.json", json.dumps(fields, indent=2))
  with tempfile.TemporaryDirectory() as scratch:  # Hugging Face writes to a local folder only
    tokenizer.save_pretrained(scratch)
    paths.copy_tree(scratch, path / "tokenizer")


class HistoryText:
  """Host-side: an example's action history -> token ids of its text (shared by teacher and student)."""

  def __init__(self, text_cfg, info, tokenizer):
    self.vocab = action_text.ActionVocab(verb_names=info.verb_names, noun_names=info.noun_names,
                                         actions=np.asarray(info.actions))
    self.tokenizer = tokenizer
    self.max_len = int(text_cfg.max_len)
    self.hist_len = int(text_cfg.hist_len)
    self.template = text_cfg.get("template", "{verb} <v> {noun}")
    self.separator = text_cfg.get("separator", " <a> ")

  def __call__(self, history) -> dict[str, np.ndarray]:
    text = action_text.history_text(np.asarray(history).tolist(), self.vocab, hist_len=self.hist_len,
                                    template=self.template, separator=self.separator)
    tokens = action_text.tokenize(self.tokenizer, [text], self.max_len)
    return {k: v[0] for k, v in tokens.items()}
