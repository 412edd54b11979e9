"""Tests for anticipax.data.action_text: history text, corpus reading and the word-level tokenizer."""

import json
import os

import numpy as np
import pytest
import transformers

from anticipax.data import action_text
from anticipax.data.rulstm import reader as rulstm
from anticipax.data.action_text import ActionVocab
from anticipax.data.errors import DataError
from tests.data.rulstm import fixtures as fx


def _metadata(actions, verbs, nouns):
  """Metadata as the TFDS builders store it (plain JSON types)."""
  return json.loads(json.dumps({"verbs": list(verbs), "nouns": list(nouns),
                                "actions": [[v, n] for v, n, _ in actions], "action_names": []}))


EGTEA = ActionVocab.from_metadata(_metadata(fx.EGTEA_ACTIONS, fx.EGTEA_VERBS, fx.EGTEA_NOUNS))
EK55 = ActionVocab.from_metadata(_metadata(fx.EK55_ACTIONS, fx.EK55_VERBS, fx.EK55_NOUNS))
EK100 = ActionVocab.from_metadata(_metadata(fx.EK100_ACTIONS, fx.EK100_VERBS, fx.EK100_NOUNS))


@pytest.mark.parametrize("vocab, history, expected", [
    # EGTEA: 1 Open_fridge, 2 Take_eating:utensil, 7 Open_cheese:container, 4 "Turn on_faucet".
    (EGTEA, [1, 2], "open <v> fridge <a> take <v> eating utensil"),
    (EGTEA, [7, 4], "open <v> cheese container <a> turn on <v> faucet"),
    # EK55: 2 get_curry:fish (verb 0 is named "take", the first name seen), 5 pick-up_jug:measuring.
    (EK55, [2, 5], "take <v> fish curry <a> pick-up <v> measuring jug"),
    # EK100: 1 take spoon, 4 wash board:chopping.
    (EK100, [1, 4], "take <v> spoon <a> wash <v> chopping board"),
])
def test_history_text_per_dataset(vocab, history, expected):
  assert action_text.history_text(history, vocab, hist_len=0) == expected


def test_vocab_from_rulstm_actions_csv_matches_metadata(tmp_path):
  path = tmp_path / "actions.csv"
  path.write_text("".join(f"{i},{v}_{n},{name}\n" for i, (v, n, name) in enumerate(fx.EGTEA_ACTIONS)))
  vocab = ActionVocab.from_vocabulary(rulstm.read_actions(path, "egtea"))
  assert vocab.verb_names == EGTEA.verb_names and vocab.noun_names == EGTEA.noun_names
  np.testing.assert_array_equal(vocab.actions, EGTEA.actions)


def test_names_are_lowercased_with_underscores_as_spaces():
  vocab = ActionVocab(("Take ", "Turn_On"), (" eating_utensil", "Cheese  Container"), [[0, 0], [1, 1]])
  assert action_text.history_text([0, 1], vocab, hist_len=0) == (
      "take <v> eating utensil <a> turn on <v> cheese container")


def test_history_text_template_separator_and_hist_len():
  history = np.array([1, 2, 7, 4], np.int32)  # as TFDS gives it
  assert action_text.history_text(history, EGTEA, hist_len=2) == (
      "open <v> cheese container <a> turn on <v> faucet")
  assert action_text.history_text(history, EGTEA, hist_len=10) == action_text.history_text(
      history, EGTEA, hist_len=0)
  assert action_text.history_text(history, EGTEA, hist_len=-1).startswith("open <v> fridge <a> take")
  assert action_text.history_text(history, EGTEA, hist_len=3, template="{action}", separator=", ") == (
      "take eating utensil, open cheese container, turn on faucet")
  # Unlabeled past segments (id -1) have no name: dropped before counting hist_len.
  assert action_text.history_text([1, -1, 2], EGTEA, hist_len=2) == (
      "open <v> fridge <a> take <v> eating utensil")
  with pytest.raises(ValueError, match="out of range"):
    action_text.history_text([99], EGTEA, hist_len=0)


def test_empty_history_is_empty_text():
  assert action_text.history_text([], EGTEA, hist_len=4) == ""
  assert action_text.history_text(np.zeros([0], np.int32), EK100, hist_len=0) == ""


def test_from_metadata_errors():
  with pytest.raises(DataError, match="key 'nouns': missing"):
    ActionVocab.from_metadata({"verbs": ["take"], "actions": [[0, 0]]})
  with pytest.raises(DataError, match="key 'actions'.*noun ids"):
    ActionVocab.from_metadata({"verbs": ["take"], "nouns": ["cup"], "actions": [[0, 1]]})


