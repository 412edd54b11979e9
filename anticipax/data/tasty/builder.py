"""TFDS builder `tasty_videos`: Tasty Videos recipes for next-step sentence anticipation.

The user downloads Tasty Videos (registration required), extracts per-frame features and puts
both in the manual dir (DATA_FORMATS.md, section 5); `load` turns them into array_record files.
One example = one recipe: its ingredients, its first `max_steps` step sentences (normalized with
`text.normalize`) and, per step, `frames_per_step` feature rows sampled uniformly over the step's
video segment. The word vocabulary, built from the training split only, is stored in the
dataset's metadata and as `vocab.txt` beside the data:

  config = builder.make_config(split="split_4022", features="{recipe_dir}/resnet50.npy")
  b = builder.load(data_dir=None, manual_dir="/data/tasty", config=config)
  train = b.as_data_source("train")   # also "validation", "test"
  vocab = builder.vocab(b)            # text.Vocab
"""

from __future__ import annotations

import dataclasses
import hashlib
import pathlib
import re

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from anticipax import paths
from anticipax.data.errors import DataError
from anticipax.data.tasty import features as feature_files
from anticipax.data.tasty import reader
from anticipax.data.tasty import text

VOCAB_FILENAME = "vocab.txt"
NAME = "tasty_videos"


@dataclasses.dataclass
class TastyConfig(tfds.core.BuilderConfig):
  """What is read and how each recipe is cut; build configs with `make_config`.

  Attributes:
    split: folder under `SPLITS/`: "split_4022" or "split_2511".
    features: path pattern of a recipe's float32 `[rows, D]` .npy features, with `{recipe}`,
      `{recipe_dir}` (its folder) and `{root}` (the manual dir); relative to the manual dir.
    stride: frames between feature rows (5 matches the units of csvalignment.dat).
    frames_per_step: F, feature rows sampled per step.
    max_steps: S, steps kept per recipe (longer recipes are truncated and counted).
    min_word_count: training-split occurrences a word needs to enter the vocabulary.
    drop: recipe names to skip (the public loaders drop a few without usable alignment).
    steps_without_video: "keep" (a step with no video segment stays in the recipe: the text teacher reads
      it, a visual student sees the learned no-video vector, and it is predicted like any step) or "drop"
      (removed from the recipe before anything else, as public Tasty loaders that keep aligned steps only).
  """

  split: str = "split_4022"
  features: str = "{recipe_dir}/resnet50.npy"
  stride: int = 5
  frames_per_step: int = 8
  max_steps: int = 16
  min_word_count: int = 1
  drop: tuple[str, ...] = ()
  steps_without_video: str = "keep"


STEPS_WITHOUT_VIDEO = ("keep", "drop")


def make_config(*, split: str = "split_4022", features: str = "{recipe_dir}/resnet50.npy",
                stride: int = 5, frames_per_step: int = 8, max_steps: int = 16,
                min_word_count: int = 1, drop=(), steps_without_video: str = "keep") -> TastyConfig:
  """A config whose name encodes every field, so that different configs never share files."""
  if not re.fullmatch(r"[\w.-]+", split):
    raise ValueError(f"split must be a folder name under SPLITS/, got {split!r}")
  if steps_without_video not in STEPS_WITHOUT_VIDEO:
    raise ValueError(f"steps_without_video must be one of {', '.join(STEPS_WITHOUT_VIDEO)}, "
                     f"got {steps_without_video!r}")
  for name, value in (("stride", stride), ("frames_per_step", frames_per_step),
                      ("max_steps", max_steps), ("min_word_count", min_word_count)):
    if int(value) != value or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  drop = tuple(sorted(set(drop)))
  # The pattern and the drop list are free text: a stable digest keeps the name short and valid.
  digest = hashlib.sha256(repr((features, drop)).encode()).hexdigest()[:8]
  novideo = "" if steps_without_video == "keep" else "_nv"  # "keep" keeps the names of earlier builds
  return TastyConfig(
      name=f"{split}_F{frames_per_step}_S{max_steps}_st{stride}_mc{min_word_count}{novideo}_{digest}",
      description=f"{split}, {frames_per_step} rows per step, at most {max_steps} steps",
      split=split, features=features, stride=stride, frames_per_step=frames_per_step,
      max_steps=max_steps, min_word_count=min_word_count, drop=drop, steps_without_video=steps_without_video)


