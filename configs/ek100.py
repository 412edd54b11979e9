"""AVT-h on EPIC-Kitchens-100 features (RULSTM train/validation split).

Put the RULSTM files for EK100 (training.csv, validation.csv, test_timestamps.csv, actions.csv,
validation_tail_{verbs,nouns,actions}_ids.csv, validation_unseen_participants_ids.csv and the rgb/ LMDB)
in ~/tensorflow_datasets/downloads/manual/epic_kitchens_100 (or pass --config.data.manual_dir), then:

    python -m anticipax.prepare --config=configs/ek100.py              # build the dataset once
    python -m anticipax.main --config=configs/ek100.py --workdir=/tmp/avt_ek100
    python -m anticipax.predict --config=configs/ek100.py --workdir=/tmp/avt_ek100   # evaluate
    python -m anticipax.predict --config=configs/ek100.py --workdir=/tmp/avt_ek100 \\
        --split=test --output=/tmp/avt_ek100/test.json                # challenge submission
"""

from configs import common

TRAIN_EXAMPLES = 67217  # RULSTM EK100 training segments


def get_config(arg: str | None = None):
  del arg
  c = common.base_config()
  c.data.name = "epic_kitchens_100"
  c.data.modalities = ["rgb"]
  c.data.num_frames = 10  # AVT: 10 frames at 1 fps, anticipating 1 s ahead
  c.data.fps = 1.0
  c.data.tau_a = 1.0

  c.model.backbone.dim = 768
  c.model.head.update(inter_dim=2048, num_layers=12, num_heads=8, dropout=0.8)  # as configs/ek55.py
  c.model.dropout = 0.8
  c.model.verb_noun_heads = True
  c.loss.update(verb=1.0, noun=1.0)

  common.avt_training(c, train_examples=TRAIN_EXAMPLES)
  c.eval.best_metric = "action/mean_top5_recall"
  # Challenge submissions carry self-reported supervision levels.
  c.export = {"supervision_levels": {"sls_pt": 1, "sls_tl": 4, "sls_td": 3}}
  return c
