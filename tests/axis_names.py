"""One check for every model's parameters: each sits in a logical-axis box whose names have a sharding rule."""

import flax.linen as nn
import jax

from configs import common


def assert_every_parameter_has_ruled_axis_names(params, extra_names=()):
  """`params` (boxed, e.g. from `jax.eval_shape(model.init, ...)`): every leaf is an `nn.Partitioned` with one
  name per dimension, each named in `common.base_config().logical_axis_rules` or in `extra_names`."""
  boxes = jax.tree_util.tree_flatten_with_path(params, is_leaf=lambda x: isinstance(x, nn.Partitioned))[0]
  ruled = {name for name, _ in common.base_config().logical_axis_rules} | set(extra_names)
  assert len(boxes) == len(jax.tree.leaves(params))  # every leaf sits in a box
  for path, box in boxes:
    where = jax.tree_util.keystr(path)
    assert isinstance(box, nn.Partitioned), f"{where} has no logical axis names"
    assert len(box.names) == box.value.ndim, where
    assert set(box.names) <= ruled, f"{where}: {box.names} has a name without a rule in logical_axis_rules"