def test_read_corpus(tmp_path):
  path = tmp_path / "corpus.txt"
  path.write_bytes("\ufefftake <v> knife <a> cut <v> tomato\n\n   \r\nopen <v> café fridge  \r\n".encode())
  assert action_text.read_corpus(path) == ["take <v> knife <a> cut <v> tomato", "open <v> café fridge"]


def test_read_corpus_errors(tmp_path):
  with pytest.raises(DataError, match=r"nothere\.txt: cannot read"):
    action_text.read_corpus(tmp_path / "nothere.txt")
  bad = tmp_path / "bad.txt"
  bad.write_bytes(b"take <v> knife\n\nopen <v> caf\xe9\n")
  with pytest.raises(DataError, match=r"bad\.txt:3: not UTF-8"):
    action_text.read_corpus(bad)
  empty = tmp_path / "empty.txt"
  empty.write_text("\n  \n")
  with pytest.raises(DataError, match=r"empty\.txt: empty corpus"):
    action_text.read_corpus(empty)


CORPUS = ["open <v> fridge <a> take <v> eating utensil",
          "take <v> knife <a> cut <v> tomato <a> open <v> fridge",
          "Take <v> Knife"]


@pytest.fixture
def tokenizer_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  out = tmp_path / "tokenizer"
  action_text.build_word_tokenizer(CORPUS, out)
  return out


def test_tokenizer_vocab_is_deterministic_and_reloads_offline(tokenizer_dir, tmp_path):
  tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
  vocab = tok.get_vocab()
  # Counts: <v> 6, <a> 3, take 3, fridge 2, knife 2, open 2, then cut, eating, tomato, utensil once each.
  order = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<v>", "<a>", "take", "fridge", "knife", "open",
           "cut", "eating", "tomato", "utensil"]
  assert sorted(vocab, key=vocab.get) == order
  assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
      0, 1, 2, 3, 4)
  assert tok.truncation_side == "left"
  ids = tok("Open <v> Fridge <a> take <v> spoon")["input_ids"]
  assert tok.convert_ids_to_tokens(ids) == ["[CLS]", "open", "<v>", "fridge", "<a>", "take", "<v>", "[UNK]",
                                            "[SEP]"]
  again = action_text.build_word_tokenizer(reversed(CORPUS), tmp_path / "again")
  assert again.get_vocab() == vocab
  rare = action_text.build_word_tokenizer(CORPUS, tmp_path / "rare", min_count=2)
  assert sorted(rare.get_vocab(), key=rare.get_vocab().get) == order[:11]


def test_tokenize_pads_and_truncates_from_the_left(tokenizer_dir):
  tok = transformers.AutoTokenizer.from_pretrained(str(tokenizer_dir))
  tok.truncation_side = "right"  # tokenize must not depend on it
  text = action_text.history_text([1, 2, 3], EGTEA, hist_len=0)  # open fridge, take eating utensil, cut tomato
  batch = action_text.tokenize(tok, [text, ""], max_len=8)
  assert set(batch) == {"input_ids", "attention_mask"}
  assert batch["input_ids"].dtype == np.int32 and batch["input_ids"].shape == (2, 8)
  # 12 words do not fit in 8 - 2: the oldest go; [CLS] stays first, [SEP] last.
  tokens = tok.convert_ids_to_tokens(batch["input_ids"][0].tolist())
  assert tokens == ["[CLS]", "eating", "utensil", "<a>", "cut", "<v>", "tomato", "[SEP]"]
  np.testing.assert_array_equal(batch["attention_mask"][0], np.ones(8))
  # Empty history: just [CLS] [SEP], then padding.
  np.testing.assert_array_equal(batch["input_ids"][1], [2, 3, 0, 0, 0, 0, 0, 0])
  np.testing.assert_array_equal(batch["attention_mask"][1], [1, 1, 0, 0, 0, 0, 0, 0])
  short = action_text.tokenize(tok, ["take <v> knife"], max_len=6)
  np.testing.assert_array_equal(short["input_ids"][0], [2] + tok.convert_tokens_to_ids(
      ["take", "<v>", "knife"]) + [3, 0])
  assert action_text.tokenize(tok, [], max_len=4)["input_ids"].shape == (0, 4)
  with pytest.raises(ValueError, match="max_len"):
    action_text.tokenize(tok, ["x"], max_len=1)


def test_saved_files(tokenizer_dir):
  assert {"tokenizer.json", "tokenizer_config.json"} <= set(os.listdir(tokenizer_dir))


def test_history_text_matches_synthetic_kitchen_corpus_lines():
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  world = synthetic_kitchen.make_world(synthetic_kitchen.SyntheticKitchenConfig(name="default"))
  vocab = ActionVocab(world.verbs, world.nouns, world.actions)
  ids = world.recipes[0].steps
  assert action_text.history_text(ids, vocab, hist_len=0) == world.corpus_line(ids)
