"""The notebooks' install cell (tagged `install`): what it installs on each kind of Colab runtime, and that
it installs.

Colab is not here, and with no network pip cannot download jax or TensorFlow, so the cell's code runs in
two ways, each as the notebook holds it, with only its `SOURCE` form field set (as Colab's form does):
- In this process, with its subprocesses recorded and each runtime faked through what the cell looks at
  (environment variables, /dev entries, whether `libtpu` is installed and `import tensorflow` works): the
  pip commands, packages and flags for CPU, GPU and TPU runtimes, with and without libtpu and
  TensorFlow, and how it fetches a git URL, a zip on Drive (the mount faked), a tar.gz, a checkout, a wheel.
- For real (`slow`), in a fresh virtual environment that sees this environment's packages except anticipax:
  from a zip of this checkout and from a git clone of it, with pip offline (`PIP_NO_INDEX`) and without
  build isolation (`PIP_NO_BUILD_ISOLATION=0`: no setuptools download). The dependencies are found
  installed, anticipax is installed from the fetched tree, and it imports from another folder.
Not covered: pip downloading `jax[tpu]` or the dependencies, Colab's Drive, and Colab's own jax.
"""

from __future__ import annotations

import ast
import fnmatch
import glob
import importlib.machinery
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import types
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ("quickstart", "tpu_training", "instructional")
DRIVE_ZIP = "/content/drive/MyDrive/anticipax-main.zip"


def _cells(name: str) -> list[dict]:
  return json.loads((REPO / "colab" / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
  return "".join(cell["source"])


def _install_cell(name: str = "quickstart") -> str:
  tagged = [c for c in _cells(name) if "install" in c["metadata"].get("tags", [])]
  assert len(tagged) == 1 and "colab" in tagged[0]["metadata"]["tags"], f"{name}: one install cell, tagged colab"
  return _source(tagged[0])


def _with_source(cell: str, source: str) -> str:
  """The cell with its `SOURCE` form field set to `source`, as Colab's form writes it."""
  cell, n = re.subn(r"^SOURCE = .*#@param.*$", lambda _: f'SOURCE = {source!r}  #@param {{type:"string"}}', cell,
                    flags=re.M)
  assert n == 1, "the install cell has one `SOURCE = ...  #@param` line"
  return cell


def _default_source(cell: str) -> str:
  return ast.literal_eval(re.search(r"^SOURCE = (.*?)\s*#@param", cell, flags=re.M)[1])


def _requirements() -> list[str]:
  with open(REPO / "pyproject.toml", "rb") as f:
    return tomllib.load(f)["project"]["dependencies"]


# -- one cell, one address ---------------------------------------------------------------------------------
def test_every_notebook_has_the_same_install_cell_and_its_badge():
  cell = _install_cell()
  readme = (REPO / "colab" / "README.md").read_text()
  address = re.search(r"https://github\.com/[\w.-]+/[\w.-]+", readme)[0]  # the first one: the repository's
  assert _default_source(cell) == address
  repo = address.removeprefix("https://github.com/")
  for name in NOTEBOOKS:
    assert _install_cell(name) == cell, f"colab/{name}.ipynb's install cell differs from quickstart's"
    url = f"https://colab.research.google.com/github/{repo}/blob/main/colab/{name}.ipynb"
    first = _cells(name)[0]
    assert first["cell_type"] == "markdown" and url in _source(first), f"{name}: no Open in Colab badge on top"
    assert url in readme, f"colab/README.md's table has no badge for {name}"
  for line in cell.splitlines():  # plain Python, so that the tests below run it as the notebook holds it
    assert not line.lstrip().startswith(("!", "%")), line


# -- what it installs, runtime by runtime (recorded) -------------------------------------------------------
class _Recorded:
  """What one run of the install cell did."""

  def __init__(self):
    self.commands: list[list[str]] = []
    self.mounts: list[str] = []
    self.namespace: dict = {}

  @property
  def pips(self) -> list[list[str]]:
    """The pip commands, without `python -m pip install -q`."""
    head = [sys.executable, "-m", "pip", "install", "-q"]
    return [c[len(head):] for c in self.commands if c[:len(head)] == head]

  @property
  def clones(self) -> list[list[str]]:
    return [c for c in self.commands if c[:2] == ["git", "clone"]]


def _fake_tree(root: pathlib.Path) -> None:
  """What a clone or an archive holds, as far as the cell reads it."""
  (root / "configs").mkdir(parents=True)
  shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")


@pytest.fixture(name="run_cell")
def _run_cell(monkeypatch, tmp_path):
  """Runs the install cell here with `subprocess.run` recorded and the runtime faked."""

  def run(source: str | None = None, *, environ: dict | None = None, devices=(), libtpu=False,
          tensorflow=True, archives: dict | None = None) -> _Recorded:
    done = _Recorded()

    def fake_run(argv, **kwargs):
      del kwargs
      argv = list(argv)
      done.commands.append(argv)
      if argv[:2] == ["git", "clone"]:
        _fake_tree(pathlib.Path(argv[-1]))
      returncode = 0 if tensorflow or argv[1:] != ["-c", "import tensorflow"] else 1
      return subprocess.CompletedProcess(argv, returncode)

    real_glob, real_find_spec, real_unpack = glob.glob, importlib.util.find_spec, shutil.unpack_archive
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(glob, "glob", lambda pattern, **kw: (
        [d for d in devices if fnmatch.fnmatch(d, pattern)] if pattern.startswith("/dev/") else
        real_glob(pattern, **kw)))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (
        (importlib.machinery.ModuleSpec("libtpu", None) if libtpu else None) if name == "libtpu" else
        real_find_spec(name, *a)))
    monkeypatch.setattr(shutil, "unpack_archive", lambda src, dst, *a, **kw: real_unpack(
        (archives or {}).get(src, src), dst, *a, **kw))
    for var in ("COLAB_TPU_ADDR", "TPU_ACCELERATOR_TYPE"):
      monkeypatch.delenv(var, raising=False)
    for var, value in (environ or {}).items():
      monkeypatch.setenv(var, value)
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=done.mounts.append)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.chdir(tmp_path)
    cell = _install_cell()
    if source is not None:
      cell = _with_source(cell, source)
    exec(compile(cell, "install cell", "exec"), done.namespace)  # pylint: disable=exec-used
    return done

  return run


