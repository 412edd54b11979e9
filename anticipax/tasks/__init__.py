"""Tasks plug into the one trainer: `load_data(config)` then `get(config, splits)`."""

from anticipax.data import datasets
from anticipax.tasks.anticipation import AnticipationTask

_TASKS = {"anticipation": AnticipationTask}


def _check(config):
  if config.task not in _TASKS:
    raise ValueError(f"config.task: unknown task {config.task!r}; known: {', '.join(_TASKS)}")
  return _TASKS[config.task]


def load_data(config):
  """The splits the task trains and evaluates on (a task may read its own kind of data)."""
  task_cls = _check(config)
  if hasattr(task_cls, "load_data"):
    return task_cls.load_data(config)
  return datasets.load(config.data)


def get(config, splits):
  return _check(config)(config, splits)
