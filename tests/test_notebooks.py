"""The notebooks of colab/ run top to bottom on CPU at tiny sizes, and are committed without outputs.

Each notebook is executed by nbclient in a fresh kernel of this Python (`sys.executable`, whatever
kernelspecs the machine has), with its `parameters` cell replaced by tiny values (as papermill would) and
its `colab` cells (installation, Drive, TPU checks) left out. A cell that raises fails the test; then the
outputs are checked for what a reader of the notebook looks at (the plot, the tables, the exported file).
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import sys
import types

import pytest

from tests import processes

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ("quickstart", "tpu_training", "instructional")
_RUN = {"train.steps": 4, "train.log_every": 2, "train.eval_every": 4, "train.checkpoint_every": 4,
        "train.async_checkpointing": False, "train.profile_steps": 0, "schedule.warmup_steps": 1}


def _path(name: str) -> pathlib.Path:
  return REPO / "colab" / f"{name}.ipynb"


def _read(name: str):
  nbformat = pytest.importorskip("nbformat")
  return nbformat.read(_path(name), as_version=4)


def _read_json(name: str) -> dict:
  with open(_path(name), encoding="utf-8") as f:
    return json.load(f)


def _tagged(cell, tag: str) -> bool:
  return tag in cell.get("metadata", {}).get("tags", [])


def _source(cell) -> str:
  source = cell["source"]
  return source if isinstance(source, str) else "".join(source)


def _parameter_names(cells) -> set[str]:
  tagged = [c for c in cells if _tagged(c, "parameters")]
  assert len(tagged) == 1, "a notebook has exactly one cell tagged `parameters`"
  return {t.id for node in ast.parse(_source(tagged[0])).body if isinstance(node, ast.Assign)
          for t in node.targets if isinstance(t, ast.Name)}


def _stages(prefix: str, stages, sizes: dict) -> dict:
  return {f"{prefix}{stage}.{k}": v for stage in stages for k, v in sizes.items()}


# -- tiny parameters, one function per notebook ------------------------------------------------------------
def _quickstart(root: pathlib.Path, demo_data_dir: str) -> dict:
  text = {"text.max_len": 32, "text.scratch.hidden_size": 32, "text.scratch.num_layers": 1,
          "text.scratch.num_heads": 2, "text.scratch.intermediate_size": 64, "train.batch_size": 16,
          "eval.batch_size": 256}
  avt = {"model.head.num_layers": 1, "model.head.inter_dim": 32, "model.head.num_heads": 2,
         "model.backbone.dim": 16, "train.batch_size": 16, "eval.batch_size": 256}
  overrides = {**_stages("stages.", ("mlm", "teacher", "baseline", "student"), _RUN),
               **_stages("stages.", ("mlm", "teacher"), text), **_stages("stages.", ("baseline", "student"), avt),
               "parallel": processes.ARM_RUNS_AT_ONCE}
  return {"WORKDIR": str(root / "work"), "TFDS_DATA_DIR": demo_data_dir, "SEEDS": 1, "OVERRIDES": overrides,
          "NUM_EXAMPLES": 3}


def _tpu_training(root: pathlib.Path, demo_data_dir: str) -> dict:
  del demo_data_dir
  from tests.data.rulstm import fixtures as fx  # pylint: disable=g-import-not-at-top
  fx.write_ek55(root / "manual", num_videos=4, segments_per_video=8, modalities=("rgb",))
  overrides = {**_RUN, "data.num_frames": 4, "model.head.num_layers": 1, "model.head.inter_dim": 32,
               "model.head.num_heads": 2, "train.batch_size": 8, "eval.batch_size": 8}
  return {"CONFIG": "ek55", "MANUAL_DIR": str(root / "manual"), "TFDS_DATA_DIR": str(root / "tfds"),
          "WORKDIR": str(root / "work"), "EXPORT_SPLIT": "test_seen", "OVERRIDES": overrides}


def _instructional(root: pathlib.Path, demo_data_dir: str) -> dict:
  del demo_data_dir
  sizes = {**_RUN, "data.num_recipes": 60, "data.feature_dim": 16, "data.max_words": 8,
           "data.max_ingredient_words": 8, "model.dim": 32, "model.num_heads": 2, "model.decoder.num_layers": 1,
           "model.temporal.num_layers": 1, "model.visual.num_layers": 1, "train.batch_size": 8,
           "eval.batch_size": 32, "distill.proj_dim": 16}
  overrides = _stages("stages.", ("pretrain", "teacher", "baseline", "student"), sizes)
  overrides.update(_stages("stages.", ("pretrain", "teacher"), {
      "text.max_len": 12, "text.scratch.hidden_size": 32, "text.scratch.num_layers": 1,
      "text.scratch.num_heads": 2, "text.scratch.intermediate_size": 64}))
  overrides["stages.pretrain.data.num_corpus_recipes"] = 40
  overrides["parallel"] = processes.ARM_RUNS_AT_ONCE
  return {"WORKDIR": str(root / "work"), "TFDS_DATA_DIR": str(root / "tfds"), "SEEDS": 1,
          "OVERRIDES": overrides, "NUM_EXAMPLES": 3}


TINY = {"quickstart": _quickstart, "tpu_training": _tpu_training, "instructional": _instructional}
# Fake CPU devices where the notebook is about the mesh; one device elsewhere (faster on 2 cores).
DEVICES = {"tpu_training": 4}


# -- the checks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
  cells = _read_json(name)["cells"]
  for i, cell in enumerate(cells):
    if cell["cell_type"] == "code":
      assert cell["outputs"] == [] and cell["execution_count"] is None, (
          f"colab/{name}.ipynb cell {i} has outputs: python tools/strip_notebooks.py colab/*.ipynb")
  installs = [c for c in cells if _tagged(c, "install")]
  assert len(installs) == 1 and _tagged(installs[0], "colab"), "one install cell, tagged `colab` and `install`"
  for cell in cells:  # what only Colab (or IPython) runs is in `colab` cells, which the tests skip
    lines = _source(cell).splitlines() if cell["cell_type"] == "code" and not _tagged(cell, "colab") else []
    assert not any("google.colab" in l or l.lstrip().startswith(("!", "%")) for l in lines), _source(cell)
  assert {"WORKDIR", "OVERRIDES"} <= _parameter_names(cells)


def _kernel_manager(kernel_dir: pathlib.Path):
  """A kernel manager for this Python, independent of the kernelspecs installed on the machine."""
  from jupyter_client.kernelspec import KernelSpecManager  # pylint: disable=g-import-not-at-top
  from jupyter_client.manager import AsyncKernelManager  # pylint: disable=g-import-not-at-top
  spec = kernel_dir / "anticipax-test"
  spec.mkdir(parents=True)
  (spec / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
      "display_name": "anticipax tests", "language": "python"}))
  specs = KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False)
  return AsyncKernelManager(kernel_name="anticipax-test", kernel_spec_manager=specs)


def execute(name: str, parameters: dict, tmp_path: pathlib.Path):
  """Runs the notebook's non-`colab` cells with `parameters` in place of its `parameters` cell."""
  nbclient = pytest.importorskip("nbclient")
  pytest.importorskip("ipykernel")
  nb = _read(name)
  missing = set(parameters) - _parameter_names(nb.cells)
  assert not missing, f"colab/{name}.ipynb's parameters cell has no {sorted(missing)}"
  nb.cells = [c for c in nb.cells if not _tagged(c, "colab")]
  cell = next(c for c in nb.cells if _tagged(c, "parameters"))
  cell.source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
  env = processes.env(DEVICES.get(name, 1), ANTICIPAX_NO_JAVA="1", TF_CPP_MIN_LOG_LEVEL="2",
                      MPLBACKEND="module://matplotlib_inline.backend_inline")
  # Started in colab/, as `jupyter notebook` in a checkout would: the notebook finds the repository root.
  client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path / "kernels"), timeout=600,
                                   startup_timeout=120, resources={"metadata": {"path": str(REPO / "colab")}})
  client.execute(env=env)
  return nb