# Whatever the runtime, the dependencies pip sees are pyproject.toml's, less tensorflow-cpu where a
# TensorFlow imports already; jax is the installed one, with `jax[tpu]` (libtpu) added on a TPU without it.
CASES = {  # name: (environment, /dev entries, libtpu installed, TensorFlow imports, runtime, adds jax[tpu])
    "cpu": ({}, (), False, True, "cpu", False),
    "cpu, no tensorflow": ({}, (), False, False, "cpu", False),
    "gpu": ({}, ("/dev/nvidia0", "/dev/nvidiactl"), False, True, "gpu", False),
    "tpu vm v2-v4, libtpu": ({}, ("/dev/accel0", "/dev/accel1"), True, True, "tpu", False),
    "tpu vm v2-v4, no libtpu": ({}, ("/dev/accel0",), False, True, "tpu", True),
    "tpu vm v5e, no libtpu, no tensorflow": ({}, ("/dev/vfio/0", "/dev/vfio/vfio"), False, False, "tpu", True),
    "tpu by environment, libtpu, no tensorflow": ({"TPU_ACCELERATOR_TYPE": "v5litepod-1"}, (), True, False, "tpu",
                                                  False),
    "legacy tpu runtime, no libtpu": ({"COLAB_TPU_ADDR": "10.0.0.2:8470"}, (), False, True, "tpu", True),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("source", ["git", "drive zip"])
def test_install_cell_installs_what_the_runtime_lacks(case, source, run_cell, tmp_path):
  environ, devices, libtpu, tensorflow, runtime, adds_tpu = CASES[case]
  archive = tmp_path / "download.zip"
  with zipfile.ZipFile(archive, "w") as z:  # GitHub's "Download ZIP": one folder at the top
    z.write(REPO / "pyproject.toml", "anticipax-main/pyproject.toml")
    z.writestr("anticipax-main/configs/__init__.py", "")
  done = run_cell(None if source == "git" else DRIVE_ZIP, environ=environ, devices=devices, libtpu=libtpu,
                  tensorflow=tensorflow, archives={DRIVE_ZIP: str(archive)})
  checkout = str(tmp_path / "anticipax")
  tpu = ["jax[tpu]"] if adds_tpu else []
  if tensorflow:  # Colab's TensorFlow stays the only one
    kept = [r for r in _requirements() if not r.startswith("tensorflow-cpu")]
    assert len(kept) == len(_requirements()) - 1 and any(r.startswith("tensorflow-datasets") for r in kept)
    assert done.pips == [kept + tpu, ["--no-deps", "-e", checkout]]
  else:  # tensorflow-cpu comes with anticipax's dependencies
    assert done.pips == [["-e", checkout] + tpu]
  assert done.namespace["RUNTIME"] == runtime
  assert [sys.executable, "-c", "import tensorflow"] in done.commands
  if source == "git":
    assert done.clones == [["git", "clone", "--depth", "1", _default_source(_install_cell()), checkout]]
    assert done.mounts == []
  else:
    assert done.clones == [] and done.mounts == ["/content/drive"]
  assert (tmp_path / "anticipax" / "configs").is_dir()
  assert os.getcwd() == checkout  # where the setup cell finds configs/


def test_install_cell_takes_a_tar_gz_or_a_checkout_and_refuses_a_wheel(run_cell, tmp_path, monkeypatch):
  tree = tmp_path / "elsewhere" / "tree"
  _fake_tree(tree)
  archive = shutil.make_archive(str(tmp_path / "elsewhere" / "anticipax"), "gztar", tree)  # flat, as `git archive`
  done = run_cell(archive)
  assert done.clones == [] and done.mounts == []
  assert done.pips[-1] == ["--no-deps", "-e", str(tmp_path / "anticipax")]
  assert (tmp_path / "anticipax" / "configs").is_dir()
  # Run again (a session restarted, /content kept): the tree there is used, nothing fetched.
  again = run_cell(str(tmp_path / "nowhere.zip"))
  assert again.pips[-1] == ["--no-deps", "-e", str(tmp_path / "anticipax")]
  # A checkout (e.g. on Drive) is installed where it is.
  monkeypatch.chdir(tmp_path)
  shutil.rmtree(tmp_path / "anticipax")
  done = run_cell(str(tree))
  assert done.pips[-1] == ["--no-deps", "-e", str(tree)] and not (tmp_path / "anticipax").exists()
  assert os.getcwd() == str(tree)
  with pytest.raises(ValueError, match="a wheel holds no configs/"):
    run_cell(str(tmp_path / "anticipax-0.1.0-py3-none-any.whl"))


# -- and that it installs (a fresh virtual environment, offline) -------------------------------------------
def _fresh_venv(root: pathlib.Path) -> pathlib.Path:
  """A new virtual environment that sees this one's packages except anticipax; returns its python.

  A venv made by a venv's python has the *base* interpreter's packages as its system site-packages, not
  this venv's, so `--system-site-packages` would not do: a .pth file adds a folder of links to this
  venv's packages instead (leaving out anticipax's, so that pip installs it afresh and has none to remove).
  """
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
  python = root / "bin" / "python"
  site = pathlib.Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     check=True, capture_output=True, text=True).stdout.strip())
  base = root / "base-packages"
  base.mkdir()
  for entry in pathlib.Path(sysconfig.get_paths()["purelib"]).iterdir():
    if not entry.name.startswith(("anticipax", "__editable__")):
      (base / entry.name).symlink_to(entry)
  (site / "base-packages.pth").write_text(f"{base}\n")
  return python


