"""Launches a config's hyperparameter sweep: one `anticipax.main` run per trial.

    python -m anticipax.launch --config=configs/demo.py --workdir_root=/tmp/anticipax_sweeps
    python -m anticipax.report /tmp/anticipax_sweeps/demo

A config file declares its sweeps beside `get_config`: functions returning one override dict per trial
(the big_vision / XManager convention), written out or built with `anticipax.sweeps`' `axis`, `product`
and `zip_`. `--sweep=NAME` calls `NAME(arg)` or `sweep_NAME(arg)` instead (`arg` is the `:arg` of
`--config`). Trial `i` runs `python -m anticipax.main --config=<file> --workdir=<root>/<experiment>/<i>_<slug>
--config.k=v ...`; `--config.k=v` given to the launcher apply to every trial; `--trials=1,4` launches a
subset. `<root>/<experiment>/sweep.json` lists the sweep for the report.

Executors:
- `local` (`local.py`): subprocesses of this machine's Python, after preparing each distinct `data`
  section once. `--parallel=N` runs N trials at a time, each pinned to its own 1/N of the GPUs or TPU
  chips (`devices.py`); by default one at a time on accelerators. A failed trial does not stop the
  others; the launcher exits non-zero at the end and `anticipax.report` shows the trial as failed.
- `vertex` (`vertex.py`): one Vertex AI custom job per trial on a machine Vertex accepts
  (`machines.py`), running an image built from this source tree or `--image`; `--workdir_root=gs://b/...`
  is `/gcs/b/...` to the jobs. `--dry_run` prints each job's spec as JSON without submitting anything.
"""

from anticipax.launch.trials import MANIFEST
from anticipax.launch.trials import Trial
from anticipax.launch.trials import check_overrides
from anticipax.launch.trials import load_sweep
from anticipax.launch.trials import make_trials
from anticipax.launch.trials import write_manifest

__all__ = ["MANIFEST", "Trial", "check_overrides", "load_sweep", "make_trials", "write_manifest"]
