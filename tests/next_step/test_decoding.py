"""Tests for anticipax.next_step.decoding on hand-made step functions (the real decoder: tests/models/test_instructional)."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from anticipax.next_step import decoding

PAD, BOS, EOS, A, B = 0, 1, 2, 3, 4


def _markov_step_fn(probs):
  """A first-order model: the next token's distribution is `probs[last input token]` ([V, V])."""
  log_table = jnp.log(jnp.maximum(jnp.asarray(probs, jnp.float32), 1e-12))

  def step_fn(tokens, cache, index):
    return log_table[tokens[:, index]], cache

  return step_fn


def _table(rows):
  """{input token: {next token: probability}} -> [5, 5]; unlisted inputs always emit EOS."""
  probs = np.zeros((5, 5), np.float32)
  probs[:, EOS] = 1.0
  for token, nexts in rows.items():
    probs[token] = 0.0
    for nxt, p in nexts.items():
      probs[token, nxt] = p
  return probs


# Greedy takes A (0.6) and then must end with P(EOS | A) = 0.4: 0.24 in all. B first is less likely (0.4),
# but B EOS has 0.4 * 0.9 = 0.36.
GREEDY_TRAP = _table({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.4, A: 0.3, B: 0.3}, B: {EOS: 0.9, A: 0.05, B: 0.05}})
ROWS = {"rows": jnp.zeros((2,))}  # step functions above keep no state; the cache only gives N


def test_greedy_takes_the_most_likely_token_at_every_step():
  tokens, scores = decoding.greedy_decode(_markov_step_fn(GREEDY_TRAP), ROWS, bos_id=BOS, eos_id=EOS, max_len=4)
  np.testing.assert_array_equal(tokens, [[A, EOS, PAD, PAD]] * 2)
  np.testing.assert_allclose(scores, [np.log(0.24)] * 2, rtol=1e-6)


@pytest.mark.parametrize("width", [2, 3])
def test_beam_search_finds_the_more_likely_sentence_that_greedy_misses(width):
  tokens, scores = decoding.beam_search(_markov_step_fn(GREEDY_TRAP), ROWS, bos_id=BOS, eos_id=EOS, max_len=4,
                                        width=width)
  np.testing.assert_array_equal(tokens, [[B, EOS, PAD, PAD]] * 2)
  np.testing.assert_allclose(scores, [np.log(0.4) + np.log(0.9)] * 2, atol=1e-5)
  # Width 1 is greedy.
  tokens, scores = decoding.beam_search(_markov_step_fn(GREEDY_TRAP), ROWS, bos_id=BOS, eos_id=EOS, max_len=4,
                                        width=1)
  np.testing.assert_array_equal(tokens, [[A, EOS, PAD, PAD]] * 2)
  np.testing.assert_allclose(scores, [np.log(0.24)] * 2, rtol=1e-6)


def test_length_penalty_favours_longer_sentences_as_alpha_grows():
  # "EOS" alone: log 0.5 = -0.693. "A EOS": log 0.45 = -0.799, / ((5 + 2) / 6) = -0.685 with alpha = 1.
  step_fn = _markov_step_fn(_table({BOS: {EOS: 0.5, A: 0.5}, A: {EOS: 0.9, B: 0.1}}))
  search = functools.partial(decoding.beam_search, step_fn, ROWS, bos_id=BOS, eos_id=EOS, max_len=4, width=2)
  tokens, scores = search(alpha=0.0)
  np.testing.assert_array_equal(tokens[0], [EOS, PAD, PAD, PAD])
  np.testing.assert_allclose(scores[0], np.log(0.5), atol=1e-6)
  tokens, scores = search(alpha=1.0)
  np.testing.assert_array_equal(tokens[0], [A, EOS, PAD, PAD])
  np.testing.assert_allclose(scores[0], np.log(0.45) / (7 / 6), atol=1e-6)


def test_search_stops_as_soon_as_no_row_can_change():
  calls = []

  def counting(step_fn):
    def wrapped(tokens, cache, index):
      jax.debug.callback(lambda i: calls.append(int(i)), index)
      return step_fn(tokens, cache, index)
    return wrapped

  step_fn = counting(_markov_step_fn(GREEDY_TRAP))
  jax.block_until_ready(jax.jit(lambda c: decoding.greedy_decode(step_fn, c, bos_id=BOS, eos_id=EOS,
                                                                 max_len=20))(ROWS))
  assert calls == [0, 1]
  calls.clear()
  # After step 1, "B EOS" (0.36) beats every live hypothesis (at most 0.18): no further step is taken.
  jax.block_until_ready(jax.jit(lambda c: decoding.beam_search(step_fn, c, bos_id=BOS, eos_id=EOS, max_len=20,
                                                               width=2))(ROWS))
  assert calls == [0, 1]


