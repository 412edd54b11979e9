"""The text teacher: a BERT-family encoder whose [CLS] state predicts the next action."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from anticipax.models.bert import BertConfig, BertEncoder
from anticipax.models.layers import dense


class TextClassifier(nn.Module):
  """BertEncoder -> [CLS] -> dropout -> action (and verb, noun) logits.

  Attributes:
    config: the encoder architecture.
    num_classes: next-action classes.
    num_verbs / num_nouns: extra heads (0 = off).
    dropout: dropout on the [CLS] state before the heads.

  Returns from __call__: `(outputs, aux)`; outputs has `logits` [B, C] (+ `verb_logits`, `noun_logits`),
  aux has `cls` [B, H], the teacher feature used by contrastive distillation.
  """

  config: BertConfig
  num_classes: int
  num_verbs: int = 0
  num_nouns: int = 0
  dropout: float = 0.1

  @nn.compact
  def __call__(self, input_ids: jax.Array, attention_mask: jax.Array, *, train: bool = False
               ) -> tuple[dict[str, jax.Array], dict[str, Any]]:
    _, aux = BertEncoder(self.config, name="encoder")(input_ids, attention_mask, train=train)
    cls = aux["cls"]
    h = nn.Dropout(self.dropout)(cls, deterministic=not train)

    def head(n, name):
      return dense(n, ("embed", "classes"), dtype=self.config.dtype, name=name)(h).astype(jnp.float32)

    outputs = {"logits": head(self.num_classes, "action_head")}
    if self.num_verbs:
      outputs["verb_logits"] = head(self.num_verbs, "verb_head")
    if self.num_nouns:
      outputs["noun_logits"] = head(self.num_nouns, "noun_head")
    return outputs, {"cls": cls.astype(jnp.float32)}
