"""The Tasty evaluation recipes that must never reach a teacher trained on an external corpus.

RecipeNLG and Recipe1M+ were gathered from recipe sites, so they can hold a Tasty Videos recipe. A
`LeakGuard` holds the step sequences and source pages of the validation and test recipes of a Tasty
split layout; the corpus builder drops (and counts) every corpus recipe that equals one of them step
for step, after `text.normalize`, or that comes from the same page. Tasty's training recipes are not
guarded: a teacher may see them.

  guard = LeakGuard.from_tasty("/data/tasty", "split_4022")
  guard = LeakGuard.from_lists([["Chop the onion.", "Fry it."]], ["https://tasty.co/recipe/x"])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import dataclasses
import functools
import hashlib
import json
import re

from absl import logging

from anticipax.data.tasty import reader
from anticipax.data.tasty import text

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
EVAL_SPLITS = ("validation", "test")


def normalize_steps(steps: Iterable[str]) -> tuple[str, ...]:
  """The normalized step sentences, empty ones left out (a blank step must not hide a copy)."""
  return tuple(s for s in map(text.normalize, steps) if s)


def normalize_url(url: str) -> str:
  """A page address as the guard compares it.

  Lower-cased, without scheme (`https://`, also `//`), `www.`, fragment (`#...`), trailing `/` and
  tracking parameters (`utm_*`). The rest of the query stays: on many sites it names the recipe
  (cookbooks.com's `Recipe-Details.aspx?id=44874`, a third of RecipeNLG), so dropping it would take
  thousands of different recipes for one page. "" for an empty address (never matched).
  """
  u = url.strip().lower().split("#", 1)[0]
  u = _SCHEME.sub("", u).removeprefix("//").removeprefix("www.")
  path, _, query = u.partition("?")
  params = [p for p in query.split("&") if p and not p.startswith("utm_")]
  return path.rstrip("/") + ("?" + "&".join(params) if params else "")


@dataclasses.dataclass(frozen=True, repr=False)
class LeakGuard:
  """Normalized step sequences and page addresses a corpus recipe must not match.

  Build with `from_tasty` or `from_lists`; the default is an empty guard (it drops nothing).

  Attributes:
    steps: step sequences, each from `normalize_steps`.
    urls: addresses, each from `normalize_url` (never "").
  """

  steps: frozenset[tuple[str, ...]] = frozenset()
  urls: frozenset[str] = frozenset()

  @classmethod
  def from_lists(cls, step_sequences: Iterable[Sequence[str]] = (), urls: Iterable[str] = ()) -> LeakGuard:
    """A guard from raw step sentences and addresses (normalized here)."""
    return cls(frozenset(s for s in map(normalize_steps, step_sequences) if s),
               frozenset(u for u in map(normalize_url, urls) if u))

  @classmethod
  def from_tasty(cls, manual_dir, split: str = "split_4022", splits: Sequence[str] = EVAL_SPLITS) -> LeakGuard:
    """The guard of a Tasty split layout: every recipe its `splits` lists name, with or without video.

    Args:
      manual_dir: the Tasty Videos root (DATA_FORMATS.md, section 5).
      split: the layout, a folder under `SPLITS/` ("split_4022", "split_2511").
      splits: which lists to guard; a layout without one of them guards the others.

    Returns:
      The guard; its size is logged.
    """
    collection = reader.Collection(manual_dir, split)
    # Recipes with video are read already; the others (no alignment, no aligned step) are read here.
    read = {r.name: r for recipes in collection.splits.values() for r in recipes}
    sequences, urls, listed = [], [], 0
    for name in splits:
      if name not in collection.split_files:
        continue
      for _, recipe in reader.read_name_list(collection.split_files[name]):
        listed += 1
        if recipe in read:
          steps, url = read[recipe].steps, read[recipe].url
        else:  # Collection checked that its folder exists.
          _, steps, url = collection.texts(recipe)
        sequences.append(steps)
        urls.append(url)
    guard = cls.from_lists(sequences, urls)
    logging.info("Corpus leak guard: %d step sequences and %d urls of %d Tasty %s recipes (%s).",
                 len(guard.steps), len(guard.urls), listed, split, ", ".join(splits))
    return guard

  def __repr__(self) -> str:  # Short: TFDS logs the builder config that holds the guard.
    return f"LeakGuard(steps={len(self.steps)}, urls={len(self.urls)}, digest={self.digest[:8]})"

  @functools.cached_property
  def digest(self) -> str:
    """sha256 of the sorted contents: equal guards, equal digests, whatever their order of building."""
    contents = [sorted(map(list, self.steps)), sorted(self.urls)]
    return hashlib.sha256(json.dumps(contents, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()

  def leak(self, steps: Sequence[str], url: str, *, normalized: bool = False) -> str | None:
    """Why a recipe must not reach a teacher: "leak_steps", "leak_url", or None.

    Args:
      steps: its step sentences; `normalized`: they come from `normalize_steps` already (saves
        normalizing millions of corpus sentences twice).
      url: its page address, as written.
    """
    if self.steps and (tuple(steps) if normalized else normalize_steps(steps)) in self.steps:
      return "leak_steps"
    if self.urls and normalize_url(url) in self.urls:
      return "leak_url"
    return None
