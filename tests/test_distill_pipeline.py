"""The pipeline runner: a stage that stops early (preemption, max_steps_per_run) stops the pipeline."""

import os

import pytest

from anticipax import distill_pipeline
from configs import demo_kd


@pytest.mark.slow  # an MLM run; the fast tier reaches the pipeline through test_corpus_pretraining's wiring test
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


def _arms_only(demo_data_dir, seeds, parallel, **train):
  """demo_kd's baseline arm alone, tiny, `seeds` runs `parallel` at a time."""
  c = demo_kd.get_config()
  c.tfds_data_dir = demo_data_dir
  c.update(order=["baseline"], arms=["baseline"], seeds=seeds, parallel=parallel)
  b = c.stages.baseline
  b.model.backbone.dim = 16
  b.model.head.update(inter_dim=32, num_heads=2, num_layers=1)
  b.train.update(**{"steps": 2, "log_every": 1, "eval_every": 0, "checkpoint_every": 2,
                    "async_checkpointing": False, **train})
  b.eval.batch_size = 512
  return c


@pytest.mark.slow  # worker processes start JAX afresh
def test_parallel_arm_runs_give_what_they_give_one_after_another(tmp_path, demo_data_dir):
  together = distill_pipeline.run(_arms_only(demo_data_dir, 2, 2), str(tmp_path / "together"))
  alone = distill_pipeline.run(_arms_only(demo_data_dir, 2, 1), str(tmp_path / "alone"))
  assert [r["step"] for r in together["baseline"]] == [2, 2]
  assert together == alone  # seed by seed, every metric
  assert together["baseline"][0] != together["baseline"][1]  # the seeds differ
  with pytest.raises(distill_pipeline.Unfinished, match=r"stage baseline stopped at step 1 of 2"):
    distill_pipeline.run(_arms_only(demo_data_dir, 2, 2, max_steps_per_run=1), str(tmp_path / "stopped"))
  with pytest.raises(ValueError, match="config key parallel: -1"):
    distill_pipeline.run(_arms_only(demo_data_dir, 1, -1), str(tmp_path / "bad"))