def _zip_of_checkout(path: pathlib.Path) -> str:
  """This checkout's tree (what the install reads) as GitHub's "Download ZIP" has it."""
  with zipfile.ZipFile(path, "w") as z:
    for name in ("pyproject.toml", "README.md", "LICENSE"):
      if (REPO / name).exists():
        z.write(REPO / name, f"anticipax-main/{name}")
    for folder in ("anticipax", "configs"):
      for f in sorted((REPO / folder).rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
          z.write(f, f"anticipax-main/{f.relative_to(REPO)}")
  return str(path)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["zip", "git"])
def test_install_cell_installs_anticipax_in_a_fresh_venv(kind, tmp_path):
  if kind == "git" and not (REPO / ".git").exists():
    pytest.skip("not a git checkout")
  cell = _install_cell()
  namespace = {}
  definitions = [n for n in ast.parse(cell).body if isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef))]
  exec(compile(ast.Module(definitions, []), "install cell", "exec"), namespace)  # pylint: disable=exec-used
  devices = glob.glob("/dev/accel*") + glob.glob("/dev/vfio/[0-9]*") + glob.glob("/dev/nvidia[0-9]*")
  if namespace["accelerator"](os.environ, devices) == "tpu" and importlib.util.find_spec("libtpu") is None:
    pytest.skip("a TPU without libtpu: the cell would download jax[tpu]")
  python = _fresh_venv(tmp_path / "venv")
  # git clones the committed tree (HEAD); the zip holds the working tree.
  source = _zip_of_checkout(tmp_path / "anticipax-main.zip") if kind == "zip" else REPO.as_uri()
  content = tmp_path / "content"  # Colab's working folder
  content.mkdir()
  (content / "install.py").write_text(_with_source(cell, source))
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env.update(PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
             PYTHONNOUSERSITE="1", TF_CPP_MIN_LOG_LEVEL="2")
  run = subprocess.run([python, "install.py"], cwd=content, env=env, capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stdout + run.stderr
  checkout = content / "anticipax"
  assert f"Installed anticipax from {checkout}" in run.stdout
  # This environment's TensorFlow imports, so the cell installed anticipax without tensorflow-cpu.
  assert "--no-deps -e " + str(checkout) in run.stdout and "tensorflow-cpu" not in run.stdout
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  imported = subprocess.run(
      [python, "-c", "import anticipax, anticipax.train, importlib.metadata as m; "
                     "print(anticipax.__file__); print(m.version('anticipax'))"],
      cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
  assert imported.returncode == 0, imported.stderr
  file, version = imported.stdout.split()
  assert file == str(checkout / "anticipax" / "__init__.py") and version == "0.1.0"
  assert (checkout / "configs" / "demo_kd.py").is_file()  # what the notebooks import from the checkout
  site = next((tmp_path / "venv" / "lib").glob("python3*/site-packages"))
  assert list(site.glob("anticipax-*.dist-info"))  # installed in the new environment, not found elsewhere
