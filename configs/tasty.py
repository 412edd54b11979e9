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
visual-only student and the CCD student, and compares the students over seeds. With external recipe text
(the premise of Sener & Yao and CCD: the recipe model first learns from Recipe1M+'s text), the teacher
first learns next-step generation on it (stage `pretrain`), then fine-tunes on Tasty's training recipes:

    python -m anticipax.distill_pipeline --config=configs/tasty.py --workdir=/tmp/tasty_corpus \\
        --config.manual_dir=/data/tasty --config.corpus=/data/recipenlg/full_dataset.csv --config.seeds=3

`--config.corpus` takes RecipeNLG's `full_dataset.csv`, Recipe1M's `layer1.json` or plain text (one recipe
a line, steps separated by `|`); the format is detected, or `--config.corpus_format=recipenlg|recipe1m|text`.
Corpus recipes equal to a Tasty validation or test recipe (same normalized steps, or same URL) are dropped;
the pipeline prints how many. A stage alone:

    python -m anticipax.main --config=configs/tasty.py:stage=teacher --workdir=/tmp/tasty_teacher
    python -m anticipax.predict --config=configs/tasty.py:stage=teacher --workdir=/tmp/tasty_teacher

Evaluation (Sener & Yao's protocol): for k = 1..8 observed steps (`eval.max_observed`; `eval.include_k0`
adds k = 0) the sentence of step k+1, beam search (width 5; the demo decodes greedily), BLEU-1..4, METEOR,
ROUGE-L, CIDEr (pycocoevalcap; METEOR needs Java) per k, averaged over k, and pooled over all (recipe, k)
pairs (`pooled/...`); references are the dataset's own sentences (`raw_steps`), tokenized by coco-caption's
PTB tokenizer as the papers' scorer does. The checkpoint best on validation BLEU-4 is scored once on
`eval.test_split` (`test/...`: the numbers to compare with published tables). Beams rank by summed
log-probability (`eval.length_penalty` 0): on the demo's test split (`benchmarks/length_penalty.py`) a
length penalty of 1 lowered BLEU-4 (teacher 92.84 -> 92.05 at width 5, visual student seed 0 86.91 -> 86.23)
for sentences 0.04 words longer (references: 5.39 words, predictions 5.45-5.51).

Choices the CCD paper leaves open, and why: the decoder attends to the state and can copy the recipe's
ingredient words (`model.decoder.copy_ingredients`: a pointer-generator over them, teacher and students
alike; 0 turns it off). Without it a step names an ingredient only through the state's 64 or 512 numbers,
and on the demo the teacher wrote the right sentence with the wrong ingredient ("cook the lamb until
browned" right after "season the sausage ..."): 59.6 BLEU-4, below retrieval's 65.2; with it 89.2, and the
visual-only student 53.4 -> 81.9 (seeds 0-2). The step representations distilled are `distill.contrast` (see
`CONTRAST`); each goes through its own
linear projection to 128-d (the teacher's head is trained with the student, as in contrastive
representation distillation) and InfoNCE runs both directions at temperature 0.1 over every other step of
every recipe in the batch; the teacher is frozen and its states cached (`--config.stages.student.distill.
online_teacher=<teacher workdir>` runs it online instead, which also allows KL on the decoder's word
distributions, `distill.word_kl`). Word-level decoder vocabulary from the training split; teacher text
encoder mean-pooled (as sentence-transformers pools MiniLM); AdamW with warmup and cosine decay.
"""

import ml_collections

from configs import common

STAGES = ("pretrain", "teacher", "visual", "ccd")
# What CCD contrasts: the temporal states ("states") or each step's own vector ("steps"). On the demo
# (validation BLEU-4, seeds 0-2) states gave 83.38 ± 2.03, steps 81.69 ± 1.16, the visual-only student
# 81.85 ± 1.66 (without copying ingredients: 55.98 ± 0.59, 53.21 ± 0.77 and 53.30 ± 1.12).
CONTRAST = "states"


def stage_config(stage: str, *, demo: bool = False) -> ml_collections.ConfigDict:
  """One trainer config: "pretrain" (the text teacher on a recipe corpus), "teacher" (text, on Tasty's
  training recipes), "visual" (visual-only student) or "ccd" (CCD student)."""
  if stage not in STAGES:
    raise ValueError(f"configs/tasty.py: stage={stage!r}; known: {', '.join(STAGES)}")
  if stage == "pretrain":
    return pretrain_config(demo=demo)
  c = common.base_config()
  c.task = "next_step"
  c.data.name = "tasty_synthetic" if demo else "tasty_videos"
  # Steps without a video segment stay ("keep"): the next step is the recipe's next sentence whether or not
  # the video shows it (many recipes end with an unfilmed "Enjoy!"), and a visual student sees its learned
  # no-video vector there; "drop" removes them first, as public Tasty loaders do.
  c.data.update(split="split_4022", features="{recipe_dir}/resnet50.npy", stride=5, steps_without_video="keep",
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
      "decoder": {"num_layers": 1 if demo else 3, "max_len": 12 if demo else 24, "tie_embeddings": True,
                  "copy_ingredients": c.data.max_ingredient_words},
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
      "kind": "contrastive" if stage == "ccd" else "", "weight": 1.0, "temperature": 0.1, "contrast": CONTRAST,
      "proj_dim": 64 if demo else 128,
      "teacher_outputs": "", "online_teacher": "", "word_kl": 0.0, "word_temperature": 1.0})
  c.loss = ml_collections.ConfigDict({"label_smoothing": 0.0})
  c.optimizer.update(name="adamw", weight_decay=0.01, grad_clip=1.0)
  c.schedule.update(peak_lr=1e-3 if demo else 3e-4, warmup_steps=100, decay="cosine", end_factor=0.0)
  steps = 900 if demo else 20000
  c.train.update(batch_size=16 if demo else 32, steps=steps, log_every=100, eval_every=steps // 2 if demo else 2000,
                 checkpoint_every=steps // 2 if demo else 2000, profile_steps=0)
  # Published tables are test numbers: the checkpoint best on validation BLEU-4 is scored on `test_split`.
  c.eval = ml_collections.ConfigDict({"batch_size": 32 if demo else 64, "best_metric": "bleu4", "test_split": "test",
                                      "beam_width": 1 if demo else 5, "length_penalty": 0.0, "max_observed": 8,
                                      "include_k0": False})
  return c


def pretrain_config(*, demo: bool = False) -> ml_collections.ConfigDict:
  """The text teacher learning next-step generation on external recipe text (`data.corpus`), scored on
  Tasty's validation split; the teacher stage then fine-tunes it on Tasty's training recipes."""
  c = stage_config("teacher", demo=demo)
  c.data.update(corpus="", corpus_format="", corpus_max_recipes=0)
  if demo:
    c.data.num_corpus_recipes = 4000
  steps = 600 if demo else 100000
  c.schedule.update(peak_lr=1e-3 if demo else 3e-4, warmup_steps=100 if demo else 2000)
  c.train.update(batch_size=32 if demo else 64, steps=steps, eval_every=steps, checkpoint_every=steps // 2 if demo else 5000)
  return c


def pipeline(kind: str = "real", *, ablation: bool = False) -> ml_collections.ConfigDict:
  """The `distill_pipeline` config: corpus pretraining -> teacher -> visual-only (baseline) and CCD (student)
  x seeds. `ablation` adds the CCD student contrasting the other representation (arm `student_<contrast>`)."""
  demo = kind == "demo"
  manual_dir = ml_collections.FieldReference(None, field_type=str)
  tfds_data_dir = ml_collections.FieldReference(None, field_type=str)
  features = ml_collections.FieldReference("{recipe_dir}/resnet50.npy", field_type=str)
  # "<synthetic>": the RecipeNLG-form corpus the demo collection writes beside itself.
  corpus = ml_collections.FieldReference("<synthetic>" if demo else "", field_type=str)
  corpus_format = ml_collections.FieldReference("", field_type=str)
  stages = {"pretrain": stage_config("pretrain", demo=demo), "teacher": stage_config("teacher", demo=demo),
            "baseline": stage_config("visual", demo=demo), "student": stage_config("ccd", demo=demo)}
  stages["pretrain"].data.corpus, stages["pretrain"].data.corpus_format = corpus, corpus_format
  stages["teacher"].text.init_workdir = "<pretrain>"  # "" when there is no corpus: text.pretrained
  arms = ["baseline", "student"]
  if ablation:
    other = "states" if CONTRAST == "steps" else "steps"
    stages[f"student_{other}"] = stage_config("ccd", demo=demo)
    stages[f"student_{other}"].distill.contrast = other
    arms.append(f"student_{other}")
  for name in arms[1:]:
    stages[name].distill.teacher_outputs = "<teacher>"  # its export of what distill.contrast contrasts
  for c in stages.values():
    c.data.manual_dir, c.data.tfds_data_dir, c.data.features = manual_dir, tfds_data_dir, features
  out = ml_collections.ConfigDict({
      "manual_dir": manual_dir, "tfds_data_dir": tfds_data_dir, "features": features, "seeds": 3,
      "parallel": 0 if demo else 1,  # arm runs at once (distill_pipeline): one per core on the CPU, else 1
      "corpus": corpus, "corpus_format": corpus_format,
      "stages": stages, "order": ["pretrain", "teacher", *arms], "arms": arms, "compare_metric": "test/bleu4"})
  if not demo:
    pretrained = ml_collections.FieldReference(stages["teacher"].text.pretrained, field_type=str)
    stages["pretrain"].text.pretrained = stages["teacher"].text.pretrained = pretrained
    out.pretrained = pretrained
  return out


def get_config(arg: str | None = None):
  opts = common.parse_arg(arg, __file__, stage=("", *STAGES))
  if opts["stage"]:
    return stage_config(opts["stage"])
  return pipeline()
