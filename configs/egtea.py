"""AVT-h on EGTEA Gaze+ (split 1) pre-extracted features, as in Girdhar & Grauman (ICCV 2021).

Put the RULSTM files for EGTEA (training1.csv, validation1.csv, actions.csv and the rgb/ LMDB) in
~/tensorflow_datasets/downloads/manual/egtea_gaze_plus (or pass --config.data.manual_dir), then:

    python -m anticipax.prepare --config=configs/egtea.py              # build the dataset once
    python -m anticipax.main --config=configs/egtea.py --workdir=/tmp/avt_egtea
    python -m anticipax.predict --config=configs/egtea.py --workdir=/tmp/avt_egtea   # evaluate

`get_config("split=2")` picks another of the three splits.
"""

from configs import common

TRAIN_EXAMPLES = 8299  # RULSTM split 1 training segments


def get_config(arg: str | None = None):
  opts = dict(kv.split("=") for kv in (arg or "").split(",") if kv)
  c = common.base_config()
  c.data.name = "egtea_gaze_plus"
  c.data.split = int(opts.get("split", 1))
  c.data.modalities = ["rgb"]
  c.data.num_frames = 10  # AVT: 10 frames at 1 fps, anticipating 0.5 s ahead
  c.data.fps = 1.0
  c.data.tau_a = 0.5

  c.model.backbone.dim = 768
  c.model.head.update(inter_dim=2048, num_layers=2, num_heads=4, dropout=0.2)
  c.model.dropout = 0.2

  common.avt_training(c, train_examples=TRAIN_EXAMPLES)
  # Distillation from the text teacher (off until a teacher's outputs are given; the paper's released
  # code uses these values): --config.distill.kind=kl --config.distill.teacher_outputs=<file>.
  c.distill.update(temperature=10.0, weight=150.0, top_k=0)
  c.eval.best_metric = "action/mean_top1"
  return c
