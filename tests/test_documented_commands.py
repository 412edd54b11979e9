"""Every `python -m anticipax...` command the README and the configs' docstrings show runs as written.

Commands are collected from the text (so a new documented command is tested without editing this file),
grouped into chains that share a temporary root (a teacher's command writes what the student's reads),
and run in fresh processes on fixture data in the public formats, at tiny sizes: the fixture paths and
size overrides are appended to the command, never edited into it. `/tmp/<x>` becomes `<root>/<x>`;
`gs://bucket/<x>` stays as written and lands in `<root>/gcs/bucket/<x>` (`tests/fake_gcs`); `/data/...` values
become the fixture files of their flag.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from anticipax.data.tasty import synthetic as tasty_synthetic
from tests.data.rulstm import fixtures as fx
from tests.fake_gcs import sitecustomize as fake_gcs
from tests.data.rulstm.test_frames import write_frames
from tests import tiny_pretrained
from tests import processes

REPO = pathlib.Path(__file__).resolve().parents[1]
_COMMAND = re.compile(r"^python -m anticipax\.\w+ ")
# Sweeps launch many runs and are run for real by tests/test_launch.py (a 2-trial local launch + report).
_RUN_ELSEWHERE = re.compile(r"^python -m anticipax\.(launch|report) ")

# Chains: config files whose commands depend on each other's outputs run in this order, in one root.
CHAINS = {
    "egtea": ("teacher_egtea", "egtea"),
    "ek55": ("teacher_ek55", "ek55"),
    "ek100": ("ek100",),
    "demo": ("demo", "demo_kd"),
    "mlm": ("mlm_recipes",),
    "egtea_kd": ("egtea_kd",),
    "ek55_kd": ("ek55_kd",),
    "ek100_kd": ("ek100_kd",),
    "tasty": ("tasty",),
    "tasty_demo": ("tasty_demo",),
    "egtea_vitb": ("egtea_vitb",),
}
DATASETS = {"egtea_gaze_plus": "egtea", "epic_kitchens_55": "ek55", "epic_kitchens_100": "ek100",
            "tasty_videos": "tasty"}
TASTY_FEATURES = "features/{recipe}.npy"  # where the synthetic collection keeps its features


def _commands_in(text: str) -> list[str]:
  """`python -m anticipax.<module> ...` commands of a text: `\\` continuations joined, `# comments` and
  anything before `&&` dropped."""
  lines, out, pending = text.splitlines(), [], None
  for line in lines:
    line = line.strip()
    if pending is not None:
      pending += " " + line.rstrip("\\").strip()
      if not line.endswith("\\"):
        out.append(pending)
        pending = None
      continue
    for part in line.split("&&"):
      part = part.strip()
      if _COMMAND.match(part) and not _RUN_ELSEWHERE.match(part):
        if part.endswith("\\"):
          pending = part.rstrip("\\").strip()
        else:
          out.append(part)
  return [re.sub(r"\s+#.*$", "", c).strip() for c in out]


def documented_commands() -> list[tuple[str, str]]:
  """(source, command) for the README and every config docstring, in order of appearance."""
  found = [("README.md", c) for c in _commands_in((REPO / "README.md").read_text())]
  for path in sorted((REPO / "configs").glob("*.py")):
    if path.stem in ("__init__", "common"):
      continue
    module = importlib.import_module(f"configs.{path.stem}")
    found += [(f"configs/{path.name}", c) for c in _commands_in(module.__doc__ or "")]
  return found


def _config_of(command: str) -> str:
  match = re.search(r"--config=configs/(\w+)\.py", command)
  assert match, f"documented command without --config=configs/<name>.py: {command}"
  return match.group(1)


def chain_of(command: str) -> str:
  name = _config_of(command)
  chains = [chain for chain, names in CHAINS.items() if name in names]
  assert chains, f"configs/{name}.py is in no chain of tests/test_documented_commands.py: {command}"
  return chains[0]


def _chain_commands(chain: str) -> list[str]:
  """The chain's commands, unique, ordered by the chain's config order then by appearance."""
  commands = []
  for _, command in documented_commands():
    if chain_of(command) == chain and command not in commands:
      commands.append(command)
  order = CHAINS[chain]
  return sorted(commands, key=lambda c: order.index(_config_of(c)))  # stable: appearance within a config


# -- fixtures and size overrides -------------------------------------------------------------------
_AVT = {"data.num_frames": 4, "model.head.num_layers": 1, "model.head.inter_dim": 32, "model.head.num_heads": 2,
        "model.backbone.dim": 16, "train.batch_size": 8, "eval.batch_size": 8, "schedule.warmup_steps": 0}
_TEXT = {"text.max_len": 32, "train.batch_size": 8, "eval.batch_size": 8, "data.num_frames": 4}
_NEXT_STEP = {"data.max_words": 8, "data.max_ingredient_words": 8, "model.dim": 32, "model.num_heads": 2,
              "model.decoder.num_layers": 1, "model.temporal.num_layers": 1, "train.batch_size": 8,
              "eval.batch_size": 8, "eval.beam_width": 2, "schedule.warmup_steps": 0}
# AVT-b: the tiny ViT (tests/models/golden/tiny_vit, 32 px) on the fixture frames (40 x 56).
_VIT = {"model.backbone.name": "tiny", "model.backbone.image_size": 32,
        "model.backbone.pretrained": str(REPO / "tests" / "models" / "golden" / "tiny_vit"),
        "data.crop_size": 32, "data.train_short_side": "(34,40)", "data.eval_short_side": 36,
        "extract.short_side": 36, "extract.batch_size": 64}
_RUN = {"train.steps": 2, "train.eval_every": 2, "train.checkpoint_every": 2, "train.log_every": 1,
        "train.profile_steps": 0, "train.async_checkpointing": False}


def _stage_overrides(c, prefix: str, pretrained: str) -> list[str]:
  sizes = dict(_RUN)
  if c.task == "anticipation":
    sizes.update(_AVT)
    if c.distill.top_k:  # the fixtures have a dozen actions, not thousands
      sizes["distill.top_k"] = 3
    if c.model.backbone.get("kind") == "vit":
      sizes.update(_VIT)
  elif c.task == "next_step":
    sizes.update(_NEXT_STEP)
    if c.data.name == "tasty_synthetic":
      sizes.update({"data.num_recipes": 60, "data.feature_dim": 16})
      if "num_corpus_recipes" in c.data:
        sizes["data.num_corpus_recipes"] = 80
    if "text" in c:
      sizes["text.max_len"] = 16
      if c.text.get("pretrained") and not prefix.startswith("--config.stages."):
        sizes["text.pretrained"] = pretrained
  elif c.task in ("teacher", "mlm"):
    sizes.update(_TEXT if c.task == "teacher" else {"text.max_len": 32, "train.batch_size": 8,
                                                     "eval.batch_size": 8})
    if c.text.get("pretrained") and not prefix.startswith("--config.stages."):
      sizes["text.pretrained"] = pretrained
  if c.data.name == "synthetic_kitchen":
    sizes.pop("data.num_frames", None)
  return [f"{prefix}{k}={v}" for k, v in sizes.items()]


def _overrides(command: str, root: pathlib.Path, fixtures: dict) -> list[str]:
  """Fixture paths and tiny sizes for one command (appended after its own flags)."""
  arg = re.search(r"--config=configs/\w+\.py(?::(\S+))?", command).group(1)
  config = importlib.import_module(f"configs.{_config_of(command)}").get_config(arg)
  tfds = f"--config.tfds_data_dir={root / 'tfds'}"
  if "stages" in config:
    # Two seeds where the paired comparison is the point (method 1's pipelines); one elsewhere.
    seeds = 1 if any(st.task == "next_step" for st in config.stages.values()) else 2
    flags = [tfds, f"--config.seeds={seeds}", f"--config.parallel={processes.ARM_RUNS_AT_ONCE}"]
    if "pretrained" in config:
      flags.append(f"--config.pretrained={fixtures['pretrained']}")
    datasets = {DATASETS[s.data.name] for s in config.stages.values() if s.data.name in DATASETS}
    if datasets and "manual_dir" in config:
      flags.append(f"--config.manual_dir={fixtures[datasets.pop()]}")
    if "features" in config:
      flags.append(f"--config.features={TASTY_FEATURES}")
    for name, stage in config.stages.items():
      flags += _stage_overrides(stage, f"--config.stages.{name}.", fixtures["pretrained"])
    return flags
  flags = [f"--config.data.tfds_data_dir={root / 'tfds'}"]
  if config.data.name in DATASETS:
    flags.append(f"--config.data.manual_dir={fixtures[DATASETS[config.data.name]]}")
  if config.data.name == "tasty_videos":
    flags.append(f"--config.data.features={TASTY_FEATURES}")
  if not command.startswith("python -m anticipax.prepare"):
    flags += _stage_overrides(config, "--config.", fixtures["pretrained"])
  return flags


def _localize(command: str, root: pathlib.Path, fixtures: dict) -> list[str]:
  """The command's own arguments with paths moved into `root` and `/data/...` pointed at fixtures."""
  args = []
  for token in shlex.split(command):
    flag, eq, value = token.partition("=")
    if eq and value.startswith("/tmp/"):
      value = str(root / value[len("/tmp/"):])
    elif eq and value.startswith("/data/"):  # a corpus file, or a manual dir that the overrides replace
      corpus = fixtures["recipenlg"] if value.endswith(".csv") else fixtures["corpus"]
      value = corpus if flag.endswith("corpus") else str(root / value[1:])
    args.append(f"{flag}{eq}{value}" if eq else token)
  return args


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
  root = tmp_path_factory.mktemp("documented_fixtures")
  corpus = root / "recipes.txt"
  corpus.write_text("\n".join(f"take <v> knife <a> cut <v> onion <a> put <v> pan {i}" for i in range(64)))
  recipenlg = root / "recipenlg" / "full_dataset.csv"  # recipe text for method 2's teacher (RecipeNLG form)
  tasty_synthetic.write_corpus(recipenlg, num_recipes=80)
  # Where a config names a pretrained checkpoint (all-MiniLM-L6-v2), a tiny one in the same HF format.
  paths = {"pretrained": tiny_pretrained.write(root / "tiny_bert"), "corpus": str(corpus), "recipenlg": str(recipenlg)}
  for name, write in (("egtea", fx.write_egtea), ("ek55", fx.write_ek55), ("ek100", fx.write_ek100)):
    info = write(root / name, num_videos=4, segments_per_video=8, modalities=("rgb",))
    paths[name] = str(root / name)
    if name == "egtea":  # AVT-b's frames, where configs/egtea_vitb.py looks by default: <manual_dir>/frames
      write_frames(info, root / name / "frames", layout="flat")
  tasty_synthetic.write_synthetic_tasty(root / "tasty", num_recipes=60, feature_dim=16)
  paths["tasty"] = str(root / "tasty")
  return paths