def sample_rows(first: int, last: int, num: int) -> tuple[np.ndarray, np.ndarray]:
  """`num` rows spread uniformly over rows `first..last` (inclusive) and their mask.

  With `n = last - first + 1 >= num` rows, slot `i` takes the row at the centre of the i-th of
  `num` equal parts, `first + floor((2 i + 1) n / (2 num))`. With fewer, the slots take every
  row once, in order, and the rest are masked (their row index repeats `first`).

  Returns:
    int64 `[num]` row indices and int32 `[num]` mask (1 for a real row).
  """
  n = last - first + 1
  if n >= num:
    return first + (2 * np.arange(num) + 1) * n // (2 * num), np.ones([num], np.int32)
  rows = np.full([num], first, np.int64)
  rows[:n] = np.arange(first, last + 1)
  return rows, (np.arange(num) < n).astype(np.int32)


def make_example(recipe: reader.Recipe, features: np.ndarray, config: TastyConfig) -> dict:
  """The stored example of a recipe, given its `[rows, D]` features (see `TastyVideos._info`)."""
  s, f = config.max_steps, config.frames_per_step
  steps = [text.normalize(x) for x in recipe.steps[:s]]
  step_features = np.zeros([s, f, features.shape[1]], np.float32)
  frame_mask = np.zeros([s, f], np.int32)
  has_video = np.zeros([s], np.int32)
  for i, span in enumerate(recipe.spans[:s]):
    if span is None:
      continue
    rows, mask = sample_rows(*reader.step_rows(span, config.stride), f)
    step_features[i] = features[rows] * mask[:, None].astype(np.float32)
    frame_mask[i], has_video[i] = mask, 1
  return {
      "recipe": recipe.name,
      "ingredients": ", ".join(text.normalize(x) for x in recipe.ingredients),
      "steps": np.array(steps + [""] * (s - len(steps)), dtype=object),
      "raw_steps": np.array(list(recipe.steps[:s]) + [""] * (s - len(steps)), dtype=object),
      "num_steps": len(steps),
      "step_mask": (np.arange(s) < len(steps)).astype(np.int32),
      "has_video": has_video,
      "step_features": step_features,
      "frame_mask": frame_mask,
  }


def _with_video_only(recipe: reader.Recipe) -> reader.Recipe:
  """The recipe without its steps that have no video segment (the reader keeps only recipes with one)."""
  keep = [i for i, span in enumerate(recipe.spans) if span is not None]
  return dataclasses.replace(recipe, steps=tuple(recipe.steps[i] for i in keep),
                             spans=tuple(recipe.spans[i] for i in keep))


def vocab_texts(recipes) -> list[str]:
  """What the vocabulary is built from: the kept step sentences and ingredient names."""
  return [x for r in recipes for x in (*r.steps, *r.ingredients)]


def text_features(max_steps: int) -> dict:
  """The text of a recipe as stored (what a text teacher reads; a recipe corpus stores the same)."""
  return {
      "recipe": tfds.features.Text(),
      "ingredients": tfds.features.Text(),
      "steps": tfds.features.Tensor(shape=(max_steps,), dtype=np.str_),
      "num_steps": tfds.features.Scalar(np.int32),
      "step_mask": tfds.features.Tensor(shape=(max_steps,), dtype=np.int32),
  }


