"""Test-wide setup: 8 fake CPU devices (to exercise meshes), fast XLA compiles shared through a
compilation cache, and a shared synthetic_kitchen build.

Compile time dominates the tests on CPU (a tiny model's train step takes seconds to compile, milliseconds
to run), so:
- XLA compiles with LLVM's cheap passes only (`FAST_COMPILE`: the programs and their semantics are XLA's,
  only the machine code is less optimised);
- every process of a test session (pytest-xdist workers and the subprocesses tests start, which inherit the
  environment) shares one JAX persistent compilation cache, so a program compiled by one test (the same
  tiny trainer in another workdir, a resumed run) is loaded, not compiled, by the next. The cache is a
  fresh folder per session, removed at its end, unless `JAX_COMPILATION_CACHE_DIR` is set (then that folder
  is used and kept: repeated local runs get faster).
"""

import os
import shutil
import tempfile

from tests.processes import FAST_COMPILE


# Must happen before JAX initialises its backends.
_flags = os.environ.get("XLA_FLAGS", "")
for _flag in ("--xla_force_host_platform_device_count=8", *FAST_COMPILE.split()):
  if _flag.split("=")[0] not in _flags:
    _flags += " " + _flag
os.environ["XLA_FLAGS"] = _flags.strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Set by the first process of the session (pytest-xdist's controller, or pytest alone) before any worker
# starts, so every worker and subprocess inherits the same folder.
_OWN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _OWN_CACHE = tempfile.mkdtemp(prefix="anticipax-tests-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _OWN_CACHE
  os.environ["ANTICIPAX_TESTS_OWN_JAX_CACHE"] = str(os.getpid())
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# A size limit turns on JAX's file lock around cache reads and writes (workers share the folder).
os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 << 30))

import pytest  # pylint: disable=g-import-not-at-top


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
  """`--dist loadgroup` (pyproject.toml): a pytest-xdist worker names each test of an `xdist_group` with an
  `@<group>` suffix, which is how the scheduler keeps a group on one worker. pytest 9.2's structured node ids
  ignore the renaming pytest-xdist 3.8 does (pytest-dev/pytest-xdist#1386: groups silently spread over the
  workers, and each worker builds their module fixtures again); this names them where xdist did not."""
  if not getattr(config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
    return
  try:
    from _pytest.nodeid import NodeId  # pylint: disable=g-import-not-at-top
  except ImportError:  # a pytest with string node ids: xdist's own renaming works
    return
  for item in items:
    groups = {str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")}
    suffix = "@" + "_".join(sorted(groups))
    if groups and not item.nodeid.endswith(suffix):
      item._id = NodeId.parse(item.nodeid + suffix)  # pylint: disable=protected-access


def pytest_unconfigure(config):
  del config
  if _OWN_CACHE and os.environ.get("ANTICIPAX_TESTS_OWN_JAX_CACHE") == str(os.getpid()):
    shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
  """A TFDS data dir holding the prepared synthetic_kitchen dataset (built once per test session)."""
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds")
  synthetic_kitchen.load(str(data_dir))
  return str(data_dir)
