"""Test-wide setup: 8 fake CPU devices (to exercise meshes) and a shared synthetic_kitchen build."""

import os

# Must happen before JAX initialises its backends.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope="session")
def demo_data_dir(tmp_path_factory):
  """A TFDS data dir holding the prepared synthetic_kitchen dataset (built once per test session)."""
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  data_dir = tmp_path_factory.mktemp("tfds")
  synthetic_kitchen.load(str(data_dir))
  return str(data_dir)
