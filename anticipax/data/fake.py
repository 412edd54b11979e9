"""In-memory random anticipation examples: for benchmarks and tests that need no dataset on disk."""

from __future__ import annotations

import numpy as np

from anticipax.data.pipeline import DatasetInfo, Splits


def random_splits(*, num_train: int, num_eval: int, num_frames: int, feature_dim: int, num_classes: int,
                  num_verbs: int, num_nouns: int, seed: int = 0) -> Splits:
  """Random features and labels with a fixed random action -> (verb, noun) map."""
  rng = np.random.default_rng(seed)
  actions = np.stack([rng.integers(0, num_verbs, num_classes), rng.integers(0, num_nouns, num_classes)], 1)
  actions = actions.astype(np.int32)

  def examples(n):
    out = []
    for _ in range(n):
      action = int(rng.integers(num_classes))
      past = rng.integers(-1, num_classes, num_frames).astype(np.int32)
      out.append({"features": rng.standard_normal((num_frames, feature_dim)).astype(np.float32),
                  "past_actions": past, "action": np.int32(action),
                  "verb": actions[action, 0], "noun": actions[action, 1]})
    return out

  info = DatasetInfo(num_classes=num_classes, num_verbs=num_verbs, num_nouns=num_nouns, actions=actions,
                     feature_dim=feature_dim, num_frames=num_frames)
  return Splits(train=examples(num_train), eval=examples(num_eval), info=info)
