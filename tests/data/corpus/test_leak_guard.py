"""The leak guard: Tasty evaluation recipes, equal by steps or by page, never reach a teacher."""

import pytest

from anticipax.data.corpus import leak_guard
from anticipax.data.corpus.leak_guard import LeakGuard
from anticipax.data.tasty import reader
from tests.data.tasty import fixtures as tasty_fx


@pytest.mark.parametrize("url", [
    "https://www.tasty.co/recipe/Soup/", "tasty.co/recipe/soup", "http://tasty.co/recipe/soup#comments",
    "//www.tasty.co/recipe/soup/?utm_source=pin&utm_medium=x", "  HTTPS://TASTY.CO/recipe/soup  ",
])
def test_addresses_of_one_page_normalize_alike(url):
  assert leak_guard.normalize_url(url) == "tasty.co/recipe/soup"


def test_the_query_names_the_recipe_and_stays():
  a = leak_guard.normalize_url("www.cookbooks.com/Recipe-Details.aspx?id=44874")
  b = leak_guard.normalize_url("http://www.cookbooks.com/Recipe-Details.aspx?id=1&utm_campaign=z")
  assert (a, b) == ("cookbooks.com/recipe-details.aspx?id=44874", "cookbooks.com/recipe-details.aspx?id=1")
  assert leak_guard.normalize_url("   ") == ""


def test_leak_by_steps_after_normalization_and_by_url():
  guard = LeakGuard.from_lists([["Chop the onion, finely.", "Fry it!"]], ["https://tasty.co/recipe/soup/", ""])
  assert guard.urls == {"tasty.co/recipe/soup"}  # An empty address guards nothing.
  assert guard.leak(["chop  the onion , FINELY .", "", "fry it !"], "x.com/a") == "leak_steps"
  assert guard.leak(["Chop the onion, finely."], "www.tasty.co/recipe/soup") == "leak_url"
  assert guard.leak(["Chop the onion, finely.", "Fry it!", "Serve."], "x.com/a") is None  # One more step.
  assert guard.leak(["Fry it!", "Chop the onion, finely."], "") is None  # Another order.
  assert guard.leak(["chop the onion , finely .", "fry it !"], "", normalized=True) == "leak_steps"
  assert LeakGuard().leak(["chop the onion , finely .", "fry it !"], "tasty.co/recipe/soup") is None


def test_digest_is_stable_and_follows_the_contents():
  a = LeakGuard.from_lists([["A."], ["B.", "C."]], ["x.com/1", "x.com/2"])
  b = LeakGuard.from_lists([["b .", "c ."], ["a ."]], ["https://x.com/2/", "x.com/1"])
  assert a == b and a.digest == b.digest and len(a.digest) == 64
  assert LeakGuard.from_lists([["A."]], ["x.com/1"]).digest != a.digest
  assert LeakGuard.from_lists([["A."], ["B.", "C."]], ["x.com/1"]).digest != a.digest
  assert repr(a) == f"LeakGuard(steps=2, urls=2, digest={a.digest[:8]})"


def _url(name):
  return f"https://tasty.co/recipe/{name}"


@pytest.fixture
def tasty_root(tmp_path):
  """The Tasty fixture with one page per recipe (the fixture's XMLs all share one address)."""
  root = tasty_fx.write(tmp_path / "tasty")
  for name, (kind, ingredients, steps, _, _) in tasty_fx.RECIPES.items():
    if kind == "encoded":
      ingredients, steps = [tasty_fx.encode(x) for x in ingredients], [tasty_fx.encode(x) for x in steps]
    xml = tasty_fx.recipe_dir(root, name) / ("recipe_encoded.xml" if kind == "encoded" else "recipe.xml")
    xml.write_text(tasty_fx.xml(ingredients, steps, url=_url(name)))
  return root


def test_tasty_reader_returns_the_xml_url(tasty_root):
  collection = reader.Collection(tasty_root, "split_4022")
  assert {r.name: r.url for rs in collection.splits.values() for r in rs} == {
      "alpha": _url("alpha"), "beta": _url("beta"), "gamma": _url("gamma"), "zeta": _url("zeta")}
  # Recipes without video too (delta has no csvalignment.dat).
  assert collection.texts("delta") == (["onion"], ["Chop the onion."], _url("delta"))
  no_url = tasty_fx.recipe_dir(tasty_root, "beta") / "recipe.xml"
  no_url.write_text(no_url.read_text().replace(f"<url>{_url('beta')}</url>", ""))
  assert reader.Collection(tasty_root, "split_4022").splits["train"][1].url == ""


@pytest.mark.parametrize("split, guarded", [("split_4022", ["gamma", "delta", "eps", "zeta"]),
                                            ("split_2511", ["beta", "gamma"])])
def test_guard_from_tasty_holds_every_evaluation_recipe_with_or_without_video(tasty_root, split, guarded):
  guard = LeakGuard.from_tasty(tasty_root, split)
  assert guard.urls == {leak_guard.normalize_url(_url(n)) for n in guarded}
  expected = {leak_guard.normalize_steps(tasty_fx.RECIPES[n][2]) for n in guarded}
  assert guard.steps == expected
  # gamma is word-encoded: its decoded steps are guarded. alpha trains: never guarded.
  assert ("blend the banana .", "blend the milk .", "serve hot !") in guard.steps
  assert guard.leak(tasty_fx.RECIPES["alpha"][2], _url("alpha")) is None
  assert guard.leak(["Blend the banana.", "Blend the milk.", "Serve hot!"], "") == "leak_steps"
