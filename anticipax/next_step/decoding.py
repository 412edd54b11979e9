"""Greedy and beam-search decoding over a step function; pure JAX, jittable, batched over rows.

The model is seen only through
  step_fn(tokens [N, max_len] int32, cache, index) -> (log_probs [N, V] float32, cache)
where `tokens` are the decoder inputs so far: column 0 holds BOS, column t > 0 the token generated at
step t - 1, and columns > index are padding. A cached step function reads only `tokens[:, index]` and
keeps the rest in `cache`; an uncached one recomputes the prefix. Every leaf of `cache` must have the rows
N as its leading axis: beam search repeats each row `width` times and reorders rows by beam with a gather.
`TransformerDecoder.step` / `step_uncached` (and the `NextStepModel.decode_*` methods) fit this interface.

Both searches stop early once no row can change its result, and return tokens [N, max_len]: the generated
tokens without BOS, the EOS included, `pad_id` after it (a row that never emits EOS fills all max_len).

Typical use, jitted:
  tokens, scores = jax.jit(functools.partial(generate, model, eos_id=2, max_len=20, width=4))(variables, inputs)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
from jax import lax
import jax.numpy as jnp

StepFn = Callable[[jax.Array, Any, jax.Array], tuple[jax.Array, Any]]
# Large but finite, so that sums and ratios of dead hypotheses stay ordered and never produce NaN.
NEG_INF = -1.0e7


def _num_rows(cache: Any) -> int:
  leaves = jax.tree.leaves(cache)
  if not leaves:
    raise ValueError("cache has no arrays; it needs at least one leaf [N, ...] that gives the number of rows")
  return leaves[0].shape[0]


def _decoder_inputs(generated: jax.Array, bos_id: int) -> jax.Array:
  """Generated tokens [N, L] -> decoder inputs [N, L]: BOS, then the generated tokens shifted right."""
  return jnp.concatenate([jnp.full_like(generated[:, :1], bos_id), generated[:, :-1]], axis=1)


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
  """GNMT length penalty ((5 + length) / 6) ** alpha (Wu et al. 2016); alpha = 0 gives 1."""
  return ((5.0 + length) / 6.0) ** alpha


def greedy_decode(step_fn: StepFn, cache: Any, *, bos_id: int, eos_id: int, max_len: int,
                  pad_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Picks the most likely token at every step.

  Args:
    step_fn: see the module docstring.
    cache: initial cache; leaves [N, ...].
    bos_id: first decoder input.
    eos_id: ends a row.
    max_len: most generated tokens (EOS included).
    pad_id: written after EOS.

  Returns:
    `(tokens [N, max_len] int32, scores [N] float32)`: scores are the summed log-probabilities of the
    generated tokens (EOS included).
  """
  rows = _num_rows(cache)

  def cond(state):
    index, _, finished, _, _ = state
    return (index < max_len) & ~jnp.all(finished)

  def body(state):
    index, tokens, finished, scores, cache = state
    log_probs, cache = step_fn(_decoder_inputs(tokens, bos_id), cache, index)
    token = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
    token_log_prob = jnp.take_along_axis(log_probs, token[:, None], axis=-1)[:, 0]
    scores = scores + jnp.where(finished, 0.0, token_log_prob.astype(jnp.float32))
    token = jnp.where(finished, pad_id, token)
    tokens = lax.dynamic_update_slice(tokens, token[:, None], (0, index))
    return index + 1, tokens, finished | (token == eos_id), scores, cache

  init = (jnp.int32(0), jnp.full((rows, max_len), pad_id, jnp.int32), jnp.zeros((rows,), bool),
          jnp.zeros((rows,), jnp.float32), cache)
  _, tokens, _, scores, _ = lax.while_loop(cond, body, init)
  return tokens, scores


def _gather_beams(x: jax.Array, beam: jax.Array) -> jax.Array:
  """x [N, K, ...], beam [N, J] int -> x[n, beam[n, j]] of shape [N, J, ...]."""
  return jax.vmap(lambda xs, idx: xs[idx])(x, beam)


