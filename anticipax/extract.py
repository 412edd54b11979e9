"""Per-frame features of a frame folder: `python -m anticipax.extract --config=configs/egtea_vitb.py`.

Runs a ViT over frames of every video of a frame folder (DATA_FORMATS.md section 3) and writes
- `extract.format="lmdb"`: a RULSTM LMDB (section 2): key `{video}_frame_{frame:010d}.jpg`, value the
  little-endian float32 feature, for every `extract.stride`-th frame file (1, 1 + stride, ...); a features
  config reads it as a modality when it sits in the dataset's manual dir (`<manual_dir>/<modality>`);
- `extract.format="npy"`: one `<output>/<video>.npy` float32 [rows, D] per video, row r the frame
  `r * stride + 1` (the Tasty layout, section 5; every such frame must exist).
The backbone is the class token of `model.backbone.pretrained` (`extract.workdir` empty) or of the ViT in a
trained AVT-b run's checkpoint (`extract.workdir`, `extract.checkpoint` best or latest). Each frame is
rescaled to an `extract.short_side` short side and centre-cropped to `data.crop_size`, normalised as in
training. Frames are read and decoded in grain's threads; batches are split over this process's devices.

Resumable: a video is written at once (one LMDB transaction, or one file renamed into place), and videos
already in the output are skipped. Several processes split the videos between them (npy only: an LMDB has
one writer). Progress, rate and ETA go to stderr.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import grain
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import lmdb
from ml_collections import config_flags
import numpy as np
import tqdm

from anticipax.data import datasets
from anticipax.data.errors import DataError
from anticipax.data import frames as frames_lib
from anticipax.models.vit import ViT
from anticipax.models.vit_import import load_vit
from anticipax.next_action.avt import vit_backbone_config
from anticipax import paths
from anticipax import runtime
from anticipax import train



def _key(video: str, frame: int) -> bytes:
  return f"{video}_frame_{frame:010d}.jpg".encode("utf-8")


class LmdbWriter:
  """Writes one video per transaction into a RULSTM LMDB; a video with any key counts as written."""

  def __init__(self, path: str):
    path = paths.local(path, "config.extract.output (an LMDB)")
    os.makedirs(path, exist_ok=True)
    self.path = path
    self.env = lmdb.open(path, map_size=1 << 30, subdir=True)

  def done(self, video: str) -> bool:
    prefix = f"{video}_frame_".encode("utf-8")
    with self.env.begin() as txn:
      cursor = txn.cursor()
      return cursor.set_range(prefix) and cursor.key().startswith(prefix)

  def write(self, video: str, numbers: np.ndarray, features: np.ndarray) -> None:
    while True:
      try:
        with self.env.begin(write=True) as txn:
          for frame, row in zip(numbers.tolist(), features):
            txn.put(_key(video, frame), np.ascontiguousarray(row, "<f4").tobytes())
        return
      except lmdb.MapFullError:  # the transaction was aborted: grow the map and write the video again
        self.env.set_mapsize(2 * self.env.info()["map_size"])

  def close(self) -> None:
    self.env.close()


class NpyWriter:
  """`<path>/<video>.npy` per video (local or gs://), each written whole or not at all."""

  def __init__(self, path: str):
    self.path = paths.path(path)

  def done(self, video: str) -> bool:
    return (self.path / f"{video}.npy").is_file()

  def write(self, video: str, numbers: np.ndarray, features: np.ndarray) -> None:
    del numbers  # row r is frame r * stride + 1
    with paths.open_atomic(self.path / f"{video}.npy", "wb") as f:
      np.save(f, np.asarray(features, np.float32))

  def close(self) -> None:
    pass


def rows_of(folder: frames_lib.FrameFolder, video: str, stride: int, fmt: str) -> np.ndarray:
  """The 1-based frames of `video` that get a feature row."""
  numbers = folder.frame_numbers(video)
  if fmt == "lmdb":
    return numbers[(numbers - 1) % stride == 0]
  return np.arange(1, numbers[-1] + 1, stride, dtype=np.int64)  # a missing one fails when it is read


def backbone(config):
  """(ViTConfig, params): a trained AVT-b's backbone (`extract.workdir`) or `model.backbone.pretrained`."""
  ex = config.extract
  if ex.get("workdir"):
    trainer = train.Trainer(config)
    state = train.restore_state(trainer, ex.workdir, ex.get("checkpoint", "best"))
    return trainer.task.model.backbone.config, jax.device_get(state.params["backbone"]["vit"])
  path = config.model.backbone.get("pretrained")
  if not path:
    raise ValueError("config.extract.workdir or config.model.backbone.pretrained must name the backbone's weights")
  return load_vit(path, vit_backbone_config(config.model))


def extract(config, *, progress: bool = True) -> dict:
  """Writes the features of every not yet written video; returns counts (videos, skipped, frames)."""
  ex, data = config.extract, config.data
  fmt, stride = ex.get("format", "lmdb"), int(ex.get("stride", 1))
  if fmt not in ("lmdb", "npy") or stride < 1:
    raise ValueError(f"config.extract: format must be lmdb or npy (got {fmt!r}), stride >= 1 (got {stride})")
  if not ex.get("output"):
    raise ValueError("config.extract.output: where to write the features")
  if fmt == "lmdb" and jax.process_count() > 1:
    raise ValueError("config.extract.format=lmdb has one writer: run one process, or use format npy")
  folder = frames_lib.FrameFolder(paths.local(ex.get("frames_dir") or datasets.frames_root(data),
                                              "the JPEG frames (config.extract.frames_dir)"))
  output = ex.output
  vit_config, params = backbone(config)
  crop = vit_config.image_size[0]
  transform = frames_lib.ClipTransform(crop_size=crop, train_short_side=(crop, crop),
                                       eval_short_side=int(ex.get("short_side", 248)), eval_crops=1,
                                       eval_flips=False)
  mean = tuple(config.model.backbone.get("pixel_mean", (0.5, 0.5, 0.5)))
  std = tuple(config.model.backbone.get("pixel_std", (0.5, 0.5, 0.5)))

  writer = LmdbWriter(output) if fmt == "lmdb" else NpyWriter(output)
  try:
    videos = folder.videos()[jax.process_index()::jax.process_count()]
    todo = [v for v in videos if not writer.done(v)]
    rows = {v: rows_of(folder, v, stride, fmt) for v in todo}
    items = [(v, int(f)) for v in todo for f in rows[v]]
    logging.info("extract: %d videos in %s, %d already in %s; %d frames to encode", len(videos), folder.root,
                 len(videos) - len(todo), output, len(items))

    devices = jax.local_devices()
    batch = -(-int(ex.get("batch_size", 256)) // len(devices)) * len(devices)
    mesh = Mesh(np.array(devices), ("data",))
    model = ViT(vit_config)

    @jax.jit
    def encode(params, pixels):
      cls, _ = model.apply({"params": params}, frames_lib.normalize(pixels, mean, std))
      return cls.astype(jnp.float32)

    params = jax.device_put(params, NamedSharding(mesh, P()))
    sharded = NamedSharding(mesh, P("data"))

    def load(item):
      video, frame = item
      jpeg = folder.read(video, [frame])
      return transform.eval(jpeg, name=f"video {video!r}", frame_numbers=[frame])[0, 0]

    ds = grain.MapDataset.source(items).map(load).batch(batch, drop_remainder=False)
    it = iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=int(data.get("num_threads", 4)),
                                                   prefetch_buffer_size=2)))
    pending, position = [], 0  # features of the video being filled; index into items of its first row
    bar = tqdm.tqdm(total=len(items), unit="frame", desc="extract", disable=not progress, file=sys.stderr,
                    smoothing=0.1)
    for pixels in it:
      n = len(pixels)
      if n < batch:  # the last batch: pad to the batch size (one compiled shape)
        pixels = np.concatenate([pixels, np.zeros((batch - n, *pixels.shape[1:]), pixels.dtype)])
      features = np.asarray(encode(params, jax.device_put(pixels, sharded)))[:n]
      pending.append(features)
      bar.update(n)
      # Write every video whose rows are all encoded.
      done = position + sum(len(f) for f in pending)
      stacked = np.concatenate(pending) if len(pending) > 1 else pending[0]
      offset = 0
      while position < len(items):
        video = items[position][0]
        count = len(rows[video])
        if position + count > done:
          break
        writer.write(video, rows[video], stacked[offset:offset + count])
        offset += count
        position += count
      pending = [stacked[offset:]] if offset < len(stacked) else []
    bar.close()
  finally:
    writer.close()
  return {"videos": len(videos), "skipped": len(videos) - len(todo), "frames": len(items),
          "dim": vit_config.hidden_size, "output": output}


def main(argv):
  del argv
  runtime.setup()
  config = flags.FLAGS.config
  if "extract" not in config:
    sys.exit("anticipax: the config has no `extract` section (see configs/egtea_vitb.py)")
  try:
    result = extract(config, progress=jax.process_index() == 0)
  except (DataError, FileNotFoundError) as e:
    sys.exit(f"anticipax: {e}")
  print(f"{result['frames']} frames of {result['videos'] - result['skipped']} videos -> {result['output']} "
        f"({result['dim']}-d; {result['skipped']} videos were already there)")


def _define_flags():
  """The program's flags, defined only when it runs (so its functions import beside other entry points)."""
  config_flags.DEFINE_config_file("config", None, "A config with an `extract` section.", lock_config=True)
  flags.mark_flags_as_required(["config"])


if __name__ == "__main__":
  _define_flags()
  app.run(main)
