"""Tests for anticipax.data.text_values: how examples' string fields become text."""

import numpy as np
import pytest

from anticipax.data.text_values import as_text


@pytest.mark.parametrize("value, expected", [
    (b"P01-R01-PastaSalad", "P01-R01-PastaSalad"),      # a TFDS Text field
    (np.bytes_(b"train_3"), "train_3"),                # one read out of a numpy array of bytes
    ("caf\u00e9".encode(), "caf\u00e9"),               # UTF-8, not Latin-1
    ("already text", "already text"),
    (np.str_("numpy text"), "numpy text"),
    (106, "106"),                                      # an integer uid
])
def test_as_text(value, expected):
  out = as_text(value)
  assert out == expected and type(out) is str  # pylint: disable=unidiomatic-typecheck


def test_as_text_rejects_bytes_that_are_not_utf8():
  with pytest.raises(UnicodeDecodeError):
    as_text(b"\xff\xfe")
