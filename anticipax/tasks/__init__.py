"""Tasks plug into the one trainer: `get(config, info)` builds the task named by `config.task`."""

from anticipax.tasks.anticipation import AnticipationTask

_TASKS = {"anticipation": AnticipationTask}


def get(config, info):
  if config.task not in _TASKS:
    raise ValueError(f"config.task: unknown task {config.task!r}; known: {', '.join(_TASKS)}")
  return _TASKS[config.task](config, info)
