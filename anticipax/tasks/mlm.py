"""Masked-LM domain pretraining of the text encoder on a line-by-line corpus (BERT recipe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from anticipax.data import action_text
from anticipax.data import buckets
from anticipax.data import datasets
from anticipax.data.errors import DataError
from anticipax.data.pipeline import Splits
from anticipax.data import synthetic_kitchen
from anticipax.models.bert import BertForMaskedLM
from anticipax.tasks import base
from anticipax import text_encoders


def mask_tokens(rng: jax.Array, input_ids: jax.Array, maskable: jax.Array, *, mask_id: int, vocab_size: int,
                rate: float = 0.15, draw_len: int = 0) -> tuple[jax.Array, jax.Array]:
  """BERT masking: each maskable token is selected with probability `rate`; a selected token becomes
  [MASK] 80 % of the time, a random token 10 %, and stays itself 10 %.

  Args:
    rng: key.
    input_ids: [B, T] token ids.
    maskable: [B, T] bool, False for padding and special tokens.
    draw_len: if > T, the random draws are made for [B, draw_len] and cut to T, so a batch cut to a
      length bucket gets the masks it would have had at its full padded length.

  Returns:
    (corrupted ids, selected [B, T] bool: the positions the loss predicts).
  """
  select_rng, kind_rng, token_rng = jax.random.split(rng, 3)
  length = input_ids.shape[-1]
  shape = (*input_ids.shape[:-1], max(draw_len, length))
  selected = maskable & (jax.random.uniform(select_rng, shape)[..., :length] < rate)
  kind = jax.random.uniform(kind_rng, shape)[..., :length]
  random_ids = jax.random.randint(token_rng, shape, 0, vocab_size)[..., :length]
  corrupted = jnp.where(kind < 0.8, mask_id, jnp.where(kind < 0.9, random_ids, input_ids))
  return jnp.where(selected, corrupted, input_ids), selected


class MlmTask(base.Task):
  """Line-by-line MLM; evaluation masks held-out lines deterministically (per line index)."""

  train_keys = ("input_ids", "attention_mask")
  eval_keys = train_keys

  @classmethod
  def load_data(cls, config) -> Splits:
    """Corpus lines: `data.corpus`, or the corpus `synthetic_kitchen` writes beside itself."""
    path = config.data.get("corpus")
    if not path and config.data.name == "synthetic_kitchen":
      path = str(synthetic_kitchen.corpus_path(datasets.builder(config.data)))
    if not path:
      raise DataError("config key data.corpus: no text corpus given (one document per line)")
    lines = action_text.read_corpus(path)
    num_eval = max(1, int(len(lines) * config.data.get("eval_fraction", 0.05)))
    return Splits(train=lines[num_eval:], eval=lines[:num_eval])

  def __init__(self, config, splits):
    super().__init__(config, splits)
    self.tokenizer = text_encoders.load_tokenizer(config.text)
    self.bert_config = text_encoders.bert_config(config.text, self.tokenizer)
    self.model = BertForMaskedLM(self.bert_config)
    self.max_len = int(config.text.max_len)
    self.padded_keys = ("input_ids", "attention_mask")
    self.length_buckets = buckets.bucket_lengths(self.max_len, config.text.get("length_buckets", "auto"))
    special = [self.tokenizer.pad_token_id, self.tokenizer.cls_token_id, self.tokenizer.sep_token_id]
    self.special_ids = np.array([i for i in special if i is not None], np.int32)
    self.mask_id = self.tokenizer.mask_token_id
    self.rate = float(config.get("mlm", {}).get("mask_rate", 0.15))

  @property
  def train_metric_names(self):
    return ("loss", "accuracy", "masked_fraction")

  def preprocess(self, line):
    tokens = action_text.tokenize(self.tokenizer, [line], self.max_len)
    return {k: v[0] for k, v in tokens.items()}

  def dummy_batch(self, batch_size, eval=False):  # pylint: disable=redefined-builtin
    del eval
    return {k: np.zeros((batch_size, self.max_len), np.int32) for k in self.train_keys}

  def init(self, rng, batch):
    return self.model.init({"params": rng}, batch["input_ids"], batch["attention_mask"])["params"]

  def pretrained_params(self):
    return text_encoders.pretrained_params(self.config.text, with_mlm_head=True)

  def _maskable(self, batch):
    return (batch["attention_mask"] > 0) & ~jnp.isin(batch["input_ids"], self.special_ids)

  def _mask(self, rng, ids, maskable):
    return mask_tokens(rng, ids, maskable, mask_id=self.mask_id, vocab_size=self.bert_config.vocab_size,
                       rate=self.rate, draw_len=self.max_len)

  def _nll(self, params, batch, corrupted, selected, rngs=None):
    logits, _ = self.model.apply({"params": params}, corrupted, batch["attention_mask"], train=bool(rngs),
                                 rngs=rngs or {})
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["input_ids"])
    correct = jnp.argmax(logits, -1) == batch["input_ids"]
    return nll, correct, selected.astype(jnp.float32)

  def loss_fn(self, params, batch, rng, frozen):
    del frozen
    mask_rng, dropout_rng = jax.random.split(rng)
    corrupted, selected = self._mask(mask_rng, batch["input_ids"], self._maskable(batch))
    nll, correct, w = self._nll(params, batch, corrupted, selected, {"dropout": dropout_rng})
    count = jnp.maximum(w.sum(), 1.0)
    loss = (nll * w).sum() / count
    return loss, {"loss": loss, "accuracy": (correct * w).sum() / count,
                  "masked_fraction": w.sum() / jnp.maximum(batch["attention_mask"].sum(), 1)}

  def predict(self, params, batch, frozen):
    del frozen
    # The same masks at every evaluation: one key per line index.
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(batch["index"])
    corrupted, selected = jax.vmap(self._mask)(keys, batch["input_ids"], self._maskable(batch))
    nll, correct, w = self._nll(params, batch, corrupted, selected)
    return {"nll": (nll * w).sum(-1), "correct": (correct * w).sum(-1), "count": w.sum(-1)}

  def evaluate(self, outputs, source=None):
    del source  # the counts travel with the outputs
    count = max(float(outputs["count"].sum()), 1.0)
    nll = float(outputs["nll"].sum()) / count
    return {"mlm/loss": nll, "mlm/perplexity": float(np.exp(nll)),
            "mlm/accuracy": float(outputs["correct"].sum()) / count}

  def finalize(self, trainer, state, workdir):
    del trainer, state
    text_encoders.save(workdir, self.bert_config, self.tokenizer)