def _outputs(nb, kind: str) -> list:
  """Every output of the notebook's code cells of MIME type `kind` (text/plain streams as "stream")."""
  out = []
  for cell in nb.cells:
    for o in cell.get("outputs", []):
      if kind == "stream" and o.output_type == "stream":
        out.append(o.text)
      elif kind in o.get("data", {}):
        out.append(o.data[kind])
  return out


def _table(nb, header: str) -> list[list[str]]:
  """The body rows (cells) of the Markdown table output whose header names `header`."""
  table = next(t for t in _outputs(nb, "text/markdown") if header in t.splitlines()[0])
  return [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in table.strip().splitlines()[2:]]


def _synthetic_action_names(data_dir: str) -> list[str]:
  from anticipax.data import synthetic_kitchen  # pylint: disable=g-import-not-at-top
  return synthetic_kitchen.load(data_dir).info.metadata["action_names"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path, request):
  data_dir = request.getfixturevalue("demo_data_dir") if name == "quickstart" else ""
  parameters = TINY[name](tmp_path, data_dir)
  nb = execute(name, parameters, tmp_path)
  workdir = pathlib.Path(parameters["WORKDIR"])
  markdown = "\n".join(_outputs(nb, "text/markdown"))
  text = "\n".join(_outputs(nb, "stream"))
  assert "on cpu: [CpuDevice(id=0)" in text  # the setup cell prints the backend and its devices
  assert len(_outputs(nb, "image/png")) == 1  # the curves (instructional: BLEU-4 by observed steps)
  if name in ("quickstart", "instructional"):
    summary = json.loads((workdir / "comparison.json").read_text())
    assert summary["verdict"] in markdown  # the comparison table, as comparison.md has it
    assert (workdir / "comparison.md").read_text().strip() in markdown
    examples = _table(nb, "teacher top-5" if name == "quickstart" else "reference step k+1")
    assert len(examples) == parameters["NUM_EXAMPLES"]
  if name == "quickstart":
    assert {"teacher", "baseline", "student", "prior", "bigram"} <= set(summary["rows"]["action/mean_top1"])
    names = set(_synthetic_action_names(parameters["TFDS_DATA_DIR"]))
    for row in examples:  # clip | previous actions | next action | student top-5 | teacher top-5
      assert row[2] in names
      for top5 in row[3:]:
        shown = [line.rsplit(" ", 2) for line in top5.split("<br>")]
        assert len(shown) == 5 and {n.strip("*") for n, _, _ in shown} <= names
        probabilities = [float(p) for _, p, _ in shown]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 100.5
  elif name == "tpu_training":
    submission = json.loads((workdir / "test_seen.json").read_text())
    assert submission["challenge"] == "action_anticipation" and len(submission["results"]) == 8
    assert "'data': 4" in text  # the mesh spans the 4 devices
    from anticipax import train  # pylint: disable=g-import-not-at-top
    metrics = train.format_metrics(json.loads((workdir / "metrics.json").read_text()))
    assert "action/mean_top5_recall" in metrics
    assert text.count(metrics) == 2  # after training, and again from the best checkpoint by predict.run
  else:
    assert summary["num_seeds"] == 1 and summary["metric"] == "test/bleu4"  # the verdict is on the test split
    assert {"bleu4", "meteor", "rouge_l", "cider", "test/bleu4", "pooled/bleu4"} <= set(summary["rows"])
    for row in examples:  # recipe | observed steps | reference | CCD | visual-only | teacher
      assert row[1].startswith("1. ") and row[2]