def beam_search(step_fn: StepFn, cache: Any, *, bos_id: int, eos_id: int, max_len: int, width: int,
                alpha: float = 0.0, pad_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Beam search keeping `width` live and `width` finished hypotheses per row.

  A hypothesis's score is its summed log-probability divided by `length_penalty(length, alpha)`; alpha = 0
  ranks by the plain sum. Hypotheses still alive after max_len tokens count as finished.

  Args:
    step_fn: see the module docstring.
    cache: initial cache for the N rows; leaves [N, ...] (repeated to [N * width, ...] here).
    bos_id: first decoder input.
    eos_id: ends a hypothesis.
    max_len: most generated tokens (EOS included).
    width: beam width (>= 1).
    alpha: GNMT length-penalty exponent, >= 0.
    pad_id: written after EOS.

  Returns:
    `(tokens [N, max_len] int32, scores [N] float32)`: the best finished hypothesis of every row and its
    score.
  """
  if width < 1:
    raise ValueError(f"beam width must be >= 1, got {width}")
  if alpha < 0:
    raise ValueError(f"length penalty alpha must be >= 0, got {alpha}")
  rows = _num_rows(cache)
  cache = jax.tree.map(lambda x: jnp.repeat(x, width, axis=0), cache)  # row n's beams: n * width + j
  # Only beam 0 is live at the start, so the first step does not pick `width` copies of one token.
  alive_log_probs = jnp.tile(jnp.asarray([0.0] + [NEG_INF] * (width - 1), jnp.float32), (rows, 1))
  best_possible_penalty = length_penalty(jnp.float32(max_len), alpha)

  def cond(state):
    index, _, alive_log_probs, _, finished_scores, _ = state
    # Log-probabilities only fall as a hypothesis grows, and the penalty is largest at max_len: a live
    # hypothesis cannot end above alive / penalty(max_len).
    best_alive = jnp.max(alive_log_probs, axis=1) / best_possible_penalty
    done = jnp.max(finished_scores, axis=1) >= best_alive
    return (index < max_len) & ~jnp.all(done)

  def body(state):
    index, alive, alive_log_probs, finished, finished_scores, cache = state
    inputs = _decoder_inputs(alive.reshape(rows * width, max_len), bos_id)
    log_probs, cache = step_fn(inputs, cache, index)
    vocab = log_probs.shape[-1]
    candidates = alive_log_probs[:, :, None] + log_probs.reshape(rows, width, vocab).astype(jnp.float32)
    # 2 * width candidates: even if `width` of them end with EOS, `width` remain to stay alive.
    top_log_probs, top_index = lax.top_k(candidates.reshape(rows, width * vocab), 2 * width)
    top_beam, top_token = top_index // vocab, (top_index % vocab).astype(jnp.int32)
    top_seqs = _gather_beams(alive, top_beam)
    top_seqs = lax.dynamic_update_slice(top_seqs, top_token[:, :, None], (0, 0, index))
    ended = top_token == eos_id

    alive_log_probs, keep = lax.top_k(jnp.where(ended, NEG_INF, top_log_probs), width)
    alive = _gather_beams(top_seqs, keep)
    source = jnp.arange(rows)[:, None] * width + _gather_beams(top_beam, keep)
    cache = jax.tree.map(lambda x: x[source.reshape(-1)], cache)

    ended = ended | (index == max_len - 1)
    scores = jnp.where(ended, top_log_probs / length_penalty(index + 1.0, alpha), NEG_INF)
    finished_scores, keep = lax.top_k(jnp.concatenate([finished_scores, scores], axis=1), width)
    finished = _gather_beams(jnp.concatenate([finished, top_seqs], axis=1), keep)
    return index + 1, alive, alive_log_probs, finished, finished_scores, cache

  empty = jnp.full((rows, width, max_len), pad_id, jnp.int32)
  init = (jnp.int32(0), empty, alive_log_probs, empty, jnp.full((rows, width), NEG_INF, jnp.float32), cache)
  _, _, _, finished, finished_scores, _ = lax.while_loop(cond, body, init)
  return finished[:, 0], finished_scores[:, 0]


def generate(model, variables: Mapping[str, Any], inputs: Mapping[str, jax.Array],
             step_mask: jax.Array | None = None, *, eos_id: int, max_len: int, width: int = 1,
             alpha: float = 0.0, use_cache: bool = True, bos_id: int | None = None,
             pad_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Generates the next step's sentence from every state of a `NextStepModel`, all B * S at once.

  Args:
    model: a NextStepModel (anything with its `decode_init`, `decode_step`, `decode_step_uncached`).
    variables: its variables ({"params": ...}).
    inputs: the model's inputs (see NextStepModel.encode); `step_mask` [B, S] is read from them if not given.
    step_mask: [B, S], 1 for real steps.
    eos_id: ends a sentence.
    max_len: most generated tokens, at most the decoder's max_len.
    width: beam width; 1 decodes greedily.
    alpha: length penalty of the beam search.
    use_cache: incremental decoding with the key/value cache; False recomputes the prefix every step.
    bos_id: first decoder input; default the model's `bos_id` (the one teacher forcing used).
    pad_id: written after EOS.

  Returns:
    `(tokens [B, S, max_len] int32, scores [B, S] float32)`; row s decodes from state s (steps < s seen).
  """
  step_mask = inputs["step_mask"] if step_mask is None else step_mask
  batch, steps = step_mask.shape
  bos_id = model.bos_id if bos_id is None else bos_id
  cache = model.apply(variables, inputs, step_mask, length=max_len, use_cache=use_cache, method="decode_init")
  method = "decode_step" if use_cache else "decode_step_uncached"

  def step_fn(tokens, cache, index):
    return model.apply(variables, tokens, cache, index, method=method)

  kw = dict(bos_id=bos_id, eos_id=eos_id, max_len=max_len, pad_id=pad_id)
  if width == 1:
    tokens, scores = greedy_decode(step_fn, cache, **kw)
  else:
    tokens, scores = beam_search(step_fn, cache, width=width, alpha=alpha, **kw)
  return tokens.reshape(batch, steps, max_len), scores.reshape(batch, steps)