class TastyVideos(tfds.core.GeneratorBasedBuilder):
  """Tasty Videos recipes: step sentences and per-step video features (manual download)."""

  name = NAME
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.", "1.1.0": "raw_steps: the step sentences before normalization."}
  BUILDER_CONFIGS = [make_config()]
  url_infos = None  # Nothing to download (also avoids TFDS's importlib_resources lookup).
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put the Tasty Videos release in the manual dir: id2word_tasty.txt, ALL_RECIPES.txt, SPLITS/ and
  ALL_RECIPES_without_videos/<recipe>/ (recipe_encoded.xml or recipe.xml, csvalignment.dat,
  fps.txt), plus one float32 [rows, D] .npy features file per recipe where the config's
  `features` pattern points (default <recipe folder>/resnet50.npy).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    s, f = self.builder_config.max_steps, self.builder_config.frames_per_step
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            **text_features(s),
            # The step sentences as decoded from the dataset, before `text.normalize`: what references
            # are scored as (coco-caption's PTB tokenization runs on the dataset's own text).
            "raw_steps": tfds.features.Tensor(shape=(s,), dtype=np.str_),
            "has_video": tfds.features.Tensor(shape=(s,), dtype=np.int32),
            "step_features": tfds.features.Tensor(shape=(s, f, None), dtype=np.float32),
            "frame_mask": tfds.features.Tensor(shape=(s, f), dtype=np.int32),
        }),
        metadata=tfds.core.MetadataDict(),
        disable_shuffling=True,  # Examples stay in split-list order; readers shuffle.
    )

  def _split_generators(self, dl_manager):
    c = self.builder_config
    root = pathlib.Path(paths.local(dl_manager.manual_dir, f"the {NAME} files (data.manual_dir)"))
    if not root.is_dir():
      raise DataError(f"{NAME}: manual dir {root} does not exist")
    collection = reader.Collection(root, c.split, drop=c.drop)
    # Every file is checked before anything is written; a later failure still leaves nothing,
    # since TFDS deletes its temporary directory when generation raises.
    feature_dim = feature_files.check_features(collection, c.features, c.stride)
    splits = {split: [_with_video_only(r) if c.steps_without_video == "drop" else r for r in recipes]
              for split, recipes in collection.splits.items()}
    truncated = sum(len(r.steps) > c.max_steps for rs in splits.values() for r in rs)
    kept = {split: recipes for split, recipes in splits.items() if recipes}
    if "train" not in kept:
      raise DataError(f"{collection.split_files['train']}: field 'recipe': no training recipe "
                      "has video; nothing to build a vocabulary from")
    train = [dataclasses.replace(r, steps=r.steps[:c.max_steps]) for r in kept["train"]]
    vocab = text.Vocab.build(vocab_texts(train), c.min_word_count)
    # During generation `data_dir` is TFDS's temporary directory, renamed into place only when
    # every split is written, so the vocabulary never appears without its dataset.
    vocab.save(paths.path(self.data_dir) / VOCAB_FILENAME)
    collection.log()
    if c.steps_without_video == "drop":
      logging.info("Tasty steps without video dropped (steps_without_video=drop): %d.",
                   collection.counts["steps_without_video"])
    logging.info("Tasty recipes with more than %d steps (truncated): %d.", c.max_steps, truncated)
    for split in sorted(set(collection.splits) - set(kept)):
      logging.warning("Tasty: no %s recipe has video; the split is left out.", split)
    logging.info("Tasty vocabulary: %d tokens (train split, min count %d); feature dim %d.",
                 len(vocab), c.min_word_count, feature_dim)
    counts = {k: int(v) for k, v in sorted(collection.counts.items())}
    self.info.metadata.update({
        "vocab": list(vocab.tokens), "feature_dim": feature_dim, "max_steps": c.max_steps,
        "frames_per_step": c.frames_per_step, "stride": c.stride, "split": c.split,
        "split_files": {s: p.name for s, p in collection.split_files.items()},
        "counts": {**counts, "truncated_recipes": truncated}})
    return {split: self._generate_examples(root, recipes) for split, recipes in kept.items()}

  def _generate_examples(self, root, recipes):
    c = self.builder_config
    for recipe in recipes:
      features = feature_files.read_features(feature_files.features_path(c.features, root, recipe.name))
      yield recipe.name, make_example(recipe, features, c)


def vocab(builder: TastyVideos) -> text.Vocab:
  """The word vocabulary of a prepared dataset (training split only)."""
  return text.Vocab(builder.info.metadata["vocab"])


def vocab_path(builder: TastyVideos):
  """`vocab.txt` of a prepared dataset (local or gs://), one token per line in id order."""
  return paths.path(builder.data_dir) / VOCAB_FILENAME


def default_manual_dir(data_dir: str | None) -> str:
  return str(paths.path(data_dir or "~/tensorflow_datasets") / "downloads" / "manual" / NAME)


def load(*, data_dir: str | None, manual_dir: str | None,
         config: TastyConfig | None = None) -> TastyVideos:
  """Prepares (once) and returns the `tasty_videos` builder for `config`.

  Args:
    data_dir: TFDS data directory; None uses TFDS's default (`~/tensorflow_datasets`).
    manual_dir: the Tasty Videos root; None uses `<data_dir>/downloads/manual/tasty_videos`.
    config: from `make_config`; None is the default config.

  Returns:
    The prepared builder; read splits with `builder.as_data_source(split)`.
  """
  config = config or make_config()
  # TFDS refuses a config named like a registered one unless it is that very object.
  registered = {c.name: c for c in TastyVideos.BUILDER_CONFIGS}.get(config.name)
  if registered is not None and registered == config:
    config = registered
  builder = TastyVideos(data_dir=data_dir, config=config, file_format="array_record")
  if not builder.is_prepared():
    manual_dir = manual_dir or default_manual_dir(data_dir)
    if not paths.path(manual_dir).is_dir():
      raise DataError(f"{NAME}: manual dir {manual_dir} does not exist; put the Tasty Videos files "
                      "there (see DATA_FORMATS.md) or set --config.data.manual_dir")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  return builder