def test_every_documented_command_belongs_to_a_chain():
  commands = documented_commands()
  assert len(commands) >= 15
  sources = {s for s, _ in commands}
  assert "README.md" in sources and "configs/egtea_kd.py" in sources
  for _, command in commands:
    chain_of(command)
  # The distillation command of the student configs, as a user would copy it.
  assert any("--config.distill.teacher_outputs=/tmp/teacher_egtea/teacher_outputs_train.npz" in c
             for _, c in commands)


@pytest.mark.slow
@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_documented_commands_run(chain, fixtures, tmp_path):
  commands = _chain_commands(chain)
  assert commands, f"chain {chain}: no documented command"
  for command in commands:
    args = _localize(command, tmp_path, fixtures) + _overrides(command, tmp_path, fixtures)
    many_devices = any(a.startswith("--config.mesh.") for a in args)
    # METEOR's JVM (seconds per evaluation) is left out: tests/captions covers it; these test the commands.
    env = fake_gcs.env(str(tmp_path / "gcs"), processes.env(8 if many_devices else 1, ANTICIPAX_NO_JAVA="1"))
    proc = subprocess.run([sys.executable, *args[1:]] if args[0] == "python" else args, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{command}\n-> {shlex.join(args)}\n{proc.stderr[-4000:]}"
    workdir = next((a.split("=", 1)[1] for a in args if a.startswith("--workdir=")), None)
    if workdir and workdir.startswith("gs://"):
      workdir = str(tmp_path / "gcs" / workdir[len("gs://"):])
    if "anticipax.main" in command:
      assert json.loads(pathlib.Path(workdir, "metrics.json").read_text())["step"] == 2
    if "anticipax.distill_pipeline" in command:
      summary = json.loads(pathlib.Path(workdir, "comparison.json").read_text())
      seeds = int(next(a for a in reversed(args) if a.startswith("--config.seeds=")).split("=")[1])
      assert summary["num_seeds"] == seeds and summary["verdict"] in proc.stdout
      assert all(pathlib.Path(workdir, arm, f"seed_{k}", "metrics.json").is_file()
                 for arm in ("baseline", "student") for k in range(seeds))
