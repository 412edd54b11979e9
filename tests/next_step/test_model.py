"""Tests for anticipax.next_step.model: outputs, causality over steps, pretrained BERT placement, sharding,
and greedy / beam decoding of every state through anticipax.next_step.decoding."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from anticipax.models.bert import BertEncoder
from anticipax.models import hf_import
from anticipax.next_step import decoding
from anticipax.next_step.model import build_next_step_model, masked_mean, with_pretrained_text_encoder
from anticipax import sharding
from configs import common
from tests.axis_names import assert_every_parameter_has_ruled_axis_names
from tests.next_step.test_decoder import random_params

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(__file__)), "models", "golden")
B, S, F, IN_DIM, LI, L, T, V, DIM, PROJ = 2, 3, 4, 6, 3, 6, 5, 13, 16, 8
EOS = 2


def _cfg(pooling="mean", dtype="float32", copy_ingredients=0):
  return ml_collections.ConfigDict({
      "dim": DIM, "num_heads": 4, "dropout": 0.0, "dtype": dtype, "proj_dim": PROJ,
      "visual": {"num_layers": 1, "max_frames": F, "pooling": pooling},
      "text": {"pooling": pooling},
      "temporal": {"num_layers": 1, "max_steps": S},
      "decoder": {"num_layers": 1, "max_len": L, "tie_embeddings": True, "copy_ingredients": copy_ingredients},
  })


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  frame_mask = np.ones((B, S, F), bool)
  frame_mask[0, 1, 2:] = False  # a step with fewer frames
  return {
      "step_features": jnp.asarray(rng.normal(size=(B, S, F, IN_DIM)), jnp.float32),
      "frame_mask": jnp.asarray(frame_mask),
      "has_video": jnp.asarray([[True, True, False], [True, True, True]]),
      "step_tokens": jnp.asarray(rng.integers(1, 100, (B, S, T)), jnp.int32),
      "step_attention": jnp.asarray(np.arange(T) < np.array([[5, 3, 4], [2, 5, 5]])[..., None], jnp.int32),
      "ingredient_ids": jnp.asarray([[3, 4, 0], [5, 6, 7]], jnp.int32),
      "step_mask": jnp.asarray([[1, 1, 1], [1, 1, 0]], jnp.int32),
  }


def _targets(seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(3, V, (B, S, L)), jnp.int32)


# Copying is checked in the fast tier by test_copying_ingredients_changes_only_the_word_distributions...;
# every test again with the copying decoder is the slow tier.
@pytest.fixture(scope="module", params=[0, pytest.param(LI, marks=pytest.mark.slow)],
                ids=["generate", "copy_ingredients"])
def visual(request):
  """(model, variables, forward): forward(variables, inputs, targets) is the jitted apply, compiled once; the
  decoder generates words only, or can also copy the recipe's ingredient words (`decoder.copy_ingredients`)."""
  model = build_next_step_model(_cfg(copy_ingredients=request.param), vocab_size=V, modality="visual")
  assert model.copy_ingredients == bool(request.param)
  forward = jax.jit(lambda v, x, t: model.apply(v, x, t))
  # Seeds whose random decoders end some sentences (EOS) early and others not: the decoding test needs both.
  params = random_params(model, _inputs(), _targets(), seed=9 if request.param else 2)
  if model.copy_ingredients:  # a gate that mostly generates, so that some sentences end (EOS) and some not
    params["decoder"]["copy_gate"] = {"kernel": 0.1 * params["decoder"]["copy_gate"]["kernel"],
                                      "bias": jnp.full((1,), -3.0)}
  return model, {"params": params}, forward




@pytest.mark.parametrize("pooling, dtype", [("mean", "float32"), ("cls", "bfloat16")])
def test_visual_model_outputs_and_axis_names(pooling, dtype):
  model = build_next_step_model(_cfg(pooling, dtype), vocab_size=V, modality="visual")
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), _inputs(), _targets()))
  outputs, aux = jax.eval_shape(lambda v: model.apply(v, _inputs(), _targets()), variables)
  assert outputs["logits"].shape == (B, S, L, V) and outputs["logits"].dtype == jnp.float32
  assert aux["states"].shape == (B, S, DIM) and aux["projected"].shape == (B, S, PROJ)
  assert aux["states"].dtype == aux["projected"].dtype == jnp.float32
  assert {x.dtype for x in jax.tree.leaves(nn.unbox(variables))} == {jnp.dtype(jnp.float32)}
  params = variables["params"]
  assert set(params) == {"step_encoder", "ingredient_encoder", "temporal", "decoder", "projection"}
  assert ("cls" in params["step_encoder"]) == (pooling == "cls")
  assert params["temporal"]["wpe"].value.shape == (S + 1, DIM)
  assert_every_parameter_has_ruled_axis_names(params, extra_names=("vocab",))
  states = jax.eval_shape(lambda v: model.apply(v, _inputs(), method="encode"), variables)
  assert states.shape == (B, S, DIM)
  for width in (1, 2):  # decoding traces in both dtypes (the while loops' carries keep their types)
    tokens, scores = jax.eval_shape(
        lambda v: decoding.generate(model, v, _inputs(), eos_id=EOS, max_len=L, width=width), variables)
    assert tokens.shape == (B, S, L) and scores.shape == (B, S) and scores.dtype == jnp.float32


