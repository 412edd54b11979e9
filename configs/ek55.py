"""AVT-h on EPIC-Kitchens-55 features: AVT's `expts/08_ek55_avt_tsn.txt` (`10_ek55_avt_ig65m.txt`).

Put the RULSTM files for EK55 (training.csv, validation.csv, actions.csv, EPIC_many_shot_verbs.csv,
EPIC_many_shot_nouns.csv and the rgb/ LMDB) in ~/tensorflow_datasets/downloads/manual/epic_kitchens_55
(or pass --config.data.manual_dir), then:

    python -m anticipax.prepare --config=configs/ek55.py              # build the dataset once
    python -m anticipax.main --config=configs/ek55.py --workdir=/tmp/avt_ek55
    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55   # evaluate
    python -m anticipax.predict --config=configs/ek55.py --workdir=/tmp/avt_ek55 \\
        --split=test_seen --output=/tmp/avt_ek55/test_seen.json      # challenge submission

With a text teacher's exported logits (configs/teacher_ek55.py), the distilled student:

    python -m anticipax.main --config=configs/ek55.py --workdir=/tmp/avt_ek55_kd \\
        --config.distill.kind=kl --config.distill.teacher_outputs=/tmp/teacher_ek55/teacher_outputs_train.npz

`get_config("features=ig65m")` reads 2048-d IG65M features from an `ig65m/` LMDB in the same layout (AVT's
`10_ek55_avt_ig65m.txt`, the features the seed paper's EK55 student used); `"world=4"` reproduces AVT's
4-GPU runs.

The recipe, from the released expts files: features straight into AVT-h (identity backbone, 1024-d TSN or
2048-d IG65M); AVT-h 12 layers, 8 heads, width 2048, GPT-2 dropouts 0.1; classifier dropout 0.8; no
past-frame classification; Adam (PyTorch's, coupled L2) lr 5e-6, weight decay 1e-4, batch 32, 20 epochs
with cosine annealing (TSN: the first 5 of them warm up; IG65M: no warmup); losses next action 1, future
feature 2.0; 10 frames at 2 fps (tau_o 5 s), tau_a 1 s; trained on the training videos minus the validation
ones (RULSTM's training.csv) and evaluated on validation.csv. Distillation, from the seed paper (its EK55
job names; the released code holds the top-k variant): KL at T = 5, weight 20, over the teacher's top 50
classes, averaged over them (`distill.reduction="mean"`).

Deliberate differences: AVT launched 4 processes (global batch 128 at lr 2e-5, its per-process lr
scaling); the default here is one process, as the seed paper's student ran (`world=4` gives AVT's). A
segment missing from the teacher's file is left out of the distillation loss rather than given a uniform
target.
"""

from configs import common

TRAIN_EXAMPLES = 23493  # RULSTM training segments
# RULSTM's EK55 actions.csv: 2513 actions over 125 verbs and 352 nouns (the classifiers' widths).
NUM_CLASSES, NUM_VERBS, NUM_NOUNS = 2513, 125, 352
FEATURES = {"tsn": ("rgb", 5), "ig65m": ("ig65m", 0)}  # LMDB folder, warmup epochs


def get_config(arg: str | None = None):
  opts = common.parse_arg(arg, __file__, features=tuple(FEATURES), world=1)
  features = opts["features"]
  modality, warmup_epochs = FEATURES[features]
  c = common.base_config()
  c.data.name = "epic_kitchens_55"
  c.data.modalities = [modality]
  c.data.num_frames = 10  # 10 frames at 2 fps: tau_o = 5 s
  c.data.fps = 2.0
  c.data.tau_a = 1.0

  c.model.backbone.kind = "identity"
  c.model.head.update(inter_dim=2048, num_layers=12, num_heads=8, dropout=0.1)
  c.model.dropout = 0.8
  c.model.verb_noun_heads = False
  c.loss.update(next_action=1.0, future_feature=2.0, past_action=0.0)

  common.avt_recipe(c, train_examples=TRAIN_EXAMPLES, optimizer="adam", lr=5e-6, weight_decay=1e-4, epochs=20,
                    warmup_epochs=warmup_epochs, batch_size=32, world=opts["world"])
  # Distillation (off until a teacher's outputs are given): --config.distill.kind=kl
  # --config.distill.teacher_outputs=<file>.
  c.distill.update(temperature=5.0, weight=20.0, top_k=50, reduction="mean")
  c.eval.best_metric = "action/mean_top5_recall"
  return c
