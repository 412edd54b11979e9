"""Method 2 on Tasty Videos (Yang et al. 2022): next-step sentence anticipation with cross-modal
contrastive distillation (CCD) from a text teacher into a visual student.

Files (DATA_FORMATS.md section 5) in ~/tensorflow_datasets/downloads/manual/tasty_videos or
`--config.manual_dir`: `ALL_RECIPES_without_videos/<recipe>/{recipe_encoded.xml or recipe.xml,
csvalignment.dat, fps.txt}`, `id2word_tasty.txt`, `SPLITS/split_4022/` (and/or `split_2511/`),
`ALL_RECIPES.txt`, and your per-frame features: float32 `[rows, D]` .npy, one row every
`--config.stride` frames (5 matches csvalignment.dat), found by `--config.features` (a pattern with
`{recipe}`, `{recipe_dir}` and `{root}`; default `{recipe_dir}/resnet50.npy`, e.g.
`--config.features=/feats/{recipe}.npy`; `python -m anticipax.extract` writes this layout).

    python -m anticipax.distill_pipeline --config=configs/tasty.py --workdir=/tmp/tasty \\
        --config.manual_dir=/data/tasty --config.seeds=3

runs the teacher (all-MiniLM-L6-v2 from the hub, or `--config.pretrained=<local HF dir>`), the
visual-only student and the CCD student, and compares the students over seeds. A stage alone:

    python -m anticipax.main --config=configs/tasty.py:stage=teacher --workdir=/tmp/tasty_teacher
    python -m anticipax.predict --config=configs/tasty.py:stage=teacher --workdir=/tmp/tasty_teacher

Evaluation (Sener & Yao's protocol): for k = 1..8 observed steps the sentence of step k+1, beam search
(width 5), BLEU-1..4, METEOR, ROUGE-L, CIDEr (pycocoevalcap; METEOR needs Java) per k and averaged over k.

Choices the CCD paper leaves open, and why: the step representations distilled are the temporal
transformer's per-step states (what predicts each next step, in both models); each goes through its own
linear projection to 128-d (the teacher's head is trained with the student, as in contrastive
representation distillation) and InfoNCE runs both directions at temperature 0.1 over every other step of
every recipe in the batch; the teacher is frozen and its states cached (`--config.stages.student.distill.
online_teacher=<teacher workdir>` runs it online instead, which also allows KL on the decoder's word
distributions, `distill.word_kl`). Word-level decoder vocabulary from the training split; teacher text
encoder mean-pooled (as sentence-transformers pools MiniLM); AdamW with warmup and cosine decay.
"""

import ml_collections

from configs import common

STAGES = ("teacher", "visual", "ccd")


def stage_config(stage: str, *, demo: bool = False) -> ml_collections.ConfigDict:
  """One trainer config: "teacher" (text), "visual" (visual-only student) or "ccd" (CCD student)."""
  if stage not in STAGES:
    raise ValueError(f"configs/tasty.py: stage={stage!r}; known: {', '.join(STAGES)}")
  c = common.base_config()
  c.task = "next_step"
  c.data.name = "tasty_synthetic" if demo else "tasty_videos"
  c.data.update(split="split_4022", features="{recipe_dir}/resnet50.npy", stride=5,
                frames_per_step=8, max_steps=12 if demo else 16, min_word_count=1 if demo else 2, drop=(),
                max_words=12 if demo else 24, max_ingredient_words=24 if demo else 48)
  if demo:
    c.data.update(num_recipes=600, feature_dim=64, data_seed=0)
  c.model = ml_collections.ConfigDict({
      "modality": "text" if stage == "teacher" else "visual",
      "dim": 64 if demo else 512, "num_heads": 4 if demo else 8, "dropout": 0.1, "dtype": "float32",
      "mlp_ratio": 4,
      "visual": {"num_layers": 1 if demo else 2, "max_frames": 8, "pooling": "mean"},
      "text": {"pooling": "mean"},
      "temporal": {"num_layers": 2, "max_steps": 12 if demo else 16},
      "decoder": {"num_layers": 1 if demo else 3, "max_len": 12 if demo else 24, "tie_embeddings": True},
  })
  if stage == "teacher":
    c.text = common.text_config(max_len=24 if demo else 48, hist_len=0)
    if demo:
      c.text.update(tokenizer="build_from_corpus")
      c.text.scratch.update(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                            max_position_embeddings=32)
    else:
      c.text.pretrained = "sentence-transformers/all-MiniLM-L6-v2"
  c.distill = ml_collections.ConfigDict({
      "kind": "contrastive" if stage == "ccd" else "", "weight": 1.0, "temperature": 0.1,
      "proj_dim": 64 if demo else 128,
      "teacher_outputs": "", "online_teacher": "", "word_kl": 0.0, "word_temperature": 1.0})
  c.loss = ml_collections.ConfigDict({"label_smoothing": 0.0})
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  c.schedule.update(peak_lr=1e-3 if demo else 3e-4, warmup_steps=100, decay="cosine", end_factor=0.0)
  steps = 900 if demo else 20000
  c.train.update(batch_size=16 if demo else 32, steps=steps, log_every=100, eval_every=steps // 2 if demo else 2000,
                 checkpoint_every=steps // 2 if demo else 2000, profile_steps=0)
  c.eval = ml_collections.ConfigDict({"batch_size": 32 if demo else 64, "best_metric": "bleu4", "beam_width": 1 if demo else 5,
                                      "length_penalty": 0.0, "max_observed": 8, "include_k0": False})
  return c


def pipeline(kind: str = "real") -> ml_collections.ConfigDict:
  """The `distill_pipeline` config: teacher -> visual-only (baseline) and CCD (student) x seeds."""
  demo = kind == "demo"
  manual_dir = ml_collections.FieldReference(None, field_type=str)
  tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  features = ml_collections.FieldReference("{recipe_dir}/resnet50.npy", field_type=str)
  stages = {"teacher": stage_config("teacher", demo=demo), "baseline": stage_config("visual", demo=demo),
            "student": stage_config("ccd", demo=demo)}
  stages["student"].distill.teacher_outputs = "<teacher>/teacher_states_train.npz"
  for c in stages.values():
    c.data.manual_dir, c.data.tfds_data_dir, c.data.features = manual_dir, tfds_data_dir, features
  out = ml_collections.ConfigDict({
      "manual_dir": manual_dir, "tfds_data_dir": tfds_data_dir, "features": features, "seeds": 3,
      "stages": stages, "order": ["teacher", "baseline", "student"], "arms": ["baseline", "student"],
      "compare_metric": "bleu4"})
  if not demo:
    pretrained = ml_collections.FieldReference(stages["teacher"].text.pretrained, field_type=str)
    stages["teacher"].text.pretrained = pretrained
    out.pretrained = pretrained
  return out


def get_config(arg: str | None = None):
  opts = dict(kv.split("=") for kv in (arg or "").split(",") if kv)
  if "stage" in opts:
    return stage_config(opts["stage"])
  return pipeline()
