"""Tasks plug into the one trainer: `load_data(config)` then `get(config, splits)` (`base.Task`).

`config.task` names the job; its module is imported when a config asks for it (as big_vision imports a
config's model by name), so the trainer below the two methods imports neither:
- anticipation: the AVT student, optionally distilling a text teacher (method 1, `next_action/task.py`);
- teacher: the text teacher predicting the next action from the previous ones (`next_action/teacher.py`);
- mlm: masked-LM domain pretraining of a text encoder on a corpus (`tasks/mlm.py`, either method);
- next_step: next-step sentences on Tasty Videos: text teacher, visual and CCD students (method 2,
  `next_step/task.py`).
"""

import importlib

_TASKS = {"anticipation": ("anticipax.next_action.task", "AnticipationTask"),
          "teacher": ("anticipax.next_action.teacher", "TeacherTask"),
          "mlm": ("anticipax.tasks.mlm", "MlmTask"),
          "next_step": ("anticipax.next_step.task", "NextStepTask")}


def task_class(config):
  """The `base.Task` subclass that `config.task` names."""
  if config.task not in _TASKS:
    raise ValueError(f"config.task: unknown task {config.task!r}; known: {', '.join(_TASKS)}")
  module, name = _TASKS[config.task]
  return getattr(importlib.import_module(module), name)


def load_data(config):
  """The splits the task trains and evaluates on (`Task.load_data`: a task may read its own kind of data)."""
  return task_class(config).load_data(config)


def get(config, splits):
  return task_class(config)(config, splits)
