"""Fixtures shared by method 2's tests."""

import pytest

from anticipax.next_step import captions


@pytest.fixture(scope="module")
def no_java():
  """The caption metrics without Java in this module (METEOR is NaN), as on a machine that lacks it."""
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv(captions.NO_JAVA_ENV, "1")
    yield
