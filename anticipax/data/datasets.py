"""Dataset registry: a config's `data.name` -> prepared splits and their `DatasetInfo`."""

from __future__ import annotations

import os

import numpy as np

from anticipax.data.errors import DataError
from anticipax.data.pipeline import DatasetInfo, Splits


def _synthetic_kitchen(cfg) -> Splits:
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  builder = synthetic_kitchen.load(cfg.get("tfds_data_dir"), cfg.get("config_name", "default"))
  meta = builder.info.metadata
  train = builder.as_data_source(split=cfg.get("train_split", "train"))
  evaluation = builder.as_data_source(split=cfg.get("eval_split", "validation"))
  example = train[0]
  actions = np.asarray(meta["actions"], np.int32)
  info = DatasetInfo(
      num_classes=len(actions), num_verbs=len(meta["verbs"]), num_nouns=len(meta["nouns"]),
      actions=actions, feature_dim=int(example["features"].shape[-1]),
      num_frames=int(example["features"].shape[0]), action_names=tuple(meta["action_names"]))
  return Splits(train, evaluation, info)


# The readers for the public RULSTM formats (CSVs + LMDB features) land with the datasets issue; until
# then a real-data config stops here with one line saying what is missing and where it goes.
_PUBLIC = {
    "egtea_gaze_plus": ("EGTEA Gaze+", "training1.csv, validation1.csv, actions.csv and the rgb/ LMDB"),
    "epic_kitchens_55": ("EPIC-Kitchens-55", "training.csv, validation.csv, actions.csv, "
                         "EPIC_many_shot_{verbs,nouns}.csv and the rgb/ LMDB"),
    "epic_kitchens_100": ("EPIC-Kitchens-100", "training.csv, validation.csv, actions.csv and the rgb/ LMDB"),
}


def _public(name: str, cfg) -> Splits:
  title, files = _PUBLIC[name]
  manual_dir = os.path.expanduser(cfg.get("manual_dir") or f"~/tensorflow_datasets/downloads/manual/{name}")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise DataError(f"{title} data not found: put the RULSTM files ({files}) in {manual_dir} "
                    f"(or set --config.data.manual_dir)")
  raise DataError(f"{title} files found in {manual_dir}, but this anticipax version has no {name} reader "
                  "yet (RULSTM CSV/LMDB readers arrive with the datasets issue)")


def load(cfg) -> Splits:
  """Loads `config.data`: returns the train/eval sources and the dataset's `DatasetInfo`."""
  if cfg.name == "synthetic_kitchen":
    return _synthetic_kitchen(cfg)
  if cfg.name in _PUBLIC:
    return _public(cfg.name, cfg)
  raise DataError(f"unknown dataset {cfg.name!r} (config key data.name); known: "
                  f"synthetic_kitchen, {', '.join(_PUBLIC)}")
