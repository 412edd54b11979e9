"""Strips the outputs of notebooks, as they are committed: `python tools/strip_notebooks.py colab/*.ipynb`.

Clears every code cell's outputs and execution count, and the cell metadata that Jupyter, nbclient and
Colab add when running (timings, scroll state, output ids); keeps the tags (`colab`, `parameters`).
`--check` changes nothing and exits 1 naming the notebooks that would change (tests/test_notebooks.py
asserts the same).
"""

import argparse
import json
import sys

# Cell metadata written by running a notebook, not by its author.
RUN_METADATA = ("execution", "executionInfo", "outputId", "collapsed", "scrolled", "colab")


def strip(notebook: dict) -> dict:
  """The notebook without outputs, execution counts and run metadata (a new dict)."""
  notebook = json.loads(json.dumps(notebook))
  for cell in notebook["cells"]:
    if cell["cell_type"] == "code":
      cell["outputs"] = []
      cell["execution_count"] = None
    for key in RUN_METADATA:
      cell.get("metadata", {}).pop(key, None)
  notebook.get("metadata", {}).pop("widgets", None)
  return notebook


def _dump(notebook: dict) -> str:
  return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("paths", nargs="+", help="notebooks (.ipynb)")
  parser.add_argument("--check", action="store_true", help="only report notebooks with outputs")
  args = parser.parse_args(argv)
  dirty = []
  for path in args.paths:
    with open(path, encoding="utf-8") as f:
      text = f.read()
    stripped = _dump(strip(json.loads(text)))
    if stripped != text:
      dirty.append(path)
      if not args.check:
        with open(path, "w", encoding="utf-8") as f:
          f.write(stripped)
  for path in dirty:
    print(f"{path}: {'has outputs or run metadata' if args.check else 'stripped'}")
  return 1 if args.check and dirty else 0


if __name__ == "__main__":
  sys.exit(main())
