"""Process setup shared by the command-line entry points (main, predict, prepare, distill_pipeline)."""

import importlib.util
import logging as std_logging
import os

from absl import logging
import jax


class _QuietCheckpointing(std_logging.Filter):
  """Orbax logs every file it writes at INFO; keep its warnings, drop the chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def _hide_accelerators_from_tensorflow():
  """anticipax never imports TensorFlow, but where it is installed (Colab) TFDS and etils may (gs:// paths):
  keep it off the GPUs/TPUs that JAX owns. Without accelerators there is nothing to hide, and no import."""
  if jax.default_backend() == "cpu" or importlib.util.find_spec("tensorflow") is None:
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU")


def _maybe_initialize_distributed():
  """Joins the other processes of a multi-process job; a single process needs nothing.

  Explicit: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (any launcher). Otherwise
  JAX detects TPU pod slices and SLURM jobs itself.
  """
  env = os.environ
  if env.get("JAX_COORDINATOR_ADDRESS"):
    # CPU-only jobs (tests, debugging) need a collectives backend across processes; accelerators ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(env["JAX_COORDINATOR_ADDRESS"], int(env["JAX_NUM_PROCESSES"]),
                               int(env["JAX_PROCESS_ID"]))
  elif env.get("TPU_WORKER_HOSTNAMES", "localhost") != "localhost" or "SLURM_JOB_ID" in env:
    jax.distributed.initialize()


def check_backend(env=os.environ) -> None:
  """Exits if JAX started on another backend than ANTICIPAX_EXPECT_BACKEND (set by `anticipax.launch` on
  machines with GPUs or TPUs): a trial that fell back to the CPU would otherwise run for days."""
  expected = env.get("ANTICIPAX_EXPECT_BACKEND")
  if expected and jax.default_backend() != expected:
    raise SystemExit(f"anticipax: expected the {expected} backend (ANTICIPAX_EXPECT_BACKEND) but JAX "
                     f"started {jax.default_backend()} with devices {jax.devices()}; check the install "
                     "(jax[cuda12] / jax[tpu]) and that no other process holds the accelerators")


def setup() -> None:
  """Call first in an entry point's absl `main`."""
  logging.get_absl_handler().addFilter(_QuietCheckpointing())
  _maybe_initialize_distributed()
  check_backend()
  _hide_accelerators_from_tensorflow()  # after JAX started: TensorFlow is not imported yet
  logging.info("JAX process %d/%d, local devices %s", jax.process_index(), jax.process_count(),
               jax.local_devices())
