"""Import of Hugging Face BERT / RoBERTa / DistilBERT checkpoints (config.json + *.safetensors, no torch).

The name map is data, not code per family: `_LAYER` and `_HEAD` list, for each of our modules, the HF
module that holds its weights in each family, and `_CONVERT` says how a kind of module's tensors are
laid out in ours (Linear weights are [out, in] in PyTorch and [in, out] here; attention projections are
split into heads). `models.convert.to_params` (shared with the ViT importer) applies the map, checks every
tensor against the shapes of `jax.eval_shape(model.init)` and reports all problems together in one
ValueError.
"""

from __future__ import annotations

import glob
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from anticipax import paths
from anticipax.models import convert
from anticipax.models.bert import BertConfig, BertEncoder, BertForMaskedLM

# What snapshot_download fetches: config, weights and every tokenizer file the three families use.
HUB_PATTERNS = ("config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
                "sentencepiece.bpe.model")

# Checkpoint tensors that are deliberately not loaded.
IGNORED = (
    r"(^|\.)position_ids$",      # buffers: arange(max_positions), recomputed by the module
    r"(^|\.)token_type_ids$",    # buffer: zeros, the module's default
    r"^pooler\.",                # pooler (tanh dense on [CLS]): unused, we expose aux["cls"] instead
    r"^cls\.seq_relationship\.",  # BERT's next-sentence-prediction head
)
# MLM head tensors, ignored when importing the encoder alone.
_HEAD_PREFIXES = ("cls.predictions.", "lm_head.", "vocab_transform.", "vocab_layer_norm.", "vocab_projector.")
# Decoder weights tied to the word embedding: not loaded, but must equal it (an untied head would be lost).
_TIED_DECODERS = ("cls.predictions.decoder.weight", "lm_head.decoder.weight", "vocab_projector.weight")
_MODEL_PREFIXES = ("bert.", "roberta.", "distilbert.")

# RoBERTa reuses BERT's module names.
_NAMING = {"bert": "bert", "roberta": "bert", "distilbert": "distilbert"}
_LAYER_PREFIX = {"bert": "encoder.layer.{i}.", "distilbert": "transformer.layer.{i}."}
_EMBEDDINGS = {  # our module under embeddings/ -> (kind, HF module)
    "word_embeddings": ("embed", "embeddings.word_embeddings"),
    "position_embeddings": ("embed", "embeddings.position_embeddings"),
    "token_type_embeddings": ("embed", "embeddings.token_type_embeddings"),
    "layer_norm": ("norm", "embeddings.LayerNorm"),
}
_LAYER = {  # our module under layers_{i}/ -> (kind, {naming: HF module under the layer prefix})
    "attention/query": ("qkv", {"bert": "attention.self.query", "distilbert": "attention.q_lin"}),
    "attention/key": ("qkv", {"bert": "attention.self.key", "distilbert": "attention.k_lin"}),
    "attention/value": ("qkv", {"bert": "attention.self.value", "distilbert": "attention.v_lin"}),
    "attention/out": ("out", {"bert": "attention.output.dense", "distilbert": "attention.out_lin"}),
    "attention_norm": ("norm", {"bert": "attention.output.LayerNorm", "distilbert": "sa_layer_norm"}),
    "mlp/fc": ("linear", {"bert": "intermediate.dense", "distilbert": "ffn.lin1"}),
    "mlp/proj": ("linear", {"bert": "output.dense", "distilbert": "ffn.lin2"}),
    "output_norm": ("norm", {"bert": "output.LayerNorm", "distilbert": "output_layer_norm"}),
}
_HEAD = {  # our module under mlm_head/ -> (kind, {family: HF module or tensor names, first one preferred})
    "transform": ("linear", {"bert": ["cls.predictions.transform.dense"], "roberta": ["lm_head.dense"],
                             "distilbert": ["vocab_transform"]}),
    "layer_norm": ("norm", {"bert": ["cls.predictions.transform.LayerNorm"], "roberta": ["lm_head.layer_norm"],
                            "distilbert": ["vocab_layer_norm"]}),
    # HF ties decoder.bias to the head's bias; safetensors keeps one or both names.
    "bias": ("tensor", {"bert": ["cls.predictions.bias", "cls.predictions.decoder.bias"],
                        "roberta": ["lm_head.bias", "lm_head.decoder.bias"],
                        "distilbert": ["vocab_projector.bias"]}),
}
# kind -> {our leaf: (HF tensor suffix, conversion(tensor, num_heads))}.
_CONVERT = {
    "embed": {"embedding": ("weight", lambda w, n: w)},
    "norm": {"scale": ("weight", lambda w, n: w), "bias": ("bias", lambda b, n: b)},
    "linear": {"kernel": ("weight", lambda w, n: w.T), "bias": ("bias", lambda b, n: b)},
    "qkv": {"kernel": ("weight", lambda w, n: convert.split_heads(w.T, -1, n)),
            "bias": ("bias", lambda b, n: convert.split_heads(b, 0, n))},
    "out": {"kernel": ("weight", lambda w, n: convert.split_heads(w.T, 0, n)), "bias": ("bias", lambda b, n: b)},
    "tensor": {"": ("", lambda t, n: t)},
}


