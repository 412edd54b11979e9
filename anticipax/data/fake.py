"""In-memory random anticipation examples: for benchmarks and tests that need no dataset on disk."""

from __future__ import annotations

import numpy as np

from anticipax.data.pipeline import DatasetInfo, Splits


def random_splits(*, num_train: int, num_eval: int, num_frames: int, feature_dim: int, num_classes: int,
                  num_verbs: int, num_nouns: int, seed: int = 0) -> Splits:
  """Random features, labels and histories with a fixed random action -> (verb, noun) map.

  Examples have the fields of the prepared datasets: uid ("train_3"), history, features [T, D],
  past_actions [T], action, verb, noun.
  """
  rng = np.random.default_rng(seed)
  actions = np.stack([rng.integers(0, num_verbs, num_classes), rng.integers(0, num_nouns, num_classes)], 1)
  actions = actions.astype(np.int32)

  def examples(split, n):
    out = []
    for i in range(n):
      action = int(rng.integers(num_classes))
      past = rng.integers(-1, num_classes, num_frames).astype(np.int32)
      out.append({"uid": f"{split}_{i}", "history": rng.integers(0, num_classes, 4).astype(np.int32),
                  "features": rng.standard_normal((num_frames, feature_dim)).astype(np.float32),
                  "past_actions": past, "action": np.int32(action),
                  "verb": actions[action, 0], "noun": actions[action, 1]})
    return out

  info = DatasetInfo(num_classes=num_classes, num_verbs=num_verbs, num_nouns=num_nouns, actions=actions,
                     feature_dim=feature_dim, num_frames=num_frames,
                     action_names=tuple(f"verb{v} noun{n}" for v, n in actions),
                     verb_names=tuple(f"verb{v}" for v in range(num_verbs)),
                     noun_names=tuple(f"noun{n}" for n in range(num_nouns)))
  return Splits(train=examples("train", num_train), eval=examples("eval", num_eval), info=info)
