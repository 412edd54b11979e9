"""Which modules of `anticipax` the fast test tier leaves unexercised (a check, not a test).

  python tests/fast_tier_coverage.py            # runs the fast tier under coverage (pytest-xdist workers too)
  python tests/fast_tier_coverage.py -- tests/models   # other pytest arguments (in place of `tests`)

The fast tier must run every module of the package at least once (issue 19): a module counts as exercised
when the body of at least one of its functions ran, not merely its import (a module without functions: when
it was imported). Prints one line per module
(statements covered, functions whose body ran) and exits 1 naming the modules no fast test runs.
Needs `pip install coverage` (not a dependency of the package: it is only this check's tool).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def _rcfile(folder: pathlib.Path) -> pathlib.Path:
  rc = folder / "coveragerc"
  rc.write_text(f"[run]\nsource = anticipax\nparallel = true\nbranch = false\ndata_file = {folder / 'data'}\n"
                "patch = subprocess\n")  # xdist workers and the subprocesses tests start are measured too
  return rc


def main(argv: list[str]) -> int:
  extra = argv[argv.index("--") + 1:] if "--" in argv else ["tests"]
  with tempfile.TemporaryDirectory(prefix="fast-tier-coverage-") as tmp:
    folder = pathlib.Path(tmp)
    rc = _rcfile(folder)
    env = {**os.environ, "COVERAGE_RCFILE": str(rc)}
    test = [sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest", "-q", "-n", "2",
            "-m", "not slow", "-p", "no:cacheprovider", *extra]
    status = subprocess.run(test, cwd=REPO, env=env).returncode
    subprocess.run([sys.executable, "-m", "coverage", "combine", f"--rcfile={rc}", "-q"], cwd=REPO, env=env,
                   check=True)
    report = folder / "coverage.json"
    subprocess.run([sys.executable, "-m", "coverage", "json", f"--rcfile={rc}", "-q", "-o", str(report)],
                   cwd=REPO, env=env, check=True)
    files = json.loads(report.read_text())["files"]
  unexercised = []
  print(f"\n{'statements':>12} {'functions':>10}  module (fast tier: -m 'not slow')")
  for path in sorted(str(p.relative_to(REPO)) for p in (REPO / "anticipax").rglob("*.py")):
    data = files.get(path)
    functions = {name: f for name, f in (data or {}).get("functions", {}).items() if name}
    ran = sum(1 for f in functions.values() if f["executed_lines"])
    statements = f"{data['summary']['percent_covered']:.0f} %" if data else "-"
    print(f"{statements:>12} {ran:>4} / {len(functions):<4}  {path}")
    imported = bool(data) and (data["summary"]["covered_lines"] > 0 or not data["summary"]["num_statements"])
    if not (ran if functions else imported):
      unexercised.append(path)
  if unexercised:
    print("\nNo function of these modules runs in the fast tier:\n  " + "\n  ".join(unexercised))
  else:
    print("\nEvery module runs in the fast tier.")
  if status:
    print(f"(the fast tier itself exited with {status})")
  return 1 if unexercised or status else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
