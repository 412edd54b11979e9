"""Writes the golden reference files for tests/models/test_vit.py from HF's PyTorch `ViTModel`.

Tooling only: it needs torch and transformers' PyTorch models, which anticipax never imports. It writes
(under --out, default tests/models/golden/tiny_vit/):
  config.json, model.safetensors   a random ViT (image 32, patch 8, hidden 64, 2 layers, 4 heads, MLP 128,
                                   seed 0) with its pooler, as `ViTModel.save_pretrained` writes it.
  golden.npz                       for each case in CASES: `{case}_pixels` [2, H, W, 3] (NHWC, the layout
                                   anticipax reads) and `{case}_last_hidden_state` [2, 1 + N, 64] (after the
                                   final LayerNorm; token 0 is the class token); for the resized cases also
                                   `{case}_pos_embedding` [1 + N, 64], HF's bicubic `interpolate_pos_encoding`.
The resized cases run HF with `interpolate_pos_encoding=True`, so they pin down our position-embedding
resampling when a checkpoint is loaded at another image size (up, non-square and down).

Regenerate (from the repository root; torch 2.13.0 is the CPU build on local disk, other versions download
gigabytes). Installing into a side directory leaves the project's venv without torch:
  pip install --no-deps --target /tmp/torchlib torch==2.13.0 sympy mpmath networkx jinja2 markupsafe
  PYTHONPATH=/tmp/torchlib python tools/make_vit_golden.py
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import transformers

CONFIG = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
              num_attention_heads=4, intermediate_size=128, hidden_act="gelu")
# case -> (height, width): the checkpoint's own size, a larger non-square one and a smaller one.
CASES = {"native": (32, 32), "up": (48, 40), "down": (24, 24)}


def make_tiny(out: str) -> None:
  """A random tiny ViT checkpoint and its outputs on random (already normalised) pixels."""
  torch.manual_seed(0)
  model = transformers.ViTModel(transformers.ViTConfig(**CONFIG)).eval()
  with torch.no_grad():
    # HF initialises LayerNorms to 1/0 and biases to 0; noise makes a swapped or dropped tensor visible.
    for p in model.parameters():
      p.add_(0.1 * torch.randn_like(p))
  os.makedirs(out, exist_ok=True)
  model.save_pretrained(out)

  golden = {}
  for case, (h, w) in CASES.items():
    pixels = torch.randn(2, CONFIG["num_channels"], h, w)
    resized = (h, w) != (CONFIG["image_size"],) * 2
    with torch.no_grad():
      hidden = model(pixels, interpolate_pos_encoding=resized).last_hidden_state
      if resized:
        n = (h // CONFIG["patch_size"]) * (w // CONFIG["patch_size"])
        dummy = torch.zeros(1, 1 + n, CONFIG["hidden_size"])
        golden[f"{case}_pos_embedding"] = model.embeddings.interpolate_pos_encoding(dummy, h, w)[0].numpy()
    golden[f"{case}_pixels"] = pixels.permute(0, 2, 3, 1).numpy()
    golden[f"{case}_last_hidden_state"] = hidden.numpy()
  np.savez_compressed(os.path.join(out, "golden.npz"), **{k: v.astype(np.float32) for k, v in golden.items()})


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default=os.path.join("tests", "models", "golden", "tiny_vit"))
  args = parser.parse_args()
  make_tiny(args.out)
  for f in sorted(os.listdir(args.out)):
    print(f"{os.path.getsize(os.path.join(args.out, f)):>8}  {os.path.join(args.out, f)}")


if __name__ == "__main__":
  main()
