"""TFDS builder `recipe_corpus`: external recipe text with the text features of `tasty_videos`.

One example = one corpus recipe, stored as `tasty_videos` stores a recipe's text (its ingredient
names normalized and joined by ", ", its first `max_steps` step sentences normalized with
`tasty.text.normalize`), so the method-2 text teacher reads corpus examples where it reads Tasty
ones, with one vocabulary and tokenizer. A recipe is dropped, and counted, when it equals a Tasty
evaluation recipe (`leak_guard`) or has fewer than `min_steps` steps (a step to predict needs one
before it). One split, `train`, in file order:

  guard = LeakGuard.from_tasty("/data/tasty", "split_4022")
  b = builder.load("/data/full_dataset.csv", data_dir=None, leak_guard=guard)
  train = b.as_data_source("train")          # read with grain, as anticipax.data.pipeline does
  b.info.metadata["counts"]                  # read, kept, leak_steps, leak_url, too_short, ...

The prepared dataset holds everything it serves: once built, the corpus file may move or go. The
config name holds a digest of the file's absolute path, not of its content: a file rewritten in place
is not noticed (give it a new name, or delete the prepared folder).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
import dataclasses
import hashlib
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from anticipax import paths
from anticipax.data.corpus import readers
from anticipax.data.corpus.leak_guard import LeakGuard  # pylint: disable=unused-import  (re-exported)
from anticipax.data.corpus.readers import CorpusRecipe, write_recipenlg  # pylint: disable=unused-import
from anticipax.data.errors import DataError
from anticipax.data.tasty import builder as tasty_builder
from anticipax.data.tasty import text

NAME = "recipe_corpus"
# read = kept + leak_steps + leak_url + too_short (past max_recipes nothing more is read);
# truncated (kept recipes cut to max_steps) and empty_steps (steps normalized to "" and removed) are
# counted among the kept.
COUNTS = ("read", "kept", "leak_steps", "leak_url", "too_short", "truncated", "empty_steps")
_PROGRESS = 200_000  # Recipes between two progress lines of the build log (RecipeNLG has 2.2 M).


@dataclasses.dataclass
class CorpusConfig(tfds.core.BuilderConfig):
  """What is read and what is kept; build configs with `make_config`.

  Attributes:
    corpus_path: the corpus file, absolute.
    format: one of `readers.FORMATS`, or "" to detect it (`readers.detect_format`).
    delimiter: the step separator of the `text` format.
    max_steps: S, steps stored per recipe (longer recipes are truncated and counted).
    min_steps: fewer steps (after dropping empty ones) and the recipe is skipped and counted.
    max_recipes: keep the first N kept recipes in file order and stop reading; 0 keeps all.
    drop_empty_steps: remove steps that normalize to "" (else they are stored as "", masked in).
    leak_guard: the Tasty evaluation recipes to drop.
  """

  corpus_path: str = ""
  format: str = ""
  delimiter: str = readers.DEFAULT_DELIMITER
  max_steps: int = 16
  min_steps: int = 2
  max_recipes: int = 0
  drop_empty_steps: bool = True
  leak_guard: LeakGuard = dataclasses.field(default_factory=LeakGuard)


def make_config(corpus_path, *, format: str | None = None,  # pylint: disable=redefined-builtin
                leak_guard: LeakGuard | None = None, max_steps: int = 16, min_steps: int = 2,
                max_recipes: int = 0, drop_empty_steps: bool = True,
                delimiter: str = readers.DEFAULT_DELIMITER) -> CorpusConfig:
  """A config whose name encodes every field, so that different configs never share files.

  The path, the delimiter and the guard are free text or large: a stable digest of them keeps the
  name short and valid. `format=None` is named "auto" and detected when building.
  """
  if format is not None and format not in readers.FORMATS:
    raise ValueError(f"format must be one of {readers.FORMATS} or None, got {format!r}")
  for name, value, least in (("max_steps", max_steps, 1), ("min_steps", min_steps, 1),
                             ("max_recipes", max_recipes, 0)):
    if isinstance(value, bool) or int(value) != value or value < least:
      raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
  if not delimiter or "\n" in delimiter or "\r" in delimiter:
    raise ValueError(f"delimiter must be non-empty text without line breaks, got {delimiter!r}")
  path = str(paths.path(corpus_path))
  guard = leak_guard or LeakGuard()
  digest = hashlib.sha256(repr((path, delimiter, guard.digest)).encode("utf-8", "surrogatepass")).hexdigest()[:8]
  empty = "dropempty" if drop_empty_steps else "keepempty"
  return CorpusConfig(
      name=f"{format or 'auto'}_S{max_steps}_min{min_steps}_n{max_recipes}_{empty}_{digest}",
      description=f"{os.path.basename(path)} ({format or 'detected format'}), {min_steps}..{max_steps} steps",
      corpus_path=path, format=format or "", delimiter=delimiter, max_steps=int(max_steps),
      min_steps=int(min_steps), max_recipes=int(max_recipes), drop_empty_steps=bool(drop_empty_steps),
      leak_guard=guard)


def make_example(recipe_id: str, title: str, url: str, ingredients: Iterable[str],
                 steps: list[str], max_steps: int) -> dict:
  """The stored example; `steps` are normalized already and at most `max_steps` long.

  Ingredients are stored as `tasty_videos` stores them: normalized names, empty ones left out,
  joined by ", ".
  """
  return {
      "recipe": recipe_id,
      "title": title,
      "url": url,
      "ingredients": ", ".join(n for n in map(text.normalize, ingredients) if n),
      "steps": np.array(steps + [""] * (max_steps - len(steps)), dtype=object),
      "num_steps": len(steps),
      "step_mask": (np.arange(max_steps) < len(steps)).astype(np.int32),
  }


def examples(recipes: Iterable[CorpusRecipe], prefix: str, config: CorpusConfig,
             counts: collections.Counter) -> Iterator[dict]:
  """The examples of the recipes `config` keeps, in order; `counts` gets `COUNTS` as it goes.

  Args:
    recipes: as read (`readers.read_corpus`).
    prefix: the format, written before each id in `recipe` ("recipenlg:12").
    config: max_steps, min_steps, max_recipes, drop_empty_steps and leak_guard.
    counts: updated in place, so a caller sees them even when it stops early.
  """
  c, guard = config, config.leak_guard
  for recipe in recipes:
    counts["read"] += 1
    if counts["read"] % _PROGRESS == 0:
      logging.info("Corpus: %d recipes read, %d kept.", counts["read"], counts["kept"])
    steps = [text.normalize(s) for s in recipe.steps]
    if c.drop_empty_steps:
      kept = [s for s in steps if s]
      counts["empty_steps"] += len(steps) - len(kept)
      steps = kept
    # The guard compares whole recipes, before truncation, without empty steps.
    reason = guard.leak([s for s in steps if s], recipe.url, normalized=True)
    if reason is None and len(steps) < c.min_steps:
      reason = "too_short"
    if reason is not None:
      counts[reason] += 1
      continue
    counts["truncated"] += len(steps) > c.max_steps
    counts["kept"] += 1
    yield make_example(f"{prefix}:{recipe.id}", recipe.title, recipe.url, recipe.ingredients,
                       steps[:c.max_steps], c.max_steps)
    if counts["kept"] == c.max_recipes:
      return


class RecipeCorpus(tfds.core.GeneratorBasedBuilder):
  """Recipe text from RecipeNLG, Recipe1M(+) or a text file, without the Tasty evaluation recipes."""

  name = NAME
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = []  # Every config names its own file: see `make_config`.
  url_infos = None  # Nothing to download (also avoids TFDS's importlib_resources lookup).

  def _info(self) -> tfds.core.DatasetInfo:
    s = self.builder_config.max_steps
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            **tasty_builder.text_features(s),  # as tasty_videos stores a recipe's text, plus title and url
            "title": tfds.features.Text(),
            "url": tfds.features.Text(),
        }),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # File order, so max_recipes means the first N; readers shuffle.
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    c = self.builder_config
    fmt = readers.detect_format(c.corpus_path, c.format or None)
    counts = collections.Counter({k: 0 for k in COUNTS})
    recipes = readers.read_corpus(c.corpus_path, fmt, delimiter=c.delimiter)
    # Keys are positions: ids may repeat in a corpus, and file order is the stored order.
    yield from enumerate(examples(recipes, fmt, c, counts))
    logging.info(
        "Corpus %s (%s): read %d recipes, kept %d; dropped: leak_steps %d, leak_url %d (guard %r), "
        "too_short %d (fewer than %d steps); truncated to %d steps: %d; empty steps removed: %d%s.",
        os.path.basename(c.corpus_path), fmt, counts["read"], counts["kept"], counts["leak_steps"],
        counts["leak_url"], c.leak_guard, counts["too_short"], c.min_steps, c.max_steps,
        counts["truncated"], counts["empty_steps"],
        f"; stopped after {c.max_recipes} kept recipes" if counts["kept"] == c.max_recipes else "")
    if not counts["kept"]:
      raise DataError(f"{c.corpus_path}: field 'steps': no recipe kept of {counts['read']} read "
                      f"({dict(counts)})")
    # Written with dataset_info.json once the split is complete (TFDS writes the info last).
    self.info.metadata.update({
        "counts": {k: int(counts[k]) for k in COUNTS}, "format": fmt, "max_steps": c.max_steps,
        "min_steps": c.min_steps, "max_recipes": c.max_recipes, "corpus_file": os.path.basename(c.corpus_path),
        "leak_guard": {"steps": len(c.leak_guard.steps), "urls": len(c.leak_guard.urls),
                       "digest": c.leak_guard.digest}})


def load(corpus_path, *, data_dir: str | None, format: str | None = None,  # pylint: disable=redefined-builtin
         leak_guard: LeakGuard | None = None, max_steps: int = 16, min_steps: int = 2,
         max_recipes: int = 0, drop_empty_steps: bool = True,
         delimiter: str = readers.DEFAULT_DELIMITER) -> RecipeCorpus:
  """Prepares (once) and returns the `recipe_corpus` builder of a corpus file.

  TFDS writes into a temporary folder renamed into place at the end, so a build that fails (e.g. on a
  malformed row late in the file) leaves no prepared dataset behind.

  Args:
    corpus_path: RecipeNLG `full_dataset.csv`, Recipe1M `layer1.json` or a text file.
    data_dir: TFDS data directory; None uses TFDS's default (`~/tensorflow_datasets`).
    format: one of `readers.FORMATS`; None detects it from the file.
    leak_guard: the Tasty evaluation recipes to drop; None drops none.
    max_steps, min_steps, max_recipes, drop_empty_steps, delimiter: see `CorpusConfig`.

  Returns:
    The prepared builder; read with `builder.as_data_source("train")`.
  """
  config = make_config(corpus_path, format=format, leak_guard=leak_guard, max_steps=max_steps,
                       min_steps=min_steps, max_recipes=max_recipes, drop_empty_steps=drop_empty_steps,
                       delimiter=delimiter)
  builder = RecipeCorpus(data_dir=data_dir, config=config, file_format="array_record")
  if not builder.is_prepared():  # A prepared dataset never reads the file again.
    if not paths.path(config.corpus_path).is_file():
      raise DataError(f"{config.corpus_path}: field 'corpus': no such file")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return builder
