"""EPIC-Kitchens action-anticipation challenge submissions (DATA_FORMATS.md section 4).

Two challenge formats, told apart by the supervision levels: EK55's (`"version": "0.1"`, no levels) and
EK100's (`"version": "0.2"` with `sls_pt`, `sls_tl`, `sls_td`, each 0..5; the official
`evaluate_anticipation_json_ek100.py` accepts only 0.2 and refuses a file without the three levels).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import json

import numpy as np

from anticipax import metrics
from anticipax import paths

EK55_VERSION, EK100_VERSION = "0.1", "0.2"
SUPERVISION_LEVELS = ("sls_pt", "sls_tl", "sls_td")  # pretraining, training labels, training data


def epic_submission(uids: Sequence[str], action_logits: np.ndarray, actions: np.ndarray, *, num_verbs: int,
                    num_nouns: int, top_actions: int = 100, verb_logits: np.ndarray | None = None,
                    noun_logits: np.ndarray | None = None,
                    supervision_levels: Mapping[str, int] | None = None) -> dict:
  """Builds the challenge JSON object.

  Verb and noun scores are the action probabilities summed through the action -> (verb, noun) map
  (or the softmax of separate verb/noun logits when given). Every verb and noun is listed; actions are
  the `top_actions` most probable, keyed "verb,noun".

  Args:
    uids: segment uids, one per row.
    action_logits: [N, A].
    actions: [A, 2] action id -> (verb id, noun id).
    num_verbs / num_nouns: vocabulary sizes.
    top_actions: actions listed per segment (the challenge asks for 100).
    verb_logits / noun_logits: optional [N, V] / [N, M] from dedicated heads.
    supervision_levels: EK100's self-reported levels, e.g. {"sls_pt": 1, "sls_tl": 4, "sls_td": 3}: given,
      the file is an EK100 submission (version 0.2); None, an EK55 one (version 0.1).

  Raises:
    ValueError: mismatched or duplicate uids, or supervision levels other than the three, each 0..5.
  """
  if len(uids) != len(action_logits):
    raise ValueError(f"{len(uids)} uids for {len(action_logits)} rows of scores")
  if len(set(uids)) != len(uids):
    raise ValueError("duplicate uids in the submission")
  probs = metrics.softmax(np.asarray(action_logits, np.float64))
  verbs = (metrics.softmax(verb_logits) if verb_logits is not None
           else metrics.marginalize(probs, actions[:, 0], num_verbs))
  nouns = (metrics.softmax(noun_logits) if noun_logits is not None
           else metrics.marginalize(probs, actions[:, 1], num_nouns))
  k = min(top_actions, probs.shape[1])
  top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
  action_keys = [f"{v},{n}" for v, n in actions]
  results = {}
  for i, uid in enumerate(uids):
    results[str(uid)] = {
        "verb": {str(v): float(s) for v, s in enumerate(verbs[i])},
        "noun": {str(n): float(s) for n, s in enumerate(nouns[i])},
        "action": {action_keys[a]: float(probs[i, a]) for a in top[i]},
    }
  if supervision_levels is None:
    return {"version": EK55_VERSION, "challenge": "action_anticipation", "results": results}
  return {"version": EK100_VERSION, "challenge": "action_anticipation", **_levels(supervision_levels),
          "results": results}


def _levels(levels: Mapping[str, int]) -> dict[str, int]:
  """The three EK100 supervision levels as ints in 0..5, or a ValueError naming what is wrong."""
  if set(levels) != set(SUPERVISION_LEVELS):
    raise ValueError(f"supervision_levels: expected exactly {', '.join(SUPERVISION_LEVELS)}, "
                     f"got {', '.join(sorted(levels)) or 'none'}")
  out = {}
  for key in SUPERVISION_LEVELS:
    value = levels[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 5:
      raise ValueError(f"supervision_levels.{key}: {value!r} is not an integer level 0..5")
    out[key] = int(value)
  return out


def write_json_atomically(obj, path: str) -> None:
  """Writes `obj` as JSON to `path` (local or gs://), so no half-written file is ever left."""
  paths.write_text(path, json.dumps(obj))
