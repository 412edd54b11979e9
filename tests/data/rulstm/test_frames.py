"""Frames variant of the RULSTM builders, clip decoding/augmentation, multi-view evaluation, AVT-b training.

Frame fixtures (`write_frames`) hold every frame 1..length of every fixture video (length = the last
segment's end + 12) as a small JPEG whose red channel is `5 f % 256` (frame f), green `10 v + 3 x` and blue
`4 y`: which frame, which video, and the orientation of a crop can be read off the pixels.
"""

from __future__ import annotations

import io
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from anticipax import sharding
from anticipax import train
from anticipax.data import datasets
from anticipax.data import frames as frames_lib
from anticipax.data import pipeline
from anticipax.data import windows
from anticipax.data.errors import DataError
from anticipax.models.vit_import import load_vit
from configs import egtea_vitb
from tests.data.rulstm import fixtures as fx

SIZE = (40, 56)  # (height, width) of the fixture frames
GOLDEN_VIT = os.path.join(os.path.dirname(__file__), "..", "..", "models", "golden", "tiny_vit")
# A tiny AVT-b: the "tiny" ViT at 32 px on crops of frames rescaled to a 34-40 px short side.
TINY_DATA = dict(crop_size=32, train_short_side=(34, 40), eval_short_side=36, eval_crops=3, eval_flips=True)


def frame_image(video_index: int, frame: int, size=SIZE) -> np.ndarray:
  h, w = size
  y, x = np.mgrid[0:h, 0:w]
  return np.stack([np.full((h, w), 5 * frame % 256), 10 * video_index + 3 * x, 4 * y], -1).astype(np.uint8)


def write_frames(info: dict, root, *, layout: str = "epic", size=SIZE) -> pathlib.Path:
  """Writes every frame of every fixture video under `root` (EPIC or flat layout); returns `root`."""
  root = pathlib.Path(root)
  ends = {}
  for rows in info["segments"].values():
    for s in rows:
      ends[s.video] = max(ends.get(s.video, 0), s.end_frame)
  for v, video in enumerate(info["videos"]):
    folder = root / video.split("_")[0] / "rgb_frames" / video if layout == "epic" else root / video
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(1, ends[video] + 13):
      Image.fromarray(frame_image(v, f, size)).save(folder / frames_lib.frame_name(f), quality=95)
  return root


def tiny_vit_config(name: str, manual_dir, data_dir, *, frames_dir=None, num_frames: int = 4, fps: float = 1.0,
                    tau_a: float = 1.0, batch_size: int = 8):
  """configs/egtea_vitb.py shrunk to the tiny ViT on the fixture's frames."""
  c = egtea_vitb.get_config()
  c.data.update(name=name, manual_dir=str(manual_dir), tfds_data_dir=str(data_dir), num_frames=num_frames,
                fps=fps, tau_a=tau_a, num_threads=2, **TINY_DATA)
  if frames_dir is not None:
    c.data.frames_dir = str(frames_dir)
  c.model.backbone.update(name="tiny", image_size=32, pretrained="")
  c.model.head.update(inter_dim=32, num_layers=1, num_heads=2)
  c.train.update(batch_size=batch_size, steps=2, log_every=1, eval_every=2, checkpoint_every=2, profile_steps=0,
                 async_checkpointing=False)
  c.schedule.warmup_steps = 0
  c.eval.batch_size = batch_size
  return c


@pytest.fixture(scope="module")
def ek100(tmp_path_factory):
  """EK100 fixture with EPIC-layout frames (in a folder of its own), built as a frames dataset."""
  tmp = tmp_path_factory.mktemp("ek100_frames")
  info = fx.write_ek100(tmp / "manual", num_videos=4, segments_per_video=6, modalities=("rgb",))
  frames_dir = write_frames(info, tmp / "EPIC-KITCHENS")
  config = tiny_vit_config("epic_kitchens_100", tmp / "manual", tmp / "tfds", frames_dir=frames_dir)
  return info, frames_dir, config, datasets.builder(config.data)


def _text(value):
  return value.decode() if isinstance(value, bytes) else str(value)


