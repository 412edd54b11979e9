"""How long each entry point takes to import in a fresh process, and what heavy packages it loads.

    python benchmarks/startup.py            # 5 fresh processes per entry point
    python benchmarks/startup.py --runs=9

Every command (`python -m anticipax.main ...`) pays this before it reads a flag, and a pipeline's worker
processes pay it again. Prints per entry point the median and best wall time of `import anticipax.<module>`
(measured inside the child, interpreter start excluded), its peak memory and which of TensorFlow, scipy and
transformers came in with it (anticipax imports none of them at start: summaries.py writes TensorBoard's
files itself, the others are imported where used).
"""

import json
import statistics
import subprocess
import sys

from absl import app
from absl import flags

RUNS = flags.DEFINE_integer("runs", 5, "Fresh processes per entry point.")
ENTRY_POINTS = ("main", "predict", "prepare", "extract", "distill_pipeline", "report", "launch.__main__")
HEAVY = ("tensorflow", "scipy", "transformers")
_CHILD = """
import json, resource, sys, time
start = time.perf_counter()
import anticipax.{module}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(module: str, runs: int) -> dict:
  out = []
  for _ in range(runs):
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(module=module, heavy=HEAVY)], capture_output=True,
                          text=True, check=True)
    out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
  seconds = [r["seconds"] for r in out]
  return {"median": statistics.median(seconds), "best": min(seconds), "peak_mib": max(r["peak_mib"] for r in out),
          "heavy": out[-1]["heavy"]}


def main(argv):
  del argv
  print(f"{'entry point':18s} {'median s':>9s} {'best s':>7s} {'peak MiB':>9s}  heavy packages loaded")
  for module in ENTRY_POINTS:
    r = measure(module, RUNS.value)
    print(f"{module:18s} {r['median']:9.2f} {r['best']:7.2f} {r['peak_mib']:9.0f}  {', '.join(r['heavy']) or '-'}")


if __name__ == "__main__":
  app.run(main)
