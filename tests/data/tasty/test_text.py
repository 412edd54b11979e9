"""Sentence normalization and the word vocabulary."""

import numpy as np
import pytest

from anticipax.data.errors import DataError
from anticipax.data.tasty import text


@pytest.mark.parametrize("raw, normalized", [
    ("Chop the onion, finely.", "chop the onion , finely ."),
    ("Chop the onion , finely .", "chop the onion , finely ."),  # As decoded from word ids.
    ("  Preheat oven to 350°F (180°C)!  ", "preheat oven to 350 ° f ( 180 ° c ) !"),
    ("Add\t1/2 cup\nmilk", "add 1 / 2 cup milk"),
    ("", ""),
])
def test_normalize(raw, normalized):
  assert text.normalize(raw) == normalized


def test_build_counts_words_and_orders_by_frequency_then_alphabet():
  vocab = text.Vocab.build(["Chop the onion.", "Fry the onion", "the end"], min_count=1)
  assert vocab.tokens == ("<pad>", "<bos>", "<eos>", "<unk>", "the", "onion", ".", "chop", "end",
                          "fry")
  assert text.Vocab.build(["Chop the onion.", "Fry the onion", "the end"], min_count=2).tokens[4:] == (
      "the", "onion")


def test_encode_pads_truncates_and_decode_stops_at_eos():
  vocab = text.Vocab.build(["chop the onion ."])
  ids = vocab.encode("Chop the carrot.", max_len=8)
  assert ids.dtype == np.int32 and ids.shape == (8,)
  chop, the, dot = vocab.id("chop"), vocab.id("the"), vocab.id(".")
  np.testing.assert_array_equal(ids, [1, chop, the, 3, dot, 2, 0, 0])  # carrot -> <unk>.
  assert vocab.decode(ids) == "chop the <unk> ."
  # Too long: the last words go, <bos> and <eos> stay.
  np.testing.assert_array_equal(vocab.encode("chop the onion .", max_len=4), [1, chop, the, 2])
  assert vocab.decode([1, chop, 2, the, the]) == "chop"
  assert vocab.decode([chop, 0, the]) == "chop the"
  with pytest.raises(ValueError):
    vocab.encode("chop", max_len=1)


def test_save_and_load_round_trip(tmp_path):
  vocab = text.Vocab.build(["Chop the onion.", "Fry in oil!"])
  path = tmp_path / "vocab.txt"
  vocab.save(path)
  assert path.read_text() == "<pad>\n<bos>\n<eos>\n<unk>\n!\n.\nchop\nfry\nin\noil\nonion\nthe\n"
  assert text.Vocab.load(path) == vocab


@pytest.mark.parametrize("content, message", [
    ("<pad>\n<bos>\n<unk>\n", ":3: field 'token': expected '<eos>'"),
    ("<pad>\n<bos>\n<eos>\n<unk>\na\nb c\n", ":6: field 'token': expected one word"),
    ("<pad>\n<bos>\n<eos>\n<unk>\na\nb\na\n", ":7: field 'token': 'a' repeats line 5"),
    ("<pad>\n<bos>\n", ":3: field 'token': missing special tokens"),
])
def test_load_rejects_malformed_files(tmp_path, content, message):
  path = tmp_path / "vocab.txt"
  path.write_text(content)
  with pytest.raises(DataError) as e:
    text.Vocab.load(path)
  assert str(e.value).startswith(f"{path}{message}")