def test_text_model_holds_a_pretrained_bert_under_step_encoder_encoder():
  config, bert_params = hf_import.load_hf_bert(os.path.join(GOLDEN, "tiny_bert"))
  model = build_next_step_model(_cfg(), vocab_size=V, modality="text", bert_config=config)
  inputs, targets = _inputs(), _targets()
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), inputs, targets))
  outputs, aux = jax.eval_shape(lambda v: model.apply(v, inputs, targets), variables)
  assert outputs["logits"].shape == (B, S, L, V) and aux["projected"].shape == (B, S, PROJ)
  params = random_params(model, inputs, targets)
  boxed = jax.tree.map(lambda box, x: box.replace_boxed(x), variables["params"], params,
                       is_leaf=lambda x: isinstance(x, nn.Partitioned))
  loaded = with_pretrained_text_encoder(boxed, bert_params)
  assert isinstance(loaded["step_encoder"]["encoder"]["layers_0"]["mlp"]["fc"]["kernel"], nn.Partitioned)
  jax.tree.map(np.testing.assert_array_equal, nn.unbox(loaded)["step_encoder"]["encoder"], bert_params)
  jax.tree.map(np.testing.assert_array_equal, nn.unbox(loaded)["decoder"], params["decoder"])

  # The step vectors are sentence-transformers' mean pooling of the loaded BERT, projected.
  @jax.jit
  def steps_and_expected(variables):
    steps = model.apply(variables, inputs, method=lambda m, x: m.step_encoder(x, deterministic=True))
    ids, attention = inputs["step_tokens"].reshape(-1, T), inputs["step_attention"].reshape(-1, T)
    hidden, _ = BertEncoder(config).apply({"params": bert_params}, ids, attention)
    proj = params["step_encoder"]["proj"]
    return steps.reshape(-1, DIM), masked_mean(hidden, attention) @ proj["kernel"] + proj["bias"]

  steps, expected = steps_and_expected({"params": nn.unbox(loaded)})
  np.testing.assert_allclose(steps, expected, atol=1e-5)

  bad = jax.tree.map(lambda x: x, bert_params)
  bad["layers_0"]["mlp"]["fc"]["kernel"] = bad["layers_0"]["mlp"]["fc"]["kernel"][:, :3]
  del bad["embeddings"]["layer_norm"]
  with pytest.raises(ValueError, match=r"missing embeddings/layer_norm/bias.*layers_0/mlp/fc/kernel: shape"):
    with_pretrained_text_encoder(boxed, bad)


def test_states_and_logits_see_only_earlier_steps(visual):
  _, variables, apply = visual

  def forward(inputs):
    return apply(variables, inputs, _targets())

  base = _inputs()
  out, aux = forward(base)
  assert float(jnp.std(out["logits"])) > 0.5

  # Step 1's frames: predictions of steps 0 and 1 (states 0, 1) unchanged, step 2's changed.
  changed = {**base, "step_features": base["step_features"].at[:, 1].add(1.0)}
  out2, aux2 = forward(changed)
  for name, a, b in (("states", aux["states"], aux2["states"]), ("projected", aux["projected"], aux2["projected"]),
                     ("logits", out["logits"], out2["logits"])):
    np.testing.assert_allclose(b[:, :2], a[:, :2], atol=1e-6, err_msg=name)
    assert not np.allclose(b[:, 2], a[:, 2], atol=1e-4), name

  # Ingredients are seen from state 0 on; the other recipe of the batch is untouched.
  out3, aux3 = forward({**base, "ingredient_ids": base["ingredient_ids"].at[0, 0].set(9)})
  assert not np.allclose(aux3["states"][0, 0], aux["states"][0, 0], atol=1e-4)
  np.testing.assert_allclose(out3["logits"][1], out["logits"][1], atol=1e-6)

  # Recipe 0's last step has no video: its frames (and padded frames elsewhere) are never read.
  hidden = base["step_features"].at[0, 2].set(5.0).at[0, 1, 3].set(-5.0)
  out4, aux4 = forward({**base, "step_features": hidden})
  np.testing.assert_allclose(aux4["states"], aux["states"], atol=1e-6)
  np.testing.assert_allclose(out4["logits"], out["logits"], atol=1e-6)


