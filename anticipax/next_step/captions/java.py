"""The Java side: pycocoevalcap's PTBTokenizer jar and METEOR 1.5.

`java_tokenize_many` runs the command pycocoevalcap's `PTBTokenizer` runs (the Stanford
PTBTokenizer 3.4.1 jar it ships, `-preserveLines -lowerCase`, then the tokens in PUNCTUATIONS
dropped), one JVM for all the inputs of an evaluation through `-ioFileList`, which still gives
each input its own lexer. We run it ourselves rather than `PTBTokenizer.tokenize`, which writes
its temporary file next to the jar (fails on a read-only install) and never checks that Java
worked; and we turn every line-break character into a space first, where pycocoevalcap only
does it for "\\n" (a "\\r" or U+2028 in a caption shifts every later caption onto the wrong
reference there).

`_Meteor` runs pycocoevalcap's `Meteor.compute_score` protocol over a process we own: closed on
exit, on error and after a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import os
import shutil
import subprocess
import tempfile
import threading

from anticipax.next_step.captions.ptb import _clean
from anticipax.next_step.captions.ptb import _drop_punctuation

NO_JAVA_ENV = "ANTICIPAX_NO_JAVA"
_PTB_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
_JAVA_TIMEOUT_S = 600.0


class JavaError(RuntimeError):
  """A Java tool (tokenizer or METEOR) could not be run or returned something unusable."""


def _pycocoevalcap_file(*parts: str) -> str:
  import pycocoevalcap.tokenizer.ptbtokenizer as ptb  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(ptb.__file__)))
  return os.path.join(root, *parts)


def java_tokenize(sentences: Sequence[str], timeout_s: float = _JAVA_TIMEOUT_S) -> list[str]:
  """pycocoevalcap's PTBTokenizer (same jar, flags and PUNCTUATIONS) on `sentences`.

  Raises:
    JavaError: Java is missing or failed, or its output does not have one line per sentence.
  """
  return java_tokenize_many([sentences], timeout_s)[0]


def java_tokenize_many(sides: Sequence[Sequence[str]],
                       timeout_s: float = _JAVA_TIMEOUT_S) -> list[list[str]]:
  """`java_tokenize` of each side, in one JVM (`-ioFileList`: one file, one lexer, per side)."""
  out: list[list[str]] = [[] for _ in sides]
  todo = [i for i, side in enumerate(sides) if len(side)]
  if not todo:
    return out
  from pycocoevalcap.tokenizer import ptbtokenizer  # pylint: disable=g-import-not-at-top
  jar = _pycocoevalcap_file("tokenizer", ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
  with tempfile.TemporaryDirectory(prefix="anticipax_ptb_") as tmp:
    for i in todo:  # Relative names: the file list is split on whitespace.
      with open(os.path.join(tmp, f"{i}.txt"), "wb") as f:
        f.write("\n".join(_clean(s) for s in sides[i]).encode("utf-8"))
    with open(os.path.join(tmp, "files"), "w", encoding="utf-8") as f:
      f.write("".join(f"{i}.txt {i}.tok\n" for i in todo))
    cmd = ["java", "-cp", jar, _PTB_CLASS, "-ioFileList", "-preserveLines", "-lowerCase",
           "files"]
    try:
      proc = subprocess.run(cmd, cwd=tmp, stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError) as e:
      raise JavaError(f"java {_PTB_CLASS} failed: {e}") from e
    if proc.returncode != 0:
      raise JavaError(f"PTBTokenizer exited with {proc.returncode}: "
                      f"{proc.stderr.decode('utf-8', 'replace')[-500:]}")
    for i in todo:
      try:
        with open(os.path.join(tmp, f"{i}.tok"), "rb") as f:
          lines = f.read().decode("utf-8").split("\n")
      except (OSError, UnicodeDecodeError) as e:
        raise JavaError(f"PTBTokenizer output unreadable: {e}") from e
      if len(lines) != len(sides[i]):
        raise JavaError(f"PTBTokenizer returned {len(lines)} lines for {len(sides[i])} "
                        "sentences.")
      out[i] = [_drop_punctuation(line) for line in lines]
  return out


class _Meteor:
  """pycocoevalcap's Meteor (same jar, command and protocol), closed deterministically.

  pycocoevalcap.meteor.Meteor leaves stderr as an undrained pipe, has no timeout and its
  `__del__` blocks forever on its lock if a call failed half-way; this wrapper reuses its
  `compute_score` (remembering each segment's statistics), sends stderr to a file and kills the process on `close()`, on garbage
  collection and, through a watchdog, when one call runs longer than `timeout_s`.
  """

  def __init__(self, timeout_s: float = _JAVA_TIMEOUT_S):
    from pycocoevalcap.meteor import meteor  # pylint: disable=g-import-not-at-top

    class Inner(meteor.Meteor):
      """Its protocol (`compute_score`); we start and stop the process ourselves."""

      def __init__(self):  # pylint: disable=super-init-not-called
        self.stats = {}

      def __del__(self):
        pass

      def _stat(self, hypothesis_str, reference_list):
        # A segment's statistics depend on its own sentences only, and each is a round trip to the jar
        # (the slow part): pooled scores and repeated sentences reuse them.
        key = (hypothesis_str, tuple(reference_list))
        if key not in self.stats:
          self.stats[key] = super()._stat(hypothesis_str, reference_list)
        return self.stats[key]

    self._timeout_s = timeout_s
    self._stderr = tempfile.TemporaryFile()
    inner = Inner()
    inner.meteor_cmd = ["java", "-jar", "-Xmx2G", meteor.METEOR_JAR, "-", "-", "-stdio",
                        "-l", "en", "-norm"]
    inner.lock = threading.Lock()
    try:
      inner.meteor_p = subprocess.Popen(
          inner.meteor_cmd, cwd=os.path.dirname(os.path.abspath(meteor.__file__)),
          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
    except OSError as e:
      self._stderr.close()
      raise JavaError(f"cannot start METEOR: {e}") from e
    self._inner = inner
    self._proc = inner.meteor_p

  def score(self, gts: dict[int, list[str]], res: dict[int, list[str]]) -> float:
    timer = threading.Timer(self._timeout_s, self._proc.kill)
    timer.start()
    try:
      score, _ = self._inner.compute_score(gts, res)
    except Exception as e:  # pylint: disable=broad-except
      self._stderr.seek(0)
      err = self._stderr.read().decode("utf-8", "replace")[-500:]
      self.close()
      raise JavaError(f"METEOR failed ({e!r}); stderr: {err}") from e
    finally:
      timer.cancel()
    if not math.isfinite(score):
      raise JavaError(f"METEOR returned {score}.")
    return score

  def close(self) -> None:
    proc = getattr(self, "_proc", None)
    if proc is None:
      return
    self._proc = None
    for stream in (proc.stdin, proc.stdout):
      try:
        stream.close()
      except OSError:
        pass
    proc.kill()
    proc.wait()
    self._stderr.close()

  def __del__(self):
    self.close()


def java_available() -> bool:
  """Whether the Java path is enabled: `java` on PATH and ANTICIPAX_NO_JAVA not set to 1/true."""
  if os.environ.get(NO_JAVA_ENV, "").strip().lower() in ("1", "true", "yes"):
    return False
  return shutil.which("java") is not None
