"""Tests for anticipax.next_step.decoder: shapes, axis names, dtypes, masks, and cache == teacher forcing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax.next_step.decoder import TransformerDecoder
from tests.axis_names import assert_every_parameter_has_ruled_axis_names

N, L, M, MEM_DIM, V, DIM, HEADS = 3, 6, 2, 8, 11, 16, 4


def _decoder(**kw):
  return TransformerDecoder(**{"vocab_size": V, "dim": DIM, "num_layers": 2, "num_heads": HEADS, "max_len": L,
                               **kw})


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  tokens = jnp.asarray(rng.integers(0, V, (N, L)), jnp.int32)
  memory = jnp.asarray(rng.normal(size=(N, M, MEM_DIM)), jnp.float32)
  memory_mask = jnp.array([[True, True], [True, False], [False, True]])
  return tokens, memory, memory_mask


def random_params(model, *args, seed=0, scale=0.5, **kwargs):
  """Parameters of `model.init(*args)`: weights drawn from N(0, scale^2) with numpy, biases 0, LN scales 1.

  Far from the near-uniform outputs of the real initialisation, so argmax decisions are not near-ties and
  equality tests have teeth; and nothing but the model itself is compiled (tests stay fast on few CPUs).
  """
  abstract = nn.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))["params"])
  rng = np.random.default_rng(seed)

  def draw(path, x):
    name = jax.tree_util.keystr(path[-1:])
    if "bias" in name or "scale" in name:
      return jnp.full(x.shape, 1.0 if "scale" in name else 0.0, x.dtype)
    return jnp.asarray(scale * rng.normal(size=x.shape), x.dtype)

  return jax.tree_util.tree_map_with_path(draw, abstract)


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_shapes_and_logical_axis_names(tie):
  model = _decoder(tie_embeddings=tie)
  tokens, memory, memory_mask = _inputs()
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, memory, memory_mask))
  params = variables["params"]
  assert_every_parameter_has_ruled_axis_names(params, extra_names=("vocab",))
  assert params["embed"]["embedding"].value.shape == (V, DIM)
  assert params["embed"]["embedding"].names == ("vocab", "embed")
  assert params["wpe"].value.shape == (L, DIM)
  assert params["blocks_1"]["cross_attn"]["key"]["kernel"].value.shape == (MEM_DIM, HEADS, DIM // HEADS)
  assert params["blocks_0"]["self_attn"]["query"]["kernel"].names == ("embed", "heads", "kv")
  assert ("out" in params) == (not tie)
  if not tie:
    assert params["out"]["kernel"].value.shape == (DIM, V)
  logits, aux = jax.eval_shape(lambda v: model.apply(v, tokens, memory, memory_mask), variables)
  assert logits.shape == (N, L, V) and logits.dtype == jnp.float32
  assert aux["hidden"].shape == (N, L, DIM)


def test_bfloat16_computes_in_bf16_with_float32_params_logits_and_log_probs():
  model = _decoder(dtype=jnp.bfloat16)
  tokens, memory, memory_mask = _inputs()
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, memory, memory_mask))
  assert {x.dtype for x in jax.tree.leaves(nn.unbox(variables))} == {jnp.dtype(jnp.float32)}
  logits, aux = jax.eval_shape(lambda v: model.apply(v, tokens, memory, memory_mask), variables)
  assert logits.dtype == jnp.float32 and aux["hidden"].dtype == jnp.bfloat16
  cache = jax.eval_shape(lambda v: model.apply(v, memory, memory_mask, method="init_cache"), variables)
  assert cache["layers"][0]["self_k"].dtype == jnp.bfloat16
  log_probs, _ = jax.eval_shape(lambda v, c: model.apply(v, tokens, c, 0, method="step"), variables, cache)
  assert log_probs.shape == (N, V) and log_probs.dtype == jnp.float32


def _source():
  """Tokens to copy from [N, C]: row 1 with a padded slot, row 2 with nothing to copy."""
  ids = jnp.array([[4, 7, 9], [5, 5, 0], [1, 2, 3]], jnp.int32)
  return ids, jnp.array([[True, True, True], [True, True, False], [False, False, False]])


@pytest.mark.parametrize("copy", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["generate", "copy"])
def test_incremental_decoding_with_the_cache_equals_teacher_forcing(copy):
  model = _decoder(copy_positions=4 if copy else 0)
  tokens, memory, memory_mask = _inputs()
  source = dict(zip(("copy_ids", "copy_mask"), _source())) if copy else {}
  variables = {"params": random_params(model, tokens, memory, memory_mask, **source)}

  @jax.jit
  def run(tokens, memory, memory_mask):
    """Teacher-forced log-probs and those of `step` / `step_uncached`, position by position: [N, L, V] each."""
    logits, _ = model.apply(variables, tokens, memory, memory_mask, **source)
    cache = model.apply(variables, memory, memory_mask, **source, method="init_cache")
    no_cache = model.apply(variables, memory, memory_mask, use_cache=False, **source, method="init_cache")

    def one(cache, i):
      log_probs, cache = model.apply(variables, tokens, cache, i, method="step")
      return cache, (log_probs, model.apply(variables, tokens, no_cache, i, method="step_uncached")[0])

    cache, (cached, uncached) = jax.lax.scan(one, cache, jnp.arange(L))
    return jax.nn.log_softmax(logits, axis=-1), cached.swapaxes(0, 1), uncached.swapaxes(0, 1), cache

  expected, cached, uncached, cache = run(tokens, memory, memory_mask)
  assert cache["layers"][0]["self_k"].shape == (N, L, HEADS, DIM // HEADS)
  np.testing.assert_allclose(cached, expected, atol=1e-5, rtol=1e-5)
  np.testing.assert_allclose(uncached, expected, atol=1e-5, rtol=1e-5)
  assert float(jnp.std(expected)) > 0.5  # far from uniform: the check has teeth


def test_copying_mixes_a_pointer_over_the_source_into_the_word_distribution():
  tokens, memory, memory_mask = _inputs()
  ids, mask = _source()
  model, plain = _decoder(copy_positions=4), _decoder()
  params = random_params(model, tokens, memory, memory_mask, copy_ids=ids, copy_mask=mask)
  forward = jax.jit(lambda p, i, m: model.apply({"params": p}, tokens, memory, memory_mask, copy_ids=i,
                                                copy_mask=m)[0])
  out = forward(params, ids, mask)
  # Normalized log-probabilities, so every consumer's log_softmax leaves them as they are.
  np.testing.assert_allclose(jax.scipy.special.logsumexp(out, axis=-1), 0.0, atol=1e-5)
  # A row with nothing to copy is the generator alone: the same as a decoder without copying.
  generator = {k: v for k, v in params.items() if not k.startswith("copy_")}
  expected = jax.nn.log_softmax(plain.apply({"params": generator}, tokens, memory, memory_mask)[0])
  np.testing.assert_allclose(out[2], expected[2], atol=1e-5)
  assert not np.allclose(out[:2], expected[:2], atol=1e-3)
  # A masked source slot is not copied: its token may be anything.
  np.testing.assert_allclose(forward(params, ids.at[1, 2].set(8), mask), out, atol=1e-6)
  # With the gate open, all the mass is on the source tokens, spread by the pointer's attention.
  gate = {**params, "copy_gate": {**params["copy_gate"], "bias": jnp.full((1,), 30.0)}}
  probs = np.exp(np.asarray(forward(gate, ids, mask)))
  np.testing.assert_allclose(probs[0][:, [4, 7, 9]].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probs[1][:, 5], 1.0, atol=1e-5)  # copied from two slots, one word
  assert probs[0][:, [4, 7, 9]].max() < 0.999  # the pointer attends, it does not pick one slot blindly


def test_copying_needs_its_source_and_refuses_a_longer_one():
  tokens, memory, memory_mask = _inputs()
  model = _decoder(copy_positions=2)
  with pytest.raises(ValueError, match="pass copy_ids"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, memory, memory_mask))
  with pytest.raises(ValueError, match="3 source tokens exceed the decoder's copy_positions 2"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), tokens, memory, memory_mask, copy_ids=_source()[0]))


def test_positions_see_only_earlier_tokens_and_only_unmasked_memory():
  model = _decoder()
  tokens, memory, memory_mask = _inputs()
  variables = {"params": random_params(model, tokens, memory, memory_mask)}
  forward = jax.jit(lambda t, m: model.apply(variables, t, m, memory_mask)[0])
  logits = forward(tokens, memory)
  changed = forward(tokens.at[:, 3].set((tokens[:, 3] + 1) % V), memory)
  np.testing.assert_allclose(changed[:, :3], logits[:, :3], atol=1e-6)
  assert not np.allclose(changed[:, 3:], logits[:, 3:], atol=1e-3)
  # Row 1 masks memory slot 1 and row 2 slot 0: changing those slots changes nothing.
  np.testing.assert_allclose(forward(tokens, memory.at[1, 1].set(7.0).at[2, 0].set(-7.0)), logits, atol=1e-6)
  assert not np.allclose(forward(tokens, memory.at[0, 1].set(7.0))[0], logits[0], atol=1e-3)


def test_dropout_only_in_training():
  model = _decoder(dropout=0.5, num_layers=1)
  tokens, memory, memory_mask = _inputs()
  variables = {"params": random_params(model, tokens, memory, memory_mask)}

  @jax.jit
  def forward(key):
    train = model.apply(variables, tokens, memory, memory_mask, deterministic=False, rngs={"dropout": key})[0]
    return train, model.apply(variables, tokens, memory, memory_mask)[0]

  train_1, eval_1 = forward(jax.random.key(1))
  train_1b, _ = forward(jax.random.key(1))
  train_2, eval_2 = forward(jax.random.key(2))
  np.testing.assert_array_equal(train_1, train_1b)
  assert not np.allclose(train_1, train_2, atol=1e-5)
  assert not np.allclose(train_1, eval_1, atol=1e-5)
  np.testing.assert_array_equal(eval_1, eval_2)


def test_too_long_inputs_are_refused():
  model = _decoder()
  tokens, memory, memory_mask = _inputs()
  with pytest.raises(ValueError, match="max_len"):
    jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((N, L + 1), jnp.int32), memory, memory_mask))