def test_sharded_apply_on_a_data_by_tensor_mesh_matches_unsharded(visual):
  model, variables, forward = visual
  inputs, targets = _inputs(), _targets()
  expected, expected_aux = forward(variables, inputs, targets)

  rules = sharding.rules_from_config(common.base_config().logical_axis_rules)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 1, "tensor": 4})
  with mesh, nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), inputs, targets))
    shardings = nn.unbox(sharding.logical_shardings(abstract, mesh, rules))["params"]
    params = jax.device_put(variables["params"], shardings)
    batch = {k: jax.device_put(x, sharding.batch_sharding(mesh, x.ndim)) for k, x in inputs.items()}
    targets = jax.device_put(targets, sharding.batch_sharding(mesh, targets.ndim))
    outputs, aux = jax.jit(lambda v, x, t: model.apply(v, x, t))({"params": params}, batch, targets)
  fc = params["decoder"]["blocks_0"]["mlp"]["fc"]["kernel"]
  assert fc.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
  assert len(fc.sharding.device_set) == 8
  np.testing.assert_allclose(outputs["logits"], expected["logits"], atol=1e-5)
  np.testing.assert_allclose(aux["projected"], expected_aux["projected"], atol=1e-5)


def test_greedy_and_beam_decoding_of_every_state(visual):
  model, variables, forward = visual
  inputs = _inputs()

  @jax.jit
  def decode(variables, inputs):
    return {(width, use_cache): decoding.generate(model, variables, inputs, eos_id=EOS, max_len=L, width=width,
                                                  use_cache=use_cache)
            for width, use_cache in ((1, True), (1, False), (3, True))}

  results = decode(variables, inputs)
  greedy, greedy_scores = results[1, True]
  beam, beam_scores = results[3, True]
  assert greedy.shape == beam.shape == (B, S, L) and greedy_scores.shape == beam_scores.shape == (B, S)
  np.testing.assert_array_equal(results[1, False][0], greedy)
  np.testing.assert_allclose(results[1, False][1], greedy_scores, atol=1e-5)
  assert len({tuple(np.asarray(t)) for t in greedy.reshape(B * S, L)}) > 1  # states decode differently
  assert np.any(greedy == EOS) and not np.all(np.any(greedy == EOS, axis=-1))  # some end early, some not

  # Decoding agrees with teacher forcing: fed back as targets, a decoded sentence gets its decoded score.
  # For the beam this also checks that the key/value cache followed the beams it was reordered with.
  for tokens, scores in ((greedy, greedy_scores), (beam, beam_scores)):
    outputs, _ = forward(variables, inputs, tokens)
    log_probs = jnp.take_along_axis(jax.nn.log_softmax(outputs["logits"]), tokens[..., None], -1)[..., 0]
    ended = jnp.cumsum(tokens == EOS, axis=-1) - (tokens == EOS)  # 0 up to and including the first EOS
    np.testing.assert_allclose(jnp.sum(jnp.where(ended == 0, log_probs, 0.0), -1), scores, atol=1e-4)


def test_copying_ingredients_changes_only_the_word_distributions_and_points_at_the_recipes_words():
  model = build_next_step_model(_cfg(copy_ingredients=LI), vocab_size=V, modality="visual")
  params = random_params(model, _inputs(), _targets(), seed=2)
  forward = jax.jit(lambda m, p: m.apply({"params": p}, _inputs(), _targets()), static_argnums=0)
  out, aux = forward(model, params)
  plain = build_next_step_model(_cfg(), vocab_size=V, modality="visual")
  generator = {**params, "decoder": {k: v for k, v in params["decoder"].items() if not k.startswith("copy_")}}
  out2, aux2 = forward(plain, generator)
  np.testing.assert_allclose(aux2["states"], aux["states"], atol=1e-6)
  assert not np.allclose(jax.nn.log_softmax(out2["logits"]), out["logits"], atol=1e-3)
  # With the gate open every step of recipe b names only b's ingredient words (0 is padding in recipe 0).
  gate = {**params, "decoder": {**params["decoder"], "copy_gate": {**params["decoder"]["copy_gate"],
                                                                   "bias": jnp.full((1,), 30.0)}}}
  probs = np.exp(np.asarray(forward(model, gate)[0]["logits"]))
  np.testing.assert_allclose(probs[0][..., [3, 4]].sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probs[1][..., [5, 6, 7]].sum(-1), 1.0, atol=1e-5)
