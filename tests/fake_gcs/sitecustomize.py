"""gs:// redirected to a local folder, for tests without network, in this process and in subprocesses.

A subprocess started with `env(root)` (this folder on PYTHONPATH, `ANTICIPAX_FAKE_GCS=<root>`) imports this
module at startup, as Python imports any `sitecustomize`; a test process calls `install(root)` itself.
Afterwards `etils.epath.Path("gs://bucket/x")` is the local path `<root>/bucket/x`. Everything that reaches
a bucket through epath (anticipax's own files, orbax checkpoints, TFDS data dirs) then lands under `<root>`,
while code that handles a gs:// string in any other way (`open`, `os.makedirs`, `os.path.abspath`) still
writes a folder named `gs:` under the current directory, which the tests look for.

Not covered (needs a real bucket): GCS semantics themselves (no atomic rename, eventual listings), TF's and
tensorstore's own GCS clients, authentication.
"""

import os

ENV = "ANTICIPAX_FAKE_GCS"
_FOLDER = os.path.dirname(os.path.abspath(__file__))


def install(root: str) -> None:
  """From now on, this process's `epath.Path("gs://b/x")` is `<root>/b/x`."""
  from etils.epath import gpath  # pylint: disable=g-import-not-at-top
  from etils.epath import register  # pylint: disable=g-import-not-at-top
  root = os.path.abspath(root)

  def local(uri: str):
    return gpath.PosixGPath(os.path.join(root, uri[len("gs://"):]))

  register._URI_PREFIXES_TO_CLS["gs://"] = local  # pylint: disable=protected-access


def install_for_test(monkeypatch, root: str) -> None:
  """`install(root)` until the end of the test that owns `monkeypatch` (pytest's fixture)."""
  from etils.epath import register  # pylint: disable=g-import-not-at-top
  monkeypatch.setitem(register._URI_PREFIXES_TO_CLS, "gs://", register._URI_PREFIXES_TO_CLS["gs://"])  # pylint: disable=protected-access
  install(root)


def env(root: str, base: dict | None = None) -> dict:
  """Environment of a subprocess whose gs:// paths land under `root`."""
  base = dict(os.environ if base is None else base)
  base[ENV] = os.path.abspath(root)
  base["PYTHONPATH"] = os.pathsep.join(p for p in (_FOLDER, base.get("PYTHONPATH", "")) if p)
  return base


if os.environ.get(ENV):
  install(os.environ[ENV])
