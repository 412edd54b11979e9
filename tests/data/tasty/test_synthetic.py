"""The synthetic Tasty collection: real format, round trip through the builder, determinism, task."""

import collections
import math
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from anticipax.data.tasty import builder
from anticipax.data.tasty import features as feature_files
from anticipax.data.tasty import reader
from anticipax.data.tasty import synthetic
from anticipax.data.tasty import text

tfds.disable_progress_bar()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  """The default-size collection (600 recipes, D 64) and its split_4022 build."""
  tmp = tmp_path_factory.mktemp("tasty_synthetic")
  info = synthetic.write_synthetic_tasty(tmp / "manual", seed=0)
  b = builder.load(data_dir=str(tmp / "tfds"), manual_dir=str(info.root),
                   config=builder.make_config(features=synthetic.FEATURES_PATTERN))
  return info, b, str(tmp / "tfds")


def _examples(b, split):
  source = b.as_data_source(split)
  return [source[i] for i in range(len(source))]


def test_files_are_in_the_real_format(demo):
  info, _, _ = demo
  root = info.root
  assert {k: len(v) for k, v in info.quirks.items()} == {
      "decoded_xml": 60, "alignment_too_long": 24, "alignment_too_short": 24,
      "no_alignment_file": 12, "no_aligned_steps": 12}
  decoded, encoded = (root / reader.RECIPES_DIR / info.quirks["decoded_xml"][0],
                      root / reader.RECIPES_DIR / info.recipes[0])
  assert (decoded / "recipe.xml").exists() and not (decoded / "recipe_encoded.xml").exists()
  assert (encoded / "recipe_encoded.xml").exists() and not (encoded / "recipe.xml").exists()
  assert sorted(os.listdir(root / "SPLITS/split_2511")) == [
      "testing_set.txt", "training_set.txt", "validation_set.txt"]
  assert sorted(os.listdir(root / "SPLITS/split_4022")) == [
      "TEST_4022.txt", "TRAIN_4022.txt", "VAL_4022.txt"]
  assert (root / "ALL_RECIPES.txt").read_text().split() == sorted(info.recipes)
  words = reader.read_id2word(root / "id2word_tasty.txt")
  assert all(w and len(w.split()) == 1 for w in words.values()) and len(set(words.values())) == len(words)


def test_round_trip_counts_and_shapes(demo):
  info, b, _ = demo
  meta = b.info.metadata
  listed = info.splits["split_4022"]
  skipped = set(info.quirks["no_alignment_file"]) | set(info.quirks["no_aligned_steps"])
  for split, names in listed.items():
    kept = [n for n in names if n not in skipped]
    assert [e["recipe"].decode() for e in _examples(b, split)] == kept, split
    assert meta["counts"][f"recipes_{split}"] == len(kept)
  counts = meta["counts"]
  assert counts["skipped_no_alignment_file"] == 12 and counts["skipped_no_aligned_steps"] == 12
  assert counts["alignment_too_long"] == 24 and counts["alignment_too_short"] == 24
  assert 0.05 < counts["steps_without_video"] / counts["steps"] < 0.25
  assert counts["truncated_recipes"] == 0
  assert (meta["feature_dim"], meta["max_steps"], meta["frames_per_step"]) == (64, 16, 8)
  ex = _examples(b, "train")[0]
  assert ex["step_features"].shape == (16, 8, 64) and ex["frame_mask"].shape == (16, 8)
  num_steps = [int(e["num_steps"]) for e in _examples(b, "train")]
  assert min(num_steps) >= 6 and max(num_steps) <= 12
  assert len(builder.vocab(b)) < 200


def test_texts_and_features_survive_the_round_trip(demo):
  # Encoded and decoded recipes read back as the generator's sentences, normalized; the stored
  # frames are rows of the written .npy files.
  info, b, _ = demo
  index = {name: i for i, name in enumerate(info.recipes)}
  decoded = set(info.quirks["decoded_xml"])
  seen = collections.Counter()
  for ex in _examples(b, "validation"):
    name = ex["recipe"].decode()
    _, _, ingredients, steps = synthetic.make_recipe(index[name], seed=0)
    n = int(ex["num_steps"])
    assert [s.decode() for s in ex["steps"][:n]] == [text.normalize(s.sentence) for s in steps]
    assert ex["ingredients"].decode() == ", ".join(
        text.normalize(reader.ingredient_name(x)) for x in ingredients)
    seen[name in decoded] += 1
    rows = np.load(feature_files.features_path(synthetic.FEATURES_PATTERN, info.root, name))
    spans = reader.read_alignment(info.root / reader.RECIPES_DIR / name / reader.ALIGNMENT)
    for i, span in enumerate(spans[:n]):
      if span is not None:
        picked, mask = builder.sample_rows(*reader.step_rows(span, 5), 8)
        np.testing.assert_array_equal(ex["step_features"][i], rows[picked] * mask[:, None])
  assert seen[True] >= 1 and seen[False] >= 1