# A second-order model with one random table per row: log P(next | previous input, current input).
V2 = 5


def _tables(rows, seed):
  logits = 2.0 * np.random.default_rng(seed).normal(size=(rows, V2, V2, V2))
  logits[..., EOS] -= 2.0  # long enough sentences that the previous token (and so the cache) matters
  return np.asarray(jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1))


def _cached_step(tokens, cache, index):
  """Keeps the previous input in the cache: wrong if the cache is not reordered with the beams."""
  current = tokens[:, index]
  log_probs = cache["table"][jnp.arange(tokens.shape[0]), cache["previous"], current]
  return log_probs, {**cache, "previous": current}


def _uncached_step(tokens, cache, index):
  """Reads the previous input back from the tokens."""
  current = tokens[:, index]
  previous = jnp.where(index > 0, tokens[:, jnp.maximum(index - 1, 0)], 0)
  return cache["table"][jnp.arange(tokens.shape[0]), previous, current], cache


def _caches(tables):
  tables = jnp.asarray(tables)
  return ({"table": tables, "previous": jnp.zeros(tables.shape[0], jnp.int32)}, {"table": tables})


def _score(table, tokens, alpha):
  """Summed log-probability of one decoded row (up to its EOS) / length penalty, in numpy."""
  tokens = list(tokens)
  length = tokens.index(EOS) + 1 if EOS in tokens else len(tokens)
  inputs = [BOS] + tokens[:length - 1]
  total = sum(table[inputs[i - 1] if i else 0, inputs[i], tokens[i]] for i in range(length))
  return total / ((5 + length) / 6) ** alpha


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_wide_beam_equals_exhaustive_search(alpha):
  max_len, tables = 3, _tables(2, seed=0)
  # Width 16 keeps every live hypothesis here: 4 non-EOS tokens, then 16 two-token prefixes.
  tokens, scores = jax.jit(lambda c: decoding.beam_search(_cached_step, c, bos_id=BOS, eos_id=EOS,
                                                          max_len=max_len, width=16, alpha=alpha))(_caches(tables)[0])
  for row, table in enumerate(tables):
    candidates = []
    for length in range(1, max_len + 1):
      for seq in itertools.product(range(V2), repeat=length):
        if EOS in seq[:-1] or (length < max_len and seq[-1] != EOS):
          continue
        padded = list(seq) + [PAD] * (max_len - length)
        candidates.append((_score(table, padded, alpha), padded))
    best_score, best = max(candidates)
    np.testing.assert_array_equal(tokens[row], best)
    np.testing.assert_allclose(scores[row], best_score, atol=1e-5)


@pytest.mark.parametrize("width", [1, 3])
def test_cached_equals_uncached_and_rows_decode_independently(width):
  max_len, tables = 6, _tables(3, seed=1)
  cached, uncached = _caches(tables)

  @functools.partial(jax.jit, static_argnums=0)
  def decode(step_fn, cache):
    if width == 1:
      return decoding.greedy_decode(step_fn, cache, bos_id=BOS, eos_id=EOS, max_len=max_len)
    return decoding.beam_search(step_fn, cache, bos_id=BOS, eos_id=EOS, max_len=max_len, width=width)

  tokens, scores = decode(_cached_step, cached)
  tokens_uncached, scores_uncached = decode(_uncached_step, uncached)
  np.testing.assert_array_equal(tokens, tokens_uncached)
  np.testing.assert_allclose(scores, scores_uncached, atol=1e-6)
  assert tokens.shape == (3, max_len) and scores.shape == (3,)
  for row in range(3):
    alone = jax.tree.map(lambda x: x[row:row + 1], cached)
    row_tokens, row_scores = decode(_cached_step, alone)
    np.testing.assert_array_equal(row_tokens[0], tokens[row])
    np.testing.assert_allclose(row_scores[0], scores[row], atol=1e-6)
    np.testing.assert_allclose(scores[row], _score(tables[row], np.asarray(tokens[row]), 0.0), atol=1e-5)
  assert len({tuple(np.asarray(t)) for t in tokens}) > 1  # the rows really differ


def test_bad_arguments_are_refused():
  step_fn = _markov_step_fn(GREEDY_TRAP)
  with pytest.raises(ValueError, match="width"):
    decoding.beam_search(step_fn, ROWS, bos_id=BOS, eos_id=EOS, max_len=4, width=0)
  with pytest.raises(ValueError, match="alpha"):
    decoding.beam_search(step_fn, ROWS, bos_id=BOS, eos_id=EOS, max_len=4, width=2, alpha=-1.0)
  with pytest.raises(ValueError, match="leaf"):
    decoding.greedy_decode(step_fn, {}, bos_id=BOS, eos_id=EOS, max_len=4)
