"""Tests for anticipax.models.convert: the name-map conversion both checkpoint importers run."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax.models import convert

# A Linear in PyTorch layout ([out, in] weight) for our Dense ([in, out] kernel), with a tied bias alias.
NAME_MAP = {
    ("dense", "kernel"): (["fc.weight"], lambda w, ctx: w.T),
    ("dense", "bias"): (["fc.bias", "fc.bias_copy"], lambda b, ctx: b * ctx),
}
SHAPES = {("dense", "kernel"): (3, 2), ("dense", "bias"): (2,)}


def _tensors(**extra):
  return {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "fc.bias": np.ones(2, np.float32), **extra}


def test_maps_converts_and_passes_the_context():
  params = convert.to_params(_tensors(), NAME_MAP, SHAPES, what="test checkpoint", context=3.0)
  np.testing.assert_array_equal(params["dense"]["kernel"], np.arange(6).reshape(2, 3).T)
  np.testing.assert_array_equal(params["dense"]["bias"], [3.0, 3.0])


def test_lists_every_problem_with_the_names_in_the_file():
  tensors = {"model.fc.weight": np.zeros((2, 4), np.float32), "model.extra": np.zeros(5), "model.pooler": 0}
  original = {k.removeprefix("model."): k for k in tensors}
  with pytest.raises(ValueError) as e:
    convert.to_params({k.removeprefix("model."): v for k, v in tensors.items()}, NAME_MAP, SHAPES,
                      what="test checkpoint", original=original, ignored=[r"^pooler$"], problems=["untied: x"])
  msg = str(e.value)
  assert msg.startswith("test checkpoint does not match the model (4 problems):")
  assert "mis-shaped: model.fc.weight -> dense/kernel: expected (3, 2) vs got (4, 2) (checkpoint (2, 4))" in msg
  assert "missing: fc.bias -> dense/bias: expected (2,)" in msg
  assert "unexpected: model.extra (5,)" in msg and "untied: x" in msg
  assert "pooler" not in msg  # ignored on purpose


def test_aliases_are_tied_copies_or_alternative_layouts():
  same = _tensors(**{"fc.bias_copy": np.ones(2, np.float32)})
  convert.to_params(same, NAME_MAP, SHAPES, what="t", context=1.0, tied_aliases=True)  # agreeing copy: used
  with pytest.raises(ValueError, match=r"conflicting: fc.bias_copy differs from fc.bias \(both map to dense/bias\)"):
    convert.to_params(_tensors(**{"fc.bias_copy": np.zeros(2, np.float32)}), NAME_MAP, SHAPES, what="t",
                      context=1.0, tied_aliases=True)
  with pytest.raises(ValueError, match=r"\(1 problems\):\n  unexpected: fc.bias_copy \(2,\)"):
    convert.to_params(same, NAME_MAP, SHAPES, what="t", context=1.0)  # a second layout is not loaded


def test_a_name_map_out_of_sync_with_the_module_is_a_bug():
  with pytest.raises(AssertionError, match="name map out of sync"):
    convert.to_params(_tensors(), NAME_MAP, {**SHAPES, ("dense", "scale"): (2,)}, what="t", context=1.0)


def test_split_heads_and_abstract_shapes():
  x = np.arange(24).reshape(2, 12)
  assert convert.split_heads(x, -1, 3).shape == (2, 3, 4)
  assert convert.split_heads(x, 1, 5).shape == (2, 12)  # does not divide: left for the shape check
  shapes = convert.abstract_shapes(nn.Dense(5), jnp.zeros((1, 3)))
  assert shapes == {("kernel",): (3, 5), ("bias",): (5,)}
