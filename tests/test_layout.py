"""The house's layout holds: the two methods are packages of their own above the shared code, neither
imports the other, the shared code imports neither, and no config imports an entry point."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
METHODS = ("anticipax.next_action", "anticipax.next_step")
# Entry points sit on top: they may wire either method.
ENTRY_POINTS = ("anticipax.main", "anticipax.distill_pipeline", "anticipax.predict", "anticipax.extract",
                "anticipax.prepare", "anticipax.report", "anticipax.launch")


def _module(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
  """Every anticipax module a file imports (at top level or inside functions)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module:
      found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
  return {m for m in found if m.startswith("anticipax")}


def _within(module: str, package: str) -> bool:
  return module == package or module.startswith(package + ".")


MODULES = {_module(p): _imports(p) for p in sorted((REPO / "anticipax").rglob("*.py"))}


@pytest.mark.parametrize("method, other", [METHODS, METHODS[::-1]])
def test_neither_method_imports_the_other(method, other):
  crossing = {m: sorted(i for i in imports if _within(i, other))
              for m, imports in MODULES.items() if _within(m, method)}
  assert not {m: i for m, i in crossing.items() if i}


def test_shared_code_imports_neither_method():
  shared = [m for m in MODULES if not any(_within(m, p) for p in (*METHODS, *ENTRY_POINTS))]
  assert "anticipax.train" in shared and "anticipax.tasks" in shared and "anticipax.losses" in shared
  upward = {m: sorted(i for i in MODULES[m] if any(_within(i, p) for p in (*METHODS, *ENTRY_POINTS)))
            for m in shared}
  assert not {m: i for m, i in upward.items() if i}


def test_no_config_imports_an_entry_point():
  for path in sorted((REPO / "configs").glob("*.py")):
    assert not {i for i in _imports(path) if any(_within(i, p) for p in ENTRY_POINTS)}, path.name
