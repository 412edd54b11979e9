"""What a run reports while it trains, without TensorFlow: scalars to the log and to TensorBoard event files,
progress (steps/s, ETA, the share of time spent evaluating) and a profile of a few steps.

clu's metric writers and periodic actions write TensorBoard summaries through TensorFlow, whose import alone
costs every process seconds; the event file format needs none of it. `Writer` writes what clu's writer
(`tf.summary.scalar`) wrote: an `events.out.tfevents.*` file of TFRecord-framed `Event` protos whose scalars
are float32 tensors of TensorBoard's scalars plugin (tensorboard's own record writer and summary protos), from
a background thread, so converting device values never holds up the training step.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent import futures
import contextlib
import os
import socket
import tempfile
import time
from typing import Any

from absl import logging
from clu import platform
import jax
import numpy as np
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.scalar import summary_v2 as scalar_summary
from tensorboard.summary.writer.record_writer import RecordWriter

from anticipax import paths


def _format(key: str, value: Any) -> str:
  return f"{key}={value:.6g}" if isinstance(value, float) else f"{key}={value}"


class Writer:
  """Scalars of a run: each `write_scalars` call is one INFO log line `[step] key=value, ...` and, with a
  `logdir`, one TensorBoard event holding them in `<logdir>/events.out.tfevents.<time>.<host>`. A remote
  logdir (gs://) receives the whole file again at each `flush` (buckets have no append)."""

  def __init__(self, logdir: paths.PathLike | None = None):
    self._executor = futures.ThreadPoolExecutor(1, thread_name_prefix="summaries")
    self._pending: list[futures.Future] = []
    self._file = self._records = self._target = None
    if logdir is None:
      return
    name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}"
    if paths.is_remote(logdir):
      self._target = paths.path(logdir) / name
      local = os.path.join(tempfile.mkdtemp(prefix="anticipax-events-"), name)
    else:
      os.makedirs(os.fspath(logdir), exist_ok=True)
      local = os.path.join(os.fspath(logdir), name)
    self._file = open(local, "wb")  # pylint: disable=consider-using-with
    self._records = RecordWriter(self._file)
    self._records.write(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Queues `scalars` (numbers or device arrays of one element) for `step`."""
    self._pending.append(self._executor.submit(self._write, int(step), dict(scalars)))

  def _write(self, step: int, scalars: dict[str, Any]) -> None:
    values = {k: np.asarray(jax.device_get(v)).item() for k, v in sorted(scalars.items())}
    logging.info("[%d] %s", step, ", ".join(_format(k, v) for k, v in values.items()))
    if self._records is not None:
      summary = summary_pb2.Summary(value=[scalar_summary.scalar_pb(k, float(v)).value[0]
                                           for k, v in values.items()])
      self._records.write(event_pb2.Event(wall_time=time.time(), step=step, summary=summary).SerializeToString())

  def flush(self) -> None:
    """Waits for what was queued (raising what failed) and puts the event file where it belongs."""
    pending, self._pending = self._pending, []
    for future in pending:
      future.result()
    if self._file is not None:
      self._file.flush()
      if self._target is not None:
        with open(self._file.name, "rb") as f:
          paths.write_bytes(self._target, f.read())

  def close(self) -> None:
    self.flush()
    self._executor.shutdown()
    if self._file is not None:
      self._file.close()
      if self._target is not None:
        os.remove(self._file.name)
        os.rmdir(os.path.dirname(self._file.name))
      self._file = None


def _format_secs(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


class Progress:
  """Called after every step: every `every_steps` steps, at least once a minute and at `total_steps`, the
  steps/s since the last report (a point estimate: precise numbers come from a profile), the ETA and where the time went, as the
  work unit's notes (XManager shows them) and as the scalars `steps_per_sec` and `uptime`."""

  EVERY_SECS = 60.0

  def __init__(self, total_steps: int, writer: Writer, every_steps: int, clock=time.monotonic):
    self._total, self._writer, self._every = total_steps, writer, max(int(every_steps), 1)
    self._clock = clock
    self._start = clock()
    self._last: tuple[int, float] | None = None  # (step, time) of the last report; the first call only starts
    self._parts: dict[str, float] = {}

  def __call__(self, step: int) -> None:
    now = self._clock()
    if self._last is None:
      self._last = (step, now)
      return
    due = step % self._every == 0 or step == self._total or now - self._last[1] >= self.EVERY_SECS
    if step == self._last[0] or not due:
      return
    rate = (step - self._last[0]) / max(now - self._last[1], 1e-9)
    self._last = (step, now)
    notes = f"{rate:.1f} steps/s, {100 * step / self._total:.1f}% ({step}/{self._total}), " \
            f"ETA: {_format_secs((self._total - step) / rate)}"
    if self._parts:
      total = now - self._start
      notes += f" ({_format_secs(total)} : " + ", ".join(
          f"{100 * t / total:.1f}% {name}" for name, t in sorted(self._parts.items())) + ")"
    platform.work_unit().set_notes(notes)
    self._writer.write_scalars(step, {"steps_per_sec": rate, "uptime": now - self._start})

  @contextlib.contextmanager
  def timed(self, name: str) -> Iterator[None]:
    """Counts the time spent in the block (which returns host values: nothing left on the device) as `name`."""
    start = self._clock()
    yield
    self._parts[name] = self._parts.get(name, 0.0) + self._clock() - start


class Profile:
  """Called after every step: traces the `num_steps` steps after step `first_step` into `logdir`
  (`jax.profiler`; TensorBoard's profile plugin and Perfetto read it)."""

  def __init__(self, logdir: str, num_steps: int, first_step: int):
    self._logdir, self._start, self._stop = logdir, first_step, first_step + num_steps
    self._tracing = False

  def __call__(self, step: int) -> None:
    if step == self._start and not self._tracing:
      jax.profiler.start_trace(self._logdir)
      self._tracing = True
    elif step >= self._stop and self._tracing:
      jax.effects_barrier()
      jax.profiler.stop_trace()
      self._tracing = False
      logging.info("Profile of steps %d-%d written to %s.", self._start + 1, self._stop, self._logdir)
