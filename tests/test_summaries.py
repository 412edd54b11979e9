"""anticipax.summaries: TensorBoard reads the scalars a run writes (locally and in a bucket), the log shows
them, progress and profiles come at the steps asked for, and no entry point imports TensorFlow."""

import logging
import os
import subprocess
import sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.util import tensor_util

from anticipax import summaries
from tests.fake_gcs import sitecustomize as fake_gcs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _scalars(logdir) -> dict[str, list[tuple[int, float]]]:
  """(step, value) per tag, read by TensorBoard's own event reader as the notebooks read them: float32
  tensors of the scalars plugin, as `tf.summary.scalar` (clu's writer) wrote them."""
  acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.TENSORS: 0})
  acc.Reload()
  out = {}
  for tag in acc.Tags()["tensors"]:
    assert acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"
    out[tag] = [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
  return out


def test_tensorboard_reads_what_was_written_and_the_log_shows_it(tmp_path, caplog):
  caplog.set_level(logging.INFO)
  writer = summaries.Writer(tmp_path / "run")
  writer.write_scalars(1, {"train/loss": 2.5, "train/accuracy": 0.25})
  writer.write_scalars(2, {"train/loss": 1.25, "eval/top1": 0.5})
  writer.close()
  assert [f for f in os.listdir(tmp_path / "run") if f.startswith("events.out.tfevents.")]
  assert _scalars(tmp_path / "run") == {"train/loss": [(1, 2.5), (2, 1.25)], "train/accuracy": [(1, 0.25)],
                                        "eval/top1": [(2, 0.5)]}
  assert "[1] train/accuracy=0.25, train/loss=2.5" in caplog.messages  # sorted, as clu's LoggingWriter


def test_device_values_are_written_and_a_log_only_writer_writes_no_file(tmp_path, caplog):
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  caplog.set_level(logging.INFO)
  writer = summaries.Writer(None)
  writer.write_scalars(3, {"x": jnp.float32(0.5), "n": jnp.int32(7)})
  writer.close()
  assert "[3] n=7, x=0.5" in caplog.messages
  assert not os.listdir(tmp_path)


def test_a_bucket_receives_the_event_file_at_each_flush(tmp_path, monkeypatch):
  fake_gcs.install_for_test(monkeypatch, str(tmp_path / "gcs"))
  run = tmp_path / "gcs" / "bucket" / "run"
  writer = summaries.Writer("gs://bucket/run")
  writer.write_scalars(1, {"loss": 3.0})
  writer.flush()
  assert _scalars(run) == {"loss": [(1, 3.0)]}
  writer.write_scalars(2, {"loss": 2.0})
  writer.close()
  assert _scalars(run) == {"loss": [(1, 3.0), (2, 2.0)]}
  assert len(os.listdir(run)) == 1


def test_progress_reports_every_n_steps_each_minute_and_at_the_last(monkeypatch):
  notes, written = [], []

  class Unit:
    def set_notes(self, text):
      notes.append(text)

  class Recorder:
    def write_scalars(self, step, scalars):
      written.append((step, sorted(scalars)))

  monkeypatch.setattr(summaries.platform, "work_unit", Unit)
  now = [0.0]
  progress = summaries.Progress(total_steps=10, writer=Recorder(), every_steps=3, clock=lambda: now[0])
  for step in range(1, 11):
    now[0] += 2.0 if step != 8 else 90.0  # step 8 took a minute and a half
    if step == 5:
      with progress.timed("eval"):
        now[0] += 4.0
    progress(step)
  # The first call only starts the clock; step 8 comes after more than a minute without a report.
  assert [s for s, _ in written] == [3, 6, 8, 9, 10]
  assert all(names == ["steps_per_sec", "uptime"] for _, names in written)
  assert notes[0].startswith("0.5 steps/s, 30.0% (3/10), ETA: 0m")  # 2 steps in 4 s
  assert "(10/10)" in notes[-1] and "ETA: 0m" in notes[-1] and "% eval)" in notes[-1]


def test_profile_traces_the_steps_after_its_first(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(summaries.jax.profiler, "start_trace", lambda logdir: calls.append(("start", logdir)))
  monkeypatch.setattr(summaries.jax.profiler, "stop_trace", lambda: calls.append(("stop",)))
  profile = summaries.Profile(str(tmp_path), num_steps=2, first_step=3)
  for step in range(1, 9):
    calls.append(step)
    profile(step)
  assert calls == [1, 2, 3, ("start", str(tmp_path)), 4, 5, ("stop",), 6, 7, 8]


def _entry_points() -> list[str]:
  """Every module of anticipax that runs as a program (`if __name__ == "__main__"`), found in the source."""
  root = os.path.join(REPO, "anticipax")
  found = []
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      if name.endswith(".py") and 'if __name__ == "__main__"' in open(path, encoding="utf-8").read():
        found.append(os.path.relpath(path, REPO)[:-len(".py")].replace(os.sep, "."))
  return sorted(found)


def test_entry_points_do_not_import_tensorflow():
  """TensorFlow's import alone costs a process seconds; anticipax needs none of it (TFDS reads without it:
  tests/data/test_synthetic_kitchen.py). benchmarks/startup.py prints what each entry point costs."""
  modules = _entry_points()
  assert {"anticipax.main", "anticipax.distill_pipeline", "anticipax.launch.__main__"} <= set(modules)
  code = f"import sys, {', '.join(modules)}; print('tensorflow' in sys.modules)"
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "False"
