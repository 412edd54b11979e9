"""`python -m anticipax.extract`: a ViT over every frame -> RULSTM LMDB / per-video .npy, read back by the builders."""

import os

import jax
import numpy as np
import pytest

from anticipax import extract
from anticipax.data import datasets
from anticipax.data import frames as frames_lib
from anticipax.data import windows
from anticipax.data.errors import DataError
from anticipax.models.vit import ViT
from anticipax.models.vit_import import load_vit
from tests.data.rulstm import fixtures as fx
from tests.data.rulstm.test_frames import tiny_vit_config, write_frames

GOLDEN_VIT = os.path.join(os.path.dirname(__file__), "models", "golden", "tiny_vit")  # HF ViTModel, 32 px


def _text(value):
  return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("extract")
  info = fx.write_ek55(tmp / "manual", num_videos=2, segments_per_video=3, modalities=("rgb",))
  frames_dir = write_frames(info, tmp / "frames")  # EPIC layout
  config = tiny_vit_config("epic_kitchens_55", tmp / "manual", tmp / "tfds", frames_dir=frames_dir,
                           num_frames=3, fps=2.0, tau_a=1.0)
  config.model.backbone.pretrained = GOLDEN_VIT
  config.extract.update(output=str(tmp / "manual" / "vitb"), short_side=36, batch_size=20)
  first = extract.extract(config, progress=False)
  return info, frames_dir, config, first


def _encode_directly(frames_dir, video, numbers):
  """The tiny ViT's class token of each frame: file -> 36 px short side -> centre 32 crop -> [-1, 1]."""
  vit_config, params = load_vit(GOLDEN_VIT)
  transform = frames_lib.ClipTransform(crop_size=32, train_short_side=(32, 32), eval_short_side=36, eval_crops=1,
                                       eval_flips=False)
  folder = frames_lib.FrameFolder(frames_dir)
  pixels = np.stack([transform.eval(folder.read(video, [f]))[0, 0] for f in numbers])
  cls, _ = ViT(vit_config).apply({"params": params}, frames_lib.normalize(pixels, (0.5,) * 3, (0.5,) * 3))
  return np.asarray(cls)


def test_lmdb_holds_every_frame_and_the_builder_reads_it_back(extracted):
  info, frames_dir, config, first = extracted
  folder = frames_lib.FrameFolder(frames_dir)
  total = sum(len(folder.frame_numbers(v)) for v in info["videos"])
  assert first == {"videos": len(info["videos"]), "skipped": 0, "frames": total, "dim": 64,
                   "output": config.extract.output}
  # Resumable: a second run finds every video written.
  again = extract.extract(config, progress=False)
  assert (again["skipped"], again["frames"]) == (len(info["videos"]), 0)

  # The features variant of the builder with the extracted LMDB as its modality.
  data = config.data.copy_and_resolve_references()
  data.update(inputs="features", modalities=["vitb"])
  source = datasets.builder(data).as_data_source(split="train")
  checked = 0
  for i in range(len(source)):
    ex = source[i]
    numbers, _ = windows.observed_frames(int(ex["start_frame"]), num_frames=3, fps=2.0, tau_a=1.0)
    expected = _encode_directly(frames_dir, _text(ex["video"]), numbers)
    assert ex["features"].shape == (3, 64)
    np.testing.assert_allclose(ex["features"], expected, rtol=1e-5, atol=1e-5)
    checked += 1
  assert checked == len(info["segments"]["training.csv"])


def test_npy_rows_every_stride_frames_and_resume(extracted, tmp_path):
  info, frames_dir, config, _ = extracted
  config = config.copy_and_resolve_references()
  config.extract.update(format="npy", stride=5, output=str(tmp_path / "npy"))
  result = extract.extract(config, progress=False)
  folder = frames_lib.FrameFolder(frames_dir)
  video = info["videos"][1]
  last = int(folder.frame_numbers(video)[-1])
  rows = np.load(tmp_path / "npy" / f"{video}.npy")
  assert rows.dtype == np.float32 and rows.shape == (-(-last // 5), 64)
  np.testing.assert_allclose(rows[[0, 3]], _encode_directly(frames_dir, video, [1, 16]), rtol=1e-5, atol=1e-5)
  assert result["frames"] == sum(-(-int(folder.frame_numbers(v)[-1]) // 5) for v in info["videos"])
  # Only the video whose file is gone is encoded again.
  os.remove(tmp_path / "npy" / f"{video}.npy")
  again = extract.extract(config, progress=False)
  assert (again["skipped"], again["frames"]) == (len(info["videos"]) - 1, rows.shape[0])
  np.testing.assert_array_equal(np.load(tmp_path / "npy" / f"{video}.npy"), rows)
  # A frame the layout needs and the folder lacks: one error naming the file.
  missing = folder.path(video, 11)
  os.rename(missing, missing + ".bak")
  os.remove(tmp_path / "npy" / f"{video}.npy")
  try:
    with pytest.raises(DataError, match=missing):
      extract.extract(config, progress=False)
  finally:
    os.rename(missing + ".bak", missing)
  assert jax.device_count() == 8  # the batches above were split over the 8 fake devices
