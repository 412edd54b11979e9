"""AVT-h on EPIC-Kitchens-55 (RULSTM train/validation split) features, as in Girdhar & Grauman (ICCV 2021).

Put the RULSTM files for EK55 (training.csv, validation.csv, actions.csv, EPIC_many_shot_verbs.csv,
EPIC_many_shot_nouns.csv and the rgb/ LMDB) in ~/tensorflow_datasets/downloads/manual/epic_kitchens_55
(or pass --config.data.manual_dir), then:

    python -m anticipax.prepare --config=configs/ek55.py              # build the dataset once
    python -m anticipax.main --config=configs/ek55.py --workdir=/tmp/avt_ek55
    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55   # evaluate
    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55 \\
        --split=test_seen --output=/tmp/avt_ek55/test_seen.json      # challenge submission
"""

from configs import common

TRAIN_EXAMPLES = 23493  # RULSTM training segments


def get_config(arg: str | None = None):
  del arg
  c = common.base_config()
  c.data.name = "epic_kitchens_55"
  c.data.modalities = ["rgb"]
  c.data.num_frames = 10  # AVT: 10 frames at 2 fps (tau_o = 5 s), anticipating 1 s ahead
  c.data.fps = 2.0
  c.data.tau_a = 1.0

  c.model.backbone.dim = 768
  c.model.head.update(inter_dim=2048, num_layers=12, num_heads=8, dropout=0.8)
  c.model.dropout = 0.8
  c.model.verb_noun_heads = False

  common.avt_training(c, train_examples=TRAIN_EXAMPLES)
  # Distillation from the text teacher (off until a teacher's outputs are given; the paper's released
  # code uses these values): --config.distill.kind=kl --config.distill.teacher_outputs=<file>.
  c.distill.update(temperature=5.0, weight=20.0, top_k=50)
  c.eval.best_metric = "action/mean_top5_recall"
  return c
