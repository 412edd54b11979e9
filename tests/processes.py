"""The environment of anticipax commands that tests start in fresh processes: JAX on the CPU with the
number of (fake) devices the test asks for, XLA's cheap compile passes as in the test session itself, and
the session's JAX compilation cache (inherited from `os.environ`, set by tests/conftest.py) so a program one
process compiled is loaded by the next."""

import os

# LLVM's cheap passes only: the programs and their semantics are XLA's, only the machine code is less
# optimised (on the CPU, compiling a tiny model takes seconds, running it milliseconds).
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def env(devices: int = 1, **extra: str) -> dict[str, str]:
  """`os.environ` with JAX on `devices` CPU devices, compiling fast; `extra` variables added last."""
  flags = (f"--xla_force_host_platform_device_count={devices} " if devices > 1 else "") + FAST_COMPILE
  return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags, **extra}

# A pipeline's arm runs one after another in the tests (`config.parallel`; 0 would start a worker process
# per core): the test session keeps every core busy already, and tests/test_distill_pipeline.py checks
# that parallel runs give what these give.
ARM_RUNS_AT_ONCE = 1