def _normalize(name: str) -> str:
  """Strips the base-model prefix and renames old TF-era LayerNorm.gamma/beta to weight/bias."""
  for prefix in _MODEL_PREFIXES:
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  return re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", name))


def _name_map(config: BertConfig, with_mlm_head: bool) -> dict[tuple[str, ...], tuple[list[str], Any]]:
  """Our param path -> (HF tensor names, first preferred; conversion), for every param of the model."""
  naming = _NAMING[config.family]
  modules = []  # (our module path, kind, HF module names)
  for ours, (kind, hf) in _EMBEDDINGS.items():
    if ours == "token_type_embeddings" and not config.type_vocab_size:
      continue
    modules.append((("embeddings", ours), kind, [hf]))
  for i in range(config.num_layers):
    prefix = _LAYER_PREFIX[naming].format(i=i)
    for ours, (kind, hf) in _LAYER.items():
      modules.append((("layers_" + str(i), *ours.split("/")), kind, [prefix + hf[naming]]))
  if with_mlm_head:
    modules = [(("encoder", *path), kind, hf) for path, kind, hf in modules]
    for ours, (kind, hf) in _HEAD.items():
      modules.append((("mlm_head", ours), kind, hf[config.family]))
  out = {}
  for path, kind, hf_modules in modules:
    for leaf, (suffix, fn) in _CONVERT[kind].items():
      names = [f"{m}.{suffix}" if suffix else m for m in hf_modules]
      out[(*path, leaf) if leaf else path] = (names, fn)
  return out


