"""The pipeline runner: a stage that stops early (preemption, max_steps_per_run) stops the pipeline."""

import os

import pytest

from anticipax import distill_pipeline
from configs import demo_kd


def test_an_unfinished_stage_stops_the_pipeline(tmp_path, demo_data_dir):
  c = demo_kd.get_config()
  c.tfds_data_dir = demo_data_dir
  mlm = c.stages.mlm
  mlm.train.update(steps=4, max_steps_per_run=1, log_every=1, eval_every=0, checkpoint_every=4,
                   async_checkpointing=False)
  mlm.text.scratch.update(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)
  with pytest.raises(distill_pipeline.Unfinished, match=r"stage mlm stopped at step 1 of 4"):
    distill_pipeline.run(c, str(tmp_path))
  assert not os.path.exists(tmp_path / "teacher")  # the teacher never started from a half-trained MLM
