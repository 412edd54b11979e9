"""AVT-b (ViT-B/16 on frames + AVT-h) on EGTEA Gaze+ (split 1): AVT's `expts/12_egtea_avt.txt`.

Put the RULSTM EGTEA files (training1.csv, validation1.csv, actions.csv) in
~/tensorflow_datasets/downloads/manual/egtea_gaze_plus (or pass --config.data.manual_dir) and the RGB frames
at 30 fps as `<manual_dir>/frames/<video>/frame_<10 digits>.jpg` (or pass --config.data.frames_dir; the
EPIC layout `<root>/<participant>/rgb_frames/<video>/` is read too). The ViT starts from the original
ImageNet-21k -> ImageNet-1k ViT-B/16 at 224 px, the weights AVT loads (timm's `jx_vit_base_p16_224`):
download `gs://vit_models/imagenet21k+imagenet2012/ViT-B_16-224.npz` (google-research/vision_transformer)
to ~/models/ViT-B_16-224.npz or pass --config.model.backbone.pretrained (the 384 px `ViT-B_16.npz` loads as
well, its position embeddings resampled to 14 x 14; an HF `ViTModel` directory works too). Then:

    python -m anticipax.prepare --config=configs/egtea_vitb.py        # window JPEGs into array_record, once
    python -m anticipax.main --config=configs/egtea_vitb.py --workdir=/tmp/avt_egtea_vitb
    python -m anticipax.predict --config=configs/egtea_vitb.py --workdir=/tmp/avt_egtea_vitb   # 3 crops + flips

The trained backbone as a RULSTM LMDB of per-frame features (every frame; centre crop at the eval scale),
which configs/egtea.py reads with `--config.data.modalities=avtb` when it lies in its manual dir:

    python -m anticipax.extract --config=configs/egtea_vitb.py --config.extract.workdir=/tmp/avt_egtea_vitb \\
        --config.extract.output=/tmp/egtea_features/avtb

(without `extract.workdir` it runs the pretrained ViT; `extract.format=npy` writes one `<video>.npy` float32
[rows, 768] per video, a row every `extract.stride` frames, the Tasty layout). Distillation from a text
teacher takes the options of configs/egtea.py unchanged: `--config.distill.kind=kl
--config.distill.teacher_outputs=<teacher_outputs_train.npz>` (KL at T = 10, weight 150, class-averaged).

The recipe, from the released expts file: ViT-B/16 (timm `vit_base_patch16_224`: no dropout) on each of 10
frames at 1 fps (tau_o 10 s), tau_a 0.5 s; pixels scaled to [-1, 1] (mean = std = 0.5); AVT-h 2 layers,
4 heads, width 2048, GPT-2 dropouts 0.1; classifier dropout 0.2; past-frame classification on; losses next
action 1, future feature 1.0, past classification 0.1; SGD-Nesterov lr 5e-4 per process, weight decay 1e-6
on all parameters, 5 warm-up epochs then 5 cosine epochs; 3 clips per GPU. Training clips: short side
rescaled to a random 248-280 px, a random 224 crop, a horizontal flip half of the time; evaluation: short side
248, the top-left, centre and bottom-right 224 crops and their mirror images, logits averaged over the 6.

Launch size: AVT ran this file on 32 GPUs (4 nodes x 8): a global batch of 96, at 32 x 5e-4 = 1.6e-2
through its per-process lr scaling (configs/common.py `avt_recipe`). That is the default here (`world=32`).
The feature configs default to the seed paper's one-process launch instead (configs/egtea.py); for AVT-b
that launch is `get_config("world=1")`: batch 3 at 5e-4, 2766 steps an epoch. `world=N` gives an N-GPU
AVT launch, `split=2` another EGTEA split.

Memory and speed: `--config.model.backbone.remat=True` recomputes each ViT block in the backward pass and
`--config.model.dtype=bfloat16` computes in bfloat16 (parameters stay float32); benchmarks/avt_b.py measures
both. `--config.train.grad_accum_steps=k` runs each global batch as k microbatches and one update, e.g. AVT's
batch of 96 on 8 GPUs with k = 4 (3 clips per GPU per microbatch, as AVT). Deliberate differences: images are resized with Pillow's bilinear filter (antialiased when shrinking)
rather than torch's `interpolate`; AVT-h weights are initialised as the house modules do.
"""

import ml_collections

from configs import common
from configs import egtea

TRAIN_EXAMPLES = egtea.TRAIN_EXAMPLES


def get_config(arg: str | None = None):
  opts = common.parse_arg(arg, __file__, split=(1, 1, 2, 3), world=32)
  c = common.base_config()
  egtea.egtea_windows(c, opts["split"])
  c.data.inputs = "frames"  # window JPEGs, decoded and augmented in the input pipeline
  c.data.frames_dir = ml_collections.FieldReference(None, field_type=str)  # None: <manual_dir>/frames
  c.data.crop_size = 224
  c.data.train_short_side = (248, 280)
  c.data.flip_prob = 0.5
  c.data.eval_short_side = 248
  c.data.eval_crops = 3
  c.data.eval_flips = True

  c.model.backbone = ml_collections.ConfigDict({
      "kind": "vit", "name": "B/16", "image_size": 224, "dim": 768,
      "pretrained": "~/models/ViT-B_16-224.npz",
      "pixel_mean": (0.5, 0.5, 0.5), "pixel_std": (0.5, 0.5, 0.5),
      "remat": False, "remat_policy": "nothing_saveable"})
  c.model.head.update(inter_dim=2048, num_layers=2, num_heads=4, dropout=0.1)
  c.model.dropout = 0.2
  c.loss.update(next_action=1.0, future_feature=1.0, past_action=0.1)

  common.avt_recipe(c, train_examples=TRAIN_EXAMPLES, optimizer="sgd", lr=5e-4, weight_decay=1e-6, epochs=10,
                    warmup_epochs=5, batch_size=3, world=opts["world"])
  c.train.grad_accum_steps = 1  # k: each global batch runs as k microbatches (fewer devices, same batch)
  egtea.egtea_distillation(c)

  # python -m anticipax.extract: the backbone over every frame of a frame folder (anticipax/extract.py).
  c.extract = ml_collections.ConfigDict({
      "frames_dir": "",  # default: the dataset's frame folder (data.frames_dir or <manual_dir>/frames)
      "output": "",      # the LMDB directory (format lmdb) or the folder of <video>.npy (format npy)
      "format": "lmdb",
      "stride": 1,       # every frame (lmdb keys as RULSTM's); Tasty's npy rows are every 5th
      "workdir": "",     # a trained AVT-b run (its best checkpoint's backbone); "": model.backbone.pretrained
      "checkpoint": "best",
      "batch_size": 256,
      "short_side": 248,  # then the centre crop_size square
  })
  return c