def test_split_2511_layout_builds(demo):
  info, _, data_dir = demo
  b = builder.load(data_dir=data_dir, manual_dir=str(info.root), config=builder.make_config(
      split="split_2511", features=synthetic.FEATURES_PATTERN))
  assert b.info.metadata["split_files"] == {
      "train": "training_set.txt", "validation": "validation_set.txt", "test": "testing_set.txt"}
  total = sum(b.info.splits[s].num_examples for s in b.info.splits)
  assert 360 < total < 400  # Two thirds of 600, minus the skipped ones among them.


def _tree(root):
  return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
          for d, _, files in os.walk(root) for f in files}


def test_deterministic_for_a_seed(tmp_path):
  a = _tree(synthetic.write_synthetic_tasty(tmp_path / "a", num_recipes=30, feature_dim=8,
                                            seed=5).root)
  b = _tree(synthetic.write_synthetic_tasty(tmp_path / "b", num_recipes=30, feature_dim=8,
                                            seed=5).root)
  c = _tree(synthetic.write_synthetic_tasty(tmp_path / "c", num_recipes=30, feature_dim=8,
                                            seed=6).root)
  assert a == b
  assert a != c
  # More recipes never change the first ones (but for word ids: the dictionary grows).
  d = _tree(synthetic.write_synthetic_tasty(tmp_path / "d", num_recipes=40, feature_dim=8,
                                            seed=5).root)
  first = [k for k in a if k.startswith(("features", reader.RECIPES_DIR)) and "encoded" not in k]
  assert first and all(d[k] == a[k] for k in first)


def _entropy(pairs):
  """Conditional entropy H(next | context) in bits from (context, next) pairs."""
  by_context = collections.defaultdict(collections.Counter)
  for context, nxt in pairs:
    by_context[context][nxt] += 1
  total = len(pairs)
  return -sum(n / total * math.log2(n / sum(c.values()))
              for c in by_context.values() for n in c.values())


def test_next_step_depends_on_more_than_the_previous_one():
  # What a text teacher can use: the previous sentence alone leaves the next one open (shared
  # steps like "heat the oil in a pan"); with the dish and the ingredients named so far it is
  # nearly fixed (only optional steps and swaps remain).
  prev_only, with_context = [], []
  for i in range(600):
    _, dish, _, steps = synthetic.make_recipe(i, seed=0)
    sentences = [s.sentence for s in steps]
    for k in range(1, len(sentences)):
      named = frozenset(w for s in sentences[:k] for w in s.lower().strip(".").split())
      prev_only.append((sentences[k - 1], sentences[k]))
      with_context.append(((sentences[k - 1], dish, named), sentences[k]))
  assert _entropy(prev_only) > 1.0
  assert _entropy(with_context) < 0.5 * _entropy(prev_only)


def test_vision_shows_the_verb_but_not_which_ingredient(demo):
  # Nearest-centroid on the mean of a step's frames, fitted on train, scored on test: the verb
  # is clear, the exact main object (e.g. which vegetable) is often not.
  info, b, _ = demo
  index = {name: i for i, name in enumerate(info.recipes)}

  def steps(split):
    x, labels = [], []
    for ex in _examples(b, split):
      _, _, _, truth = synthetic.make_recipe(index[ex["recipe"].decode()], seed=0)
      for i in np.flatnonzero(ex["has_video"]):
        mask = ex["frame_mask"][i].astype(bool)
        x.append(ex["step_features"][i][mask].mean(0))
        labels.append((truth[i].verb, truth[i].obj))
    return np.array(x), labels

  x_train, y_train = steps("train")
  x_test, y_test = steps("test")
  classes = sorted(set(y_train))
  centroids = np.stack([x_train[[y == c for y in y_train]].mean(0) for c in classes])
  predicted = [classes[j] for j in ((x_test[:, None] - centroids) ** 2).sum(-1).argmin(1)]
  verb = np.mean([p[0] == y[0] for p, y in zip(predicted, y_test)])
  exact = np.mean([p == y for p, y in zip(predicted, y_test)])
  assert verb > 0.95
  assert 1 / len(classes) < exact < 0.8


def test_load_demo_writes_once_and_builds(tmp_path):
  b = synthetic.load_demo(str(tmp_path), num_recipes=40, feature_dim=8, seed=1, max_steps=4)
  manual = tmp_path / "tasty_synthetic_v2_n40_d8_s1/manual"
  assert sorted(os.listdir(tmp_path / "tasty_synthetic_v2_n40_d8_s1")) == ["manual", "tfds"]
  assert b.info.metadata["feature_dim"] == 8 and b.info.metadata["max_steps"] == 4
  assert sum(b.info.splits[s].num_examples for s in b.info.splits) == 40 - 2  # 2 skipped on purpose.
  stamp = (manual / "ALL_RECIPES.txt").stat().st_mtime_ns
  again = synthetic.load_demo(str(tmp_path), num_recipes=40, feature_dim=8, seed=1, max_steps=4)
  assert again.is_prepared() and (manual / "ALL_RECIPES.txt").stat().st_mtime_ns == stamp
