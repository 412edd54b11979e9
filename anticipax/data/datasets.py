"""Dataset registry: a config's `data` section -> prepared TFDS builder, splits and `DatasetInfo`.

Every builder stores the same metadata: `verbs`, `nouns` (names), `actions` ([verb, noun] per action
id), `action_names`, and optionally `many_shot` ({part: class ids}) and `eval_flags` (names of
per-example 0/1 fields marking evaluation subsets).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from anticipax import paths
from anticipax.data.rulstm import builders as rulstm_builders
from anticipax.data import synthetic_kitchen
from anticipax.data.tasty import builder as tasty_builder
from anticipax.data.tasty import synthetic as tasty_synthetic
from anticipax.data.errors import DataError
from anticipax.data.pipeline import DatasetInfo, Splits

NAMES = ("synthetic_kitchen", "tasty_videos", "tasty_synthetic", *rulstm_builders.BUILDERS)


def _field(cfg, key: str):
  """`config.data.<key>`; the dataset's defaults live in its config (configs/tasty.py), not here."""
  if key not in cfg:
    raise DataError(f"config key data.{key}: missing (configs/tasty.py sets every field of a Tasty dataset)")
  return cfg[key]


def _synthetic_args(cfg) -> dict:
  return dict(num_recipes=_field(cfg, "num_recipes"), feature_dim=_field(cfg, "feature_dim"),
              seed=_field(cfg, "data_seed"))


def _tasty(cfg):
  """`tasty_videos` from the manual dir, or `tasty_synthetic`: a generated collection in the same format."""
  kwargs = {k: _field(cfg, k) for k in ("split", "stride", "frames_per_step", "max_steps", "min_word_count",
                                         "steps_without_video")}
  kwargs["drop"] = tuple(_field(cfg, "drop"))
  if cfg.name == "tasty_synthetic":
    return tasty_synthetic.load_demo(cfg.get("tfds_data_dir"), **_synthetic_args(cfg), **kwargs)
  return tasty_builder.load(data_dir=cfg.get("tfds_data_dir"), manual_dir=cfg.get("manual_dir"),
                            config=tasty_builder.make_config(features=_field(cfg, "features"), **kwargs))


def tasty_manual_dir(cfg) -> str:
  """The folder of the Tasty files `tasty_videos` / `tasty_synthetic` read (for the corpus leak guard)."""
  if cfg.name == "tasty_synthetic":
    _tasty(cfg)  # Writes the collection if it is not there yet.
    return str(tasty_synthetic.manual_dir(cfg.get("tfds_data_dir"), **_synthetic_args(cfg)))
  return cfg.get("manual_dir") or tasty_builder.default_manual_dir(cfg.get("tfds_data_dir"))


def corpus_file(cfg) -> str:
  """`data.corpus`: a recipe corpus file, or `tasty_synthetic.CORPUS` for the one a demo collection writes."""
  if cfg.corpus == tasty_synthetic.CORPUS:
    if cfg.name != "tasty_synthetic":
      raise DataError(f"config key data.corpus: {cfg.corpus} is the corpus of data.name=tasty_synthetic")
    return str(tasty_synthetic.corpus_path(cfg.get("tfds_data_dir"), **_synthetic_args(cfg),
                                           num_corpus_recipes=_field(cfg, "num_corpus_recipes")))
  path = str(paths.path(cfg.corpus))
  if not paths.path(path).is_file():
    raise DataError(f"config key data.corpus: {path} is not a file (RecipeNLG full_dataset.csv, Recipe1M "
                    "layer1.json or plain text, one recipe a line)")
  return path


def builder(cfg):
  """The prepared TFDS builder for `config.data` (prepared now if needed)."""
  tfds.disable_progress_bar()
  if cfg.name == "synthetic_kitchen":
    return synthetic_kitchen.load(cfg.get("tfds_data_dir"), cfg.get("config_name", "default"))
  if cfg.name in ("tasty_videos", "tasty_synthetic"):
    return _tasty(cfg)
  if cfg.name in rulstm_builders.BUILDERS:
    config = rulstm_builders.make_config(
        split_id=cfg.get("split", 1), modalities=tuple(cfg.modalities), num_frames=cfg.num_frames,
        fps=cfg.fps, tau_a=cfg.tau_a, inputs=cfg.get("inputs", "features"))
    return rulstm_builders.load(cfg.name, data_dir=cfg.get("tfds_data_dir"),
                                manual_dir=cfg.get("manual_dir"), config=config,
                                frames_dir=cfg.get("frames_dir"))
  raise DataError(f"config key data.name: unknown dataset {cfg.name!r}; known: {', '.join(NAMES)}")


def frames_root(cfg) -> str:
  """The frame folder of a frames dataset: `data.frames_dir`, else `<manual dir>/frames`."""
  if cfg.get("frames_dir"):
    return str(paths.path(cfg.frames_dir))
  manual_dir = cfg.get("manual_dir") or rulstm_builders.default_manual_dir(cfg.name, cfg.get("tfds_data_dir"))
  return str(paths.path(manual_dir) / "frames")


def info_from_metadata(meta, example) -> DatasetInfo:
  """Frames datasets (JPEG bytes in `frames`, no `features`) have feature_dim 0."""
  actions = np.asarray(meta["actions"], np.int32).reshape(-1, 2)
  many_shot = meta.get("many_shot")
  inputs = example["features"] if "features" in example else example["frames"]
  return DatasetInfo(
      num_classes=len(actions), num_verbs=len(meta["verbs"]), num_nouns=len(meta["nouns"]),
      actions=actions, feature_dim=int(inputs.shape[-1]) if "features" in example else 0,
      num_frames=int(inputs.shape[0]), action_names=tuple(meta["action_names"]),
      verb_names=tuple(meta["verbs"]), noun_names=tuple(meta["nouns"]),
      many_shot={k: np.asarray(v, np.int64) for k, v in many_shot.items()} if many_shot else None,
      eval_flags=tuple(meta.get("eval_flags", ())))


def source(cfg, split: str):
  """Random-access source of one split (e.g. "test_seen" for a challenge export)."""
  b = builder(cfg)
  if split not in b.info.splits:
    raise DataError(f"{cfg.name} has no split {split!r}; it has {', '.join(b.info.splits)}")
  return b.as_data_source(split=split)


def load(cfg) -> Splits[DatasetInfo]:
  """Train and eval sources of `config.data` with their `DatasetInfo`."""
  b = builder(cfg)
  train = b.as_data_source(split=cfg.get("train_split", "train"))
  evaluation = b.as_data_source(split=cfg.get("eval_split", "validation"))
  if len(train) == 0:
    raise DataError(f"{cfg.name}: the training split is empty")
  return Splits(train, evaluation, info_from_metadata(b.info.metadata, train[0]))