def _decoded(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# -- the frames dataset ------------------------------------------------------------------------------------

def test_frames_dataset_stores_the_window_jpegs(ek100):
  info, frames_dir, _, builder = ek100
  assert builder.builder_config.name == "s1_frames_t4_fps1_ta1"
  source = builder.as_data_source(split="train")
  examples = {_text(source[i]["uid"]): source[i] for i in range(len(source))}
  assert len(examples) == len(info["segments"]["training.csv"])
  # P01_01_5 (v = 0): start 166, 4 frames at 1 fps, tau_a 1 -> frames 46, 76, 106, 136 (as the features
  # variant, tests/data/rulstm/test_builders.py); the labels and past are the features variant's too.
  ex = examples["P01_01_5"]
  np.testing.assert_array_equal(ex["frame_numbers"], [46, 76, 106, 136])
  for data, f in zip(ex["frames"], [46, 76, 106, 136]):
    assert data == (frames_dir / "P01" / "rgb_frames" / "P01_01" / f"frame_{f:010d}.jpg").read_bytes()
    assert abs(int(_decoded(data)[..., 0].mean()) - 5 * f % 256) <= 2
  np.testing.assert_array_equal(ex["past_actions"], [7, 3, 5, 1])
  np.testing.assert_array_equal(ex["history"], [0, 7, 5, 3, 1])
  assert "features" not in ex
  # A window before the video's start repeats frame 1, as the features variant.
  np.testing.assert_array_equal(examples["P01_01_1"]["frame_numbers"], [1, 1, 1, 16])
  for split in ("validation", "test"):
    src = builder.as_data_source(split=split)
    for i in range(len(src)):
      ex = src[i]
      start = int(ex["start_frame"])
      expected, _ = windows.observed_frames(start, num_frames=4, fps=1.0, tau_a=1.0)
      np.testing.assert_array_equal(ex["frame_numbers"], expected)
  splits = datasets.load(ek100[2].data)
  assert (splits.info.num_frames, splits.info.feature_dim) == (4, 0)


def test_flat_layout_and_missing_or_broken_frames(tmp_path):
  info = fx.write_egtea(tmp_path / "manual", num_videos=2, segments_per_video=4, splits=(1,), modalities=("rgb",))
  frames_dir = write_frames(info, tmp_path / "manual" / "frames", layout="flat")  # the default place
  config = tiny_vit_config("egtea_gaze_plus", tmp_path / "manual", tmp_path / "tfds", tau_a=0.5)
  source = datasets.builder(config.data).as_data_source(split="validation")
  assert len(source) == len(info["segments"]["validation1.csv"])
  ex = source[0]
  video = _text(ex["video"])
  assert ex["frames"][-1] == (frames_dir / video / f"frame_{int(ex['frame_numbers'][-1]):010d}.jpg").read_bytes()

  folder = frames_lib.FrameFolder(frames_dir)
  assert folder.videos() == sorted(info["videos"])
  assert folder.frame_numbers(info["videos"][0])[0] == 1
  missing = frames_dir / info["videos"][1] / "frame_0000000016.jpg"
  missing.unlink()
  with pytest.raises(DataError, match=str(missing)):
    folder.read(info["videos"][1], [1, 16])
  broken = frames_dir / info["videos"][1] / "frame_0000000031.jpg"
  broken.write_bytes(broken.read_bytes()[:200])  # truncated
  with pytest.raises(DataError, match=str(broken)):
    folder.read(info["videos"][1], [31])
  with pytest.raises(DataError, match="P99-R01-Nothing"):
    folder.read("P99-R01-Nothing", [1])
  # A build hitting the missing frame stops with one error naming the file.
  config.data.tfds_data_dir = str(tmp_path / "tfds2")
  with pytest.raises(DataError, match=str(missing) + "|" + str(broken)):
    datasets.builder(config.data)


# -- decoding and augmentation ----------------------------------------------------------------------------

def _jpegs(v=0, frames=(10, 11, 12), size=SIZE):
  out = []
  for f in frames:
    buf = io.BytesIO()
    Image.fromarray(frame_image(v, f, size)).save(buf, format="JPEG", quality=95)
    out.append(buf.getvalue())
  return out


def test_train_view_is_a_crop_of_the_rescaled_clip_chosen_by_the_generator():
  transform = frames_lib.ClipTransform(**TINY_DATA)
  jpegs = _jpegs()
  for seed in range(6):
    view = transform.train(jpegs, np.random.default_rng(seed))
    assert view.shape == (3, 32, 32, 3) and view.dtype == np.uint8
    # The same draws, by hand: short side, crop fractions, flip.
    rng = np.random.default_rng(seed)
    short = int(rng.integers(34, 41))
    fy, fx_ = rng.random(2)
    flip = rng.random() < 0.5
    for t, data in enumerate(jpegs):
      full = frames_lib.decode(data, short)
      assert min(full.shape[:2]) == short and full.shape[1] == max(int(56 * short / 40), short)
      i, j = int(fy * (full.shape[0] - 31)), int(fx_ * (full.shape[1] - 31))
      crop = full[i:i + 32, j:j + 32]
      np.testing.assert_array_equal(view[t], crop[:, ::-1] if flip else crop)
    # Green grows with x: a flipped view's green falls from left to right.
    slope = np.sign(int(view[0, :, -1, 1].mean()) - int(view[0, :, 0, 1].mean()))
    assert slope == (-1 if flip else 1)
  # Deterministic for a given generator state; different seeds give different views.
  a = transform.train(jpegs, np.random.default_rng(3))
  np.testing.assert_array_equal(a, transform.train(jpegs, np.random.default_rng(3)))
  assert any(not np.array_equal(a, transform.train(jpegs, np.random.default_rng(s))) for s in range(4, 8))


def test_eval_views_are_avt_three_crops_and_their_flips():
  transform = frames_lib.ClipTransform(**TINY_DATA)
  jpegs = _jpegs()
  views = transform.eval(jpegs)
  assert views.shape == (6, 3, 32, 32, 3) and transform.num_views == 6
  full = frames_lib.decode(jpegs[1], 36)  # 36 x 50
  assert full.shape == (36, 50, 3)
  # AVT's multi_crop: top-left, centre (round((36-32)/2), round((50-32)/2)) = (2, 9), bottom-right (4, 18).
  assert transform.crop_positions(36, 50) == [(0, 0), (2, 9), (4, 18)]
  for v, (i, j) in enumerate([(0, 0), (2, 9), (4, 18)]):
    np.testing.assert_array_equal(views[v, 1], full[i:i + 32, j:j + 32])
    np.testing.assert_array_equal(views[v + 3, 1], full[i:i + 32, j:j + 32][:, ::-1])
  one = frames_lib.ClipTransform(**{**TINY_DATA, "eval_crops": 1, "eval_flips": False}).eval(jpegs)
  np.testing.assert_array_equal(one, views[1:2])
  with pytest.raises(DataError, match="video 'X', frame 7"):
    transform.eval([jpegs[0], b"\xff\xd8 not a jpeg"], name="video 'X'", frame_numbers=[6, 7])


def test_pipeline_augmentation_depends_on_seed_epoch_and_example_only():
  """A preprocess taking `rng` gets one seeded from (seed, epoch, index): the same stream whatever the
  process count or the point an iterator resumed from."""
  transform = frames_lib.ClipTransform(**TINY_DATA)
  source = [{"frames": np.array(_jpegs(v=i % 3, frames=(i + 1, i + 2)), dtype=object), "index": np.int32(i)}
            for i in range(6)]

  def preprocess(example, rng=None):
    return {"pixels": transform.train(example["frames"], rng), "index": example["index"]}

  def batches(n, **kw):
    it = pipeline.train_iterator(source, keys=("pixels", "index"), batch_size=kw.pop("batch_size", 4), seed=7,
                                 preprocess=preprocess, num_threads=2, **kw)
    return [next(it) for _ in range(n)]

  one = batches(4)  # 16 examples: more than two epochs of 6
  for b in one:
    for pixels, i in zip(b["pixels"], b["index"]):
      assert pixels.shape == (2, 32, 32, 3)
  # By hand: stream position k (epoch k // 6) holds example order[k], augmented with rng (7, epoch, index).
  flat = [(p, int(i)) for b in one for p, i in zip(b["pixels"], b["index"])]
  for k, (pixels, i) in enumerate(flat):
    expected = transform.train(source[i]["frames"], np.random.default_rng((7, k // 6, i)))
    np.testing.assert_array_equal(pixels, expected)
  # Two processes reading halves of each global batch see the same examples and augmentations.
  halves = [batches(4, batch_size=2, process_index=p, process_count=2) for p in (0, 1)]
  for b, h0, h1 in zip(one, *halves):
    np.testing.assert_array_equal(b["pixels"], np.concatenate([h0["pixels"], h1["pixels"]]))
  # A resumed iterator continues identically.
  it = pipeline.train_iterator(source, keys=("pixels", "index"), batch_size=4, seed=7, preprocess=preprocess)
  next(it)
  state = it.get_state()
  resumed = pipeline.train_iterator(source, keys=("pixels", "index"), batch_size=4, seed=7, preprocess=preprocess)
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)["pixels"], one[1]["pixels"])
  # The same example in another epoch is augmented differently.
  first = {i: p for p, i in flat[:6]}
  assert any(not np.array_equal(first[i], p) for p, i in flat[6:12])


# -- AVT-b: multi-view evaluation and a short training run -------------------------------------------------

@pytest.mark.slow  # a ViT trainer to compile; the fast tier checks the views themselves (tests above)
def test_eval_scores_are_the_mean_over_views(ek100):
  _, _, config, _ = ek100
  config = config.copy_and_resolve_references()
  config.model.backbone.pretrained = GOLDEN_VIT  # an HF ViTModel of the "tiny" architecture
  trainer = train.Trainer(config, devices=jax.devices()[:2])
  state = trainer.init_state()
  _, pretrained = load_vit(GOLDEN_VIT)
  for a, b in zip(jax.tree.leaves(pretrained), jax.tree.leaves(state.params["backbone"]["vit"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  source = trainer.splits.eval
  task = trainer.task
  examples = [task.preprocess(source[i]) for i in range(4)]
  assert examples[0]["frames"].shape == (6, 4, 32, 32, 3)
  batch = {k: np.stack([e[k] for e in examples]) for k in task.eval_keys}
  batch.update(mask=np.ones(4, np.float32), index=np.arange(4, dtype=np.int32))
  outputs = jax.device_get(trainer.eval_step(state.params, sharding.global_batch(batch, trainer.mesh)))
  # By hand: every view through the model on its own, then the mean of the logits over the 6 views.
  per_view = []
  for v in range(6):
    x = frames_lib.normalize(batch["frames"][:, v], (0.5,) * 3, (0.5,) * 3)
    out, _ = task.model.apply({"params": jax.device_get(state.params)}, jnp.asarray(x), train=False)
    per_view.append(np.asarray(out["logits"]))
  np.testing.assert_allclose(outputs["logits"], np.mean(per_view, axis=0), rtol=1e-5, atol=1e-5)
  assert not np.allclose(per_view[0], per_view[3], atol=1e-4)  # the views do differ
  np.testing.assert_array_equal(outputs["action"], batch["action"])


@pytest.mark.slow
def test_avt_b_trains_two_steps_on_frames(ek100, tmp_path):
  _, _, config, _ = ek100
  config = config.copy_and_resolve_references()
  result = train.run(config, str(tmp_path / "run"))
  assert result["step"] == 2
  assert 0.0 <= result["eval/action/top1"] <= result["eval/action/top5"] <= 1.0
  trainer = train.Trainer(config)
  state = train.restore_state(trainer, str(tmp_path / "run"), "latest")
  vit = state.params["backbone"]["vit"]
  assert vit["embedding"]["kernel"].shape == (8 * 8 * 3, 64) and vit["pos_embedding"].shape == (17, 64)
  assert os.path.isfile(tmp_path / "run" / "metrics.json")


@pytest.mark.slow  # two ViT train steps to compile; the fast tier trains features models
def test_gradient_accumulation_matches_the_whole_batch(ek100):
  """`train.grad_accum_steps`: k microbatches, one update, the same step as the whole batch (no dropout).

  The past-action CE averages over the frames that have a label, so accumulated it is the mean of the
  microbatches' means (as over GPUs in AVT's DDP), not the whole batch's: its weight is 0 here.
  """
  _, _, config, _ = ek100
  results = []
  for k in (1, 2):
    c = config.copy_and_resolve_references()
    c.model.dropout = c.model.head.dropout = 0.0
    c.loss.past_action = 0.0
    c.train.grad_accum_steps = k
    trainer = train.Trainer(c, devices=jax.devices()[:2])
    state = trainer.init_state()
    batch = next(trainer.train_iterator())
    state, metrics, _ = trainer.train_step(state, sharding.global_batch(batch, trainer.mesh))
    results.append((jax.device_get(state.params), {n: float(v) for n, v in metrics.compute().items()}))
  (p1, m1), (p2, m2) = results
  for name in ("loss", "next_action_loss", "future_feature_loss", "accuracy", "grad_norm"):
    assert m2[name] == pytest.approx(m1[name], rel=1e-5, abs=1e-6), name
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="grad_accum_steps 3"):
    c = config.copy_and_resolve_references()
    c.train.grad_accum_steps = 3
    train.Trainer(c, devices=jax.devices()[:2])
