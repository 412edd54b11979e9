"""Local sweeps: trials as subprocesses of this machine, one per device slot at a time, each to its end.

A trial that fails does not stop the others. When a trial ends, its exit status and the last line it
wrote to stderr go to `<workdir>/status.json`, where `anticipax.report` reads them.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Callable, Mapping, Sequence, TextIO


from anticipax import paths
from anticipax.launch import devices as devices_lib
from anticipax.launch import trials as trials_lib

STATUS = "status.json"  # <workdir>/status.json, read by anticipax.report
Command = Callable[[trials_lib.Trial], list[str]]


@dataclasses.dataclass(frozen=True)
class Outcome:
  """How one trial ended."""
  trial: trials_lib.Trial
  returncode: int  # negative: killed by that signal
  last_error: str  # the last line the trial wrote to stderr, when it failed
  slot: devices_lib.Slot


def trial_command(trial: trials_lib.Trial) -> list[str]:
  """`anticipax.main` with the trial's arguments, in this launcher's Python."""
  return [sys.executable, "-m", "anticipax.main", *trial.args]


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _pump(stream: TextIO, sink: TextIO, prefix: str, lock: threading.Lock, last: list[str] | None):
  """Copies a trial's output to the launcher's, line by line, prefixed so that interleaved trials stay
  readable; remembers the last non-empty line in `last`."""
  for line in stream:
    with lock:
      sink.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
      sink.flush()
    if last is not None and line.strip():
      last[0] = line.strip()


class _Runner:
  """Hands the trials to the slots' threads in order and remembers the processes, to stop them on ^C."""

  def __init__(self, trials, command, env, out, err):
    self.queue = collections.deque(trials)
    self.command, self.env, self.out, self.err = command, env, out, err
    self.lock = threading.Lock()  # the queue, the processes and the output streams
    self.procs: dict[int, subprocess.Popen] = {}
    self.outcomes: dict[int, Outcome] = {}

  def next_trial(self) -> trials_lib.Trial | None:
    with self.lock:
      return self.queue.popleft() if self.queue else None

  def work(self, slot: devices_lib.Slot) -> None:
    while (trial := self.next_trial()) is not None:
      self.outcomes[trial.id] = self.run_one(trial, slot)

  def run_one(self, trial: trials_lib.Trial, slot: devices_lib.Slot) -> Outcome:
    status = paths.path(trial.workdir) / STATUS
    status.unlink(missing_ok=True)  # a rerun's report must not show the last run's ending
    cmd, started = self.command(trial), _now()
    last = [""]
    try:
      proc = subprocess.Popen(cmd, env={**self.env, **slot.env}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1)
    except OSError as e:
      returncode, last[0] = 127, f"could not start {cmd[0]}: {e}"
    else:
      with self.lock:
        self.procs[trial.id] = proc
      prefix = f"[{trial.name}] "
      pumps = [threading.Thread(target=_pump, args=(proc.stdout, self.out, prefix, self.lock, None)),
               threading.Thread(target=_pump, args=(proc.stderr, self.err, prefix, self.lock, last))]
      for p in pumps:
        p.start()
      returncode = proc.wait()
      for p in pumps:
        p.join()
      with self.lock:
        self.procs.pop(trial.id, None)
    error = ""
    if returncode:
      error = last[0] or "(nothing on stderr)"
      if returncode < 0:
        error = f"killed by {signal.Signals(-returncode).name}; last line: {error}"
    paths.write_text(status, json.dumps({  # creates the workdir if the trial died before it did
        "trial": trial.name, "exit_code": returncode, "last_error": error, "devices": list(slot.devices),
        "command": cmd, "started": started, "finished": _now()}, indent=2))
    return Outcome(trial, returncode, error, slot)

  def stop(self) -> None:
    with self.lock:
      self.queue.clear()
      for proc in self.procs.values():
        proc.terminate()


def run(trials: Sequence[trials_lib.Trial], slots: Sequence[devices_lib.Slot], *,
        command: Command | None = None, env: Mapping[str, str] | None = None,
        out: TextIO | None = None, err: TextIO | None = None) -> list[Outcome]:
  """Runs every trial, at most one per slot at a time, and waits for all of them.

  Args:
    trials: in the order they start.
    slots: `devices.slots(...)`; a slot's environment pins its trial to the slot's devices.
    command: the command line of a trial; default `trial_command` (tests run a small script instead).
    env: the environment the trials inherit (default: this process's).
    out, err: where the trials' output goes, each line prefixed with `[<trial name>] `.

  Returns:
    Each trial's outcome, in the order of `trials`.
  """
  env = dict(os.environ if env is None else env)
  runner = _Runner(trials, command or trial_command, env, out or sys.stdout, err or sys.stderr)
  threads = [threading.Thread(target=runner.work, args=(slot,), daemon=True) for slot in slots]
  for t in threads:
    t.start()
  try:
    for t in threads:
      while t.is_alive():
        t.join(0.2)
  except KeyboardInterrupt:
    runner.stop()
    raise
  return [runner.outcomes[t.id] for t in trials if t.id in runner.outcomes]


def summary(outcomes: Sequence[Outcome]) -> list[str]:
  """One line for the sweep and one per failed trial."""
  failed = [o for o in outcomes if o.returncode]
  lines = [f"{len(outcomes) - len(failed)} of {len(outcomes)} trial(s) exited 0"
           + (f"; {len(failed)} failed:" if failed else "")]
  lines += [f"  {o.trial.name} (exit {o.returncode}): {o.last_error}" for o in failed]
  return lines