@pytest.mark.parametrize("split", [None, "test_seen"])
def test_tpu_training_exports_and_downloads_for_every_export_split(split, tmp_path, monkeypatch):
  """The challenge-file cells with and without `EXPORT_SPLIT` (Colab's download faked, predict stubbed)."""
  cells = _read_json("tpu_training")["cells"]
  export, download = (next(c for c in cells if _tagged(c, tag)) for tag in ("export", "download"))
  downloads, exports = [], []

  def run(config, workdir, **kwargs):
    del config
    exports.append((workdir, kwargs["split"]))
    pathlib.Path(kwargs["output"]).write_text(json.dumps({"results": {"P01_11_0": {"action": {"1,0": 0.7, "0,1": 0.3}}}}))
    return {"segments": 1, "step": 4}

  colab = types.ModuleType("google.colab")
  colab.files = types.SimpleNamespace(download=downloads.append)
  monkeypatch.setitem(sys.modules, "google.colab", colab)
  builder = types.SimpleNamespace(info=types.SimpleNamespace(metadata={"verbs": ["take", "open"],
                                                                       "nouns": ["knife", "fridge"]}))
  namespace = {"os": os, "EXPORT_SPLIT": split, "WORKDIR": str(tmp_path), "config": None, "builder": builder,
               "predict": types.SimpleNamespace(run=run)}
  for cell in (export, download):
    exec(compile(_source(cell), cell["id"], "exec"), namespace)  # pylint: disable=exec-used
  if split is None:
    assert namespace["output"] is None and exports == [] and downloads == []
  else:
    assert exports == [(str(tmp_path), split)] and downloads == [str(tmp_path / f"{split}.json")]