def expected_shapes(config: BertConfig, *, with_mlm_head: bool = False) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Param path -> shape of the model `load_hf_bert` builds, from an abstract init (no FLOPs, no memory)."""
  model = BertForMaskedLM(config) if with_mlm_head else BertEncoder(config)
  return convert.abstract_shapes(model, jnp.zeros((1, 2), jnp.int32))


def convert_hf_state_dict(tensors: dict[str, np.ndarray], config: BertConfig, *,
                          with_mlm_head: bool = False) -> dict[str, Any]:
  """Maps an HF state dict (numpy) onto our param tree.

  Args:
    tensors: HF tensor name -> array, with or without the `bert.`/`roberta.`/`distilbert.` prefix.
    config: the architecture (its family selects the names).
    with_mlm_head: build the params of `BertForMaskedLM` instead of `BertEncoder`.

  Returns:
    The nested param dict (the contents of the "params" collection), numpy arrays.

  Raises:
    ValueError: listing every missing, unexpected, mis-shaped or untied tensor.
  """
  original = {_normalize(k): k for k in tensors}  # errors name tensors as they are in the file
  tensors = {_normalize(k): v for k, v in tensors.items()}
  problems = []
  if with_mlm_head:  # tied decoders are not loaded: one that differs from the word embedding would be lost
    word = tensors.get("embeddings.word_embeddings.weight")
    for name in _TIED_DECODERS:
      if name in tensors and word is not None and not (
          tensors[name].shape == word.shape and np.array_equal(tensors[name], word)):
        problems.append(f"untied: {original[name]} differs from the word embedding; only tied MLM heads are "
                        "supported")
    ignored = IGNORED + tuple(f"^{re.escape(name)}$" for name in _TIED_DECODERS)
  else:  # the encoder alone: the MLM head's tensors are not loaded
    ignored = IGNORED + tuple(f"^{re.escape(prefix)}" for prefix in _HEAD_PREFIXES)
  return convert.to_params(
      tensors, _name_map(config, with_mlm_head), expected_shapes(config, with_mlm_head=with_mlm_head),
      what=f"{config.family} checkpoint", context=config.num_heads, original=original, ignored=ignored,
      tied_aliases=True, problems=problems)


def resolve_model_dir(path_or_name: str) -> str:
  """A local model directory as is; otherwise a Hub repo id, downloaded (config, weights, tokenizer only).

  Args:
    path_or_name: a directory holding config.json and *.safetensors, or a Hub id such as "bert-base-uncased".

  Returns:
    The local directory.
  """
  if paths.is_remote(path_or_name):  # e.g. gs://bucket/bert-base-uncased: staged to local scratch
    return paths.local_copy(path_or_name)
  path = os.path.expanduser(os.fspath(path_or_name))
  if os.path.isdir(path):
    return path
  if os.path.exists(path):
    raise ValueError(f"{path} is a file; expected a model directory (config.json + *.safetensors)")
  from huggingface_hub import snapshot_download  # pylint: disable=g-import-not-at-top
  return snapshot_download(str(path_or_name), allow_patterns=list(HUB_PATTERNS))


def load_hf_bert(path_or_name: str, *, with_mlm_head: bool = False, dtype: Any = jnp.float32,
                 param_dtype: Any = jnp.float32) -> tuple[BertConfig, dict[str, Any]]:
  """Loads an HF BERT / RoBERTa / XLM-R / DistilBERT checkpoint.

  Args:
    path_or_name: local model directory (config.json + *.safetensors) or Hub repo id.
    with_mlm_head: also load the masked-LM head (params for `BertForMaskedLM`, else for `BertEncoder`).
    dtype: computation dtype written into the returned config.
    param_dtype: dtype of the returned parameters.

  Returns:
    `(config, params)`; use as `BertEncoder(config).apply({"params": params}, ids, mask)`.

  Raises:
    FileNotFoundError: no config.json or no .safetensors file in the directory.
    ValueError: the checkpoint's tensors do not match the model (all problems listed).
  """
  hf_config, tensors = convert.read_hf_dir(resolve_model_dir(path_or_name))
  config = BertConfig.from_hf_dict(hf_config, dtype=dtype)
  params = convert_hf_state_dict(tensors, config, with_mlm_head=with_mlm_head)
  return config, jax.tree.map(lambda x: jnp.asarray(x, param_dtype), params)


def has_mlm_head(path_or_name: str) -> bool:
  """Whether a checkpoint holds masked-LM head tensors (sentence-embedding checkpoints such as
  all-MiniLM-L6-v2 keep the encoder only). Reads tensor names, not values."""
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top
  for file in sorted(glob.glob(os.path.join(resolve_model_dir(path_or_name), "*.safetensors"))):
    with safe_open(file, "numpy") as f:
      if any(_normalize(k).startswith(_HEAD_PREFIXES) for k in f.keys()):
        return True
  return False


def load_tokenizer(path_or_name: str):
  """The checkpoint's tokenizer via `transformers.AutoTokenizer` (a local directory works offline)."""
  from transformers import AutoTokenizer  # pylint: disable=g-import-not-at-top
  if paths.is_remote(path_or_name):
    path_or_name = paths.local_copy(path_or_name)
  path = os.path.expanduser(os.fspath(path_or_name))
  return AutoTokenizer.from_pretrained(path if os.path.isdir(path) else str(path_or_name))
