"""Tasks plug into the one trainer: `load_data(config)` then `get(config, splits)` (`base.Task`).

- anticipation: the AVT student (optionally distilling a text teacher).
- mlm: masked-LM domain pretraining of the text encoder on a corpus.
- teacher: fine-tuning the text teacher to predict the next action from the previous ones.
- next_step: next-step sentence anticipation on Tasty Videos (text teacher, visual student, CCD student).
"""

from anticipax.tasks.anticipation import AnticipationTask
from anticipax.tasks.mlm import MlmTask
from anticipax.tasks.next_step import NextStepTask
from anticipax.tasks.teacher import TeacherTask

_TASKS = {"anticipation": AnticipationTask, "mlm": MlmTask, "teacher": TeacherTask, "next_step": NextStepTask}


def _check(config):
  if config.task not in _TASKS:
    raise ValueError(f"config.task: unknown task {config.task!r}; known: {', '.join(_TASKS)}")
  return _TASKS[config.task]


def load_data(config):
  """The splits the task trains and evaluates on (`Task.load_data`: a task may read its own kind of data)."""
  return _check(config).load_data(config)


def get(config, splits):
  return _check(config)(config, splits)
