"""Synthetic kitchen: a small, generated action-anticipation dataset.

A demo and test stand-in for EGTEA Gaze+ / EPIC-Kitchens that needs no download. A
seeded world has verbs and nouns with English names, a fixed set of (verb, noun)
actions and a few recipe grammars. Each video realizes one recipe; each annotated action
after the first becomes one example: the features of the frames observed before it
(sampled as in AVT, see `windows.py`) and what happens next.

The task is built so that anticipation needs context. Recipes share "utility" actions
(take knife, open fridge, wash hands ...), so the last action alone does not determine the
next one; which recipe is being made does, and that shows in several past actions. Frame
features are noisy prototypes of the action in progress (a verb part plus a noun part), so
one frame is ambiguous but a window of frames is informative.

Beside the prepared data, `corpus.txt` holds many more recipes sampled from the same
grammars, written as text (`open <v> fridge <a> take <v> knife`) for language-model
teachers. Usage:

  builder = synthetic_kitchen.load(data_dir)
  train = builder.as_data_source("train")
  vocab = builder.info.metadata  # verbs, nouns, actions, action_names
  lines = synthetic_kitchen.corpus_path(builder).read_text().splitlines()

Everything is a deterministic function of the config (numpy generators seeded with
integer tuples, never Python's salted `hash`). Building needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from anticipax.data import windows

CORPUS_FILENAME = "corpus.txt"
VERB_SEP, ACTION_SEP = " <v> ", " <a> "
SPLITS = ("train", "validation")

# (name, phase, utility). Phase orders a recipe loosely (0 fetch, 1 prepare, 2 cook,
# 3 tidy up); utility actions are the ones recipes share. The first `num_verbs` are used.
VERBS = (
    ("take", 0, True), ("put", 3, True), ("open", 0, True), ("close", 3, True),
    ("wash", 0, True), ("cut", 1, False), ("peel", 1, False), ("pour", 2, False),
    ("mix", 2, False), ("stir", 2, False), ("turn on", 1, True), ("turn off", 3, True),
    ("crack", 1, False), ("spread", 2, False), ("fry", 2, False), ("boil", 2, False),
    ("season", 2, False), ("squeeze", 1, False), ("grate", 1, False), ("dry", 3, True),
    ("rinse", 0, True), ("slice", 1, False), ("whisk", 2, False), ("drain", 2, False),
)
# (name, category). The first `num_nouns` are used.
NOUNS = (
    ("knife", "tool"), ("cutting board", "tool"), ("tomato", "veg"), ("fridge", "storage"),
    ("pan", "cookware"), ("bowl", "dish"), ("onion", "veg"), ("egg", "egg"),
    ("water", "liquid"), ("faucet", "tap"), ("stove", "heat"), ("hands", "hands"),
    ("pot", "cookware"), ("plate", "dish"), ("bread", "bread"), ("cheese", "dairy"),
    ("oil", "liquid"), ("salt", "spice"), ("spoon", "tool"), ("garlic", "veg"),
    ("carrot", "veg"), ("pasta", "pasta"), ("drawer", "storage"), ("cupboard", "storage"),
    ("butter", "dairy"), ("lemon", "fruit"), ("milk", "liquid"), ("pepper", "spice"),
    ("spatula", "tool"), ("potato", "veg"), ("cucumber", "veg"), ("lettuce", "leaf"),
    ("cup", "dish"), ("oven", "heat"), ("strainer", "tool"), ("jar", "jar"),
)
# What each verb plausibly applies to: noun categories or noun names.
_COMPATIBLE = {
    "take": {"tool", "veg", "cookware", "dish", "egg", "bread", "dairy", "liquid", "spice",
             "pasta", "fruit", "leaf", "jar"},
    "put": {"tool", "veg", "cookware", "dish", "egg", "bread", "dairy", "spice", "pasta",
            "fruit", "leaf", "jar"},
    "open": {"storage", "jar", "oven"}, "close": {"storage", "jar", "oven"},
    "wash": {"tool", "veg", "cookware", "dish", "hands", "fruit", "leaf"},
    "cut": {"veg", "bread", "dairy", "fruit", "leaf"}, "peel": {"veg", "egg", "fruit"},
    "pour": {"liquid", "pasta"}, "mix": {"bowl", "pasta", "egg", "leaf"},
    "stir": {"cookware", "pasta", "bowl"}, "turn on": {"tap", "heat"},
    "turn off": {"tap", "heat"}, "crack": {"egg"}, "spread": {"butter", "cheese"},
    "fry": {"egg", "veg", "bread"}, "boil": {"water", "milk", "egg", "pasta", "potato", "carrot"},
    "season": {"cookware", "bowl", "veg", "pasta", "egg"}, "squeeze": {"lemon"},
    "grate": {"cheese", "carrot", "potato"}, "dry": {"hands", "dish", "cookware", "tool"},
    "rinse": {"veg", "leaf", "dish", "tool", "pasta"}, "slice": {"veg", "bread", "cheese", "fruit"},
    "whisk": {"egg", "milk"}, "drain": {"pasta", "pot"},
}
# Everyday actions always in the vocabulary (when their verb and noun are); the utility
# ones among them are shared by every recipe.
_STAPLES = (
    ("take", "knife"), ("wash", "hands"), ("open", "fridge"), ("close", "fridge"),
    ("take", "cutting board"), ("turn on", "faucet"), ("turn off", "faucet"),
    ("take", "plate"), ("put", "knife"), ("cut", "tomato"),
)


@dataclasses.dataclass(eq=False)
class SyntheticKitchenConfig(tfds.core.BuilderConfig):
  """Knobs of the generator; every field changes the generated data.

  Attributes:
    seed: root seed of every random stream.
    num_verbs: verbs used, the first ones of `VERBS`.
    num_nouns: nouns used, the first ones of `NOUNS`.
    num_actions: number of (verb, noun) actions, drawn from the plausible pairs.
    num_recipes: number of recipe grammars.
    min_recipe_steps: shortest recipe template.
    max_recipe_steps: longest recipe template.
    num_shared_actions: utility actions that every recipe draws from.
    num_recipe_nouns: nouns (ingredients, utensils) the other steps of a recipe act on.
    shared_step_prob: chance that a template step is a shared action.
    optional_prob: chance that a template step is optional (then skipped half the time).
    swap_prob: chance that a step may swap with the next (then swapped half the time).
    num_train_videos: videos in `train`.
    num_val_videos: videos in `validation`.
    num_corpus_recipes: lines of `corpus.txt`.
    feature_dim: size of a frame feature.
    noise_std: std of the per-dimension gaussian noise added to unit-variance prototypes.
    num_frames: observed frames per example.
    fps: sampling rate of the observed frames.
    tau_a: anticipation time in seconds.
    video_fps: frame rate the frame numbers refer to.
    action_seconds: (min, max) duration of an action.
    gap_seconds: (min, max) pause between actions.
    lead_in_seconds: (min, max) time before the first action.
  """

  seed: int = 0
  num_verbs: int = 20
  num_nouns: int = 30
  num_actions: int = 100
  num_recipes: int = 8
  min_recipe_steps: int = 10
  max_recipe_steps: int = 16
  num_shared_actions: int = 16
  num_recipe_nouns: int = 4
  shared_step_prob: float = 0.45
  optional_prob: float = 0.25
  swap_prob: float = 0.2
  num_train_videos: int = 320
  num_val_videos: int = 96
  num_corpus_recipes: int = 4000
  feature_dim: int = 32
  noise_std: float = 2.0
  num_frames: int = 8
  fps: float = 1.0
  tau_a: float = 1.0
  video_fps: float = 30.0
  action_seconds: tuple[float, float] = (2.0, 8.0)
  gap_seconds: tuple[float, float] = (0.5, 2.0)
  lead_in_seconds: tuple[float, float] = (1.0, 3.0)


# Independent random streams (the second seed word), so that e.g. asking for more videos
# never changes the world or the videos already there.
_ACTIONS, _RECIPES, _PROTOTYPES, _VIDEO, _FEATURES, _CORPUS = range(6)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A recipe grammar: a template of action ids with optional and swappable steps."""

  steps: tuple[int, ...]
  optional: tuple[bool, ...]
  swappable: tuple[bool, ...]  # Step i may swap places with step i + 1.

  def realize(self, rng: np.random.Generator) -> list[int]:
    """Samples one performance: adjacent swaps, then optional steps dropped."""
    steps, optional = list(self.steps), list(self.optional)
    i = 0
    while i < len(steps) - 1:
      if self.swappable[i] and rng.random() < 0.5:
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
        optional[i], optional[i + 1] = optional[i + 1], optional[i]
        i += 2  # A step moves at most one place.
      else:
        i += 1
    kept = [s for s, opt in zip(steps, optional) if not (opt and rng.random() < 0.5)]
    # Nobody does the same thing twice in a row: merge repeats that dropping created.
    return [s for j, s in enumerate(kept) if j == 0 or s != kept[j - 1]]


@dataclasses.dataclass(frozen=True)
class World:
  """The vocabulary, the recipes and the feature prototypes of one config."""

  verbs: tuple[str, ...]
  nouns: tuple[str, ...]
  actions: np.ndarray  # int32 [A, 2]: (verb id, noun id), sorted.
  recipes: tuple[Recipe, ...]
  prototypes: np.ndarray  # float32 [A + 1, D]; the last row is "no action".

  @property
  def action_names(self) -> list[str]:
    return [f"{self.verbs[v]} {self.nouns[n]}" for v, n in self.actions]

  def corpus_line(self, action_ids) -> str:
    """Writes a recipe as `verb <v> noun <a> verb <v> noun ...`."""
    return ACTION_SEP.join(
        f"{self.verbs[self.actions[a, 0]]}{VERB_SEP}{self.nouns[self.actions[a, 1]]}"
        for a in action_ids)


def _choose_actions(config: SyntheticKitchenConfig, rng: np.random.Generator) -> np.ndarray:
  """Draws `num_actions` plausible (verb, noun) pairs using every verb and noun."""
  if not (0 < config.num_verbs <= len(VERBS) and 0 < config.num_nouns <= len(NOUNS)):
    raise ValueError(f"num_verbs <= {len(VERBS)} and num_nouns <= {len(NOUNS)} required.")
  verbs, nouns = VERBS[:config.num_verbs], NOUNS[:config.num_nouns]
  plausible = np.array([(v, n) for v, (verb, *_) in enumerate(verbs)
                        for n, (noun, category) in enumerate(nouns)
                        if {category, noun} & _COMPATIBLE[verb]], np.int32)
  if len(plausible) < config.num_actions:
    raise ValueError(f"Only {len(plausible)} plausible actions for {config.num_verbs} verbs "
                     f"and {config.num_nouns} nouns; num_actions={config.num_actions}.")
  names = [(verbs[v][0], nouns[n][0]) for v, n in plausible]
  chosen = np.array([name in _STAPLES for name in names])
  # Then one action per verb and per noun (so each name occurs), then fill at random.
  for column, count in ((0, config.num_verbs), (1, config.num_nouns)):
    for i in range(count):
      candidates = np.flatnonzero(plausible[:, column] == i)
      if candidates.size and not chosen[candidates].any():
        chosen[rng.choice(candidates)] = True
  if chosen.sum() > config.num_actions:
    raise ValueError(f"num_actions={config.num_actions} cannot cover every verb and noun.")
  rest = rng.permutation(np.flatnonzero(~chosen))[:config.num_actions - chosen.sum()]
  chosen[rest] = True
  return plausible[chosen]  # Already sorted by (verb, noun).


def _make_recipes(config: SyntheticKitchenConfig, actions: np.ndarray,
                  rng: np.random.Generator) -> tuple[Recipe, ...]:
  """Recipe templates mixing shared utility actions with actions on the recipe's nouns."""
  phase = np.array([VERBS[v][1] for v in actions[:, 0]], np.float64)
  utility = np.array([VERBS[v][2] for v in actions[:, 0]])
  staple = np.array([(VERBS[v][0], NOUNS[n][0]) in _STAPLES for v, n in actions])
  num_shared = min(config.num_shared_actions, int(utility.sum()))
  shared = np.flatnonzero(utility & staple)[:num_shared]
  others = rng.permutation(np.flatnonzero(utility & ~staple))[:num_shared - shared.size]
  shared = np.concatenate([shared, others])
  specific = np.setdiff1d(np.arange(len(actions)), shared)
  nouns = np.unique(actions[specific, 1])
  times_used = np.zeros(config.num_nouns)
  recipes = []
  for _ in range(config.num_recipes):
    # A recipe is about a few ingredients / utensils; prefer nouns other recipes lack, so
    # that together the recipes use much of the vocabulary.
    weights = 1.0 / (1.0 + times_used[nouns]) ** 2
    ingredients = rng.choice(nouns, min(config.num_recipe_nouns, nouns.size), replace=False,
                             p=weights / weights.sum()) if nouns.size else nouns
    times_used[ingredients] += 1
    own = specific[np.isin(actions[specific, 1], ingredients)]
    if shared.size + own.size < 2:
      raise ValueError("Too few actions to write a recipe without repeating a step; raise "
                       "num_actions, num_shared_actions or num_recipe_nouns.")
    deck = []
    length = int(rng.integers(config.min_recipe_steps, config.max_recipe_steps + 1))
    steps = []
    while len(steps) < length:
      if shared.size and (not own.size or rng.random() < config.shared_step_prob):
        step = int(rng.choice(shared))
      else:
        deck = deck or rng.permutation(own).tolist()  # Each own action before any repeat.
        step = deck.pop()
      if not steps or steps[-1] != step:
        steps.append(step)
    # Loose kitchen order (fetch, prepare, cook, tidy up) with plenty of interleaving.
    order = np.argsort(phase[steps] + rng.uniform(0.0, 2.5, length), kind="stable")
    steps = [steps[i] for i in order]
    steps = [s for j, s in enumerate(steps) if j == 0 or s != steps[j - 1]]
    n = len(steps)
    recipes.append(Recipe(
        steps=tuple(steps),
        optional=tuple(bool(x) for x in rng.random(n) < config.optional_prob),
        swappable=tuple(bool(x) for x in rng.random(n) < config.swap_prob)))
  return tuple(recipes)


def make_world(config: SyntheticKitchenConfig) -> World:
  """The deterministic world (vocabulary, recipes, prototypes) of a config."""
  actions = _choose_actions(config, np.random.default_rng([config.seed, _ACTIONS]))
  recipes = _make_recipes(config, actions, np.random.default_rng([config.seed, _RECIPES]))
  rng = np.random.default_rng([config.seed, _PROTOTYPES])
  d = config.feature_dim
  verb_part = rng.standard_normal((config.num_verbs, d))
  noun_part = rng.standard_normal((config.num_nouns, d))
  # Unit variance per dimension, half from the verb and half from the noun, so that
  # actions sharing a verb (or noun) lie closer together.
  action_protos = (verb_part[actions[:, 0]] + noun_part[actions[:, 1]]) / np.sqrt(2.0)
  background = rng.standard_normal((1, d))
  return World(
      verbs=tuple(name for name, *_ in VERBS[:config.num_verbs]),
      nouns=tuple(name for name, _ in NOUNS[:config.num_nouns]),
      actions=actions,
      recipes=recipes,
      prototypes=np.concatenate([action_protos, background]).astype(np.float32))


def make_video(world: World, config: SyntheticKitchenConfig, split: str, index: int):
  """One video: a realized recipe laid out on the frame axis.

  Returns:
    `(recipe, actions, starts, ends)`: the recipe index, and int32 `[K]` action ids with
    their 1-based inclusive first and last frames.
  """
  rng = np.random.default_rng([config.seed, _VIDEO, SPLITS.index(split), index])
  recipe = int(rng.integers(len(world.recipes)))
  actions = world.recipes[recipe].realize(rng)
  k, fps = len(actions), config.video_fps
  durations = np.maximum(1, np.round(rng.uniform(*config.action_seconds, k) * fps))
  pauses = np.round(rng.uniform(*config.gap_seconds, k) * fps)
  pauses[0] = np.round(rng.uniform(*config.lead_in_seconds) * fps)
  # pauses[j] precedes action j (pauses[0] is the lead-in), so action j starts after
  # pauses[:j + 1] and durations[:j].
  starts = 1 + np.cumsum(pauses) + np.concatenate([[0], np.cumsum(durations)[:-1]])
  ends = starts + durations - 1
  return recipe, np.array(actions, np.int32), starts.astype(np.int32), ends.astype(np.int32)


def frame_features(world: World, config: SyntheticKitchenConfig, split: str, video: int,
                   frames: np.ndarray, in_progress: np.ndarray) -> np.ndarray:
  """float32 `[F, D]` features: prototype of the action in progress plus noise.

  The noise of a frame depends only on (seed, split, video, frame), so overlapping windows
  of one video see the same features for the same frame.
  """
  noise = np.stack([
      np.random.default_rng(
          [config.seed, _FEATURES, SPLITS.index(split), video, int(f)]
      ).standard_normal(config.feature_dim) for f in frames])
  # in_progress == -1 (no action) picks the last prototype row, the background.
  return (world.prototypes[in_progress] + config.noise_std * noise).astype(np.float32)


class SyntheticKitchen(tfds.core.GeneratorBasedBuilder):
  """Generated kitchen videos for next-action anticipation (no download)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [SyntheticKitchenConfig(name="default")]
  # Nothing to download, so no checksums file to look up. Looking it up makes TFDS 4.9.10
  # import `importlib_resources`, which it does not declare on Python >= 3.9
  # (tensorflow/datasets#11212).
  url_infos = None

  @functools.cached_property
  def world(self) -> World:
    return make_world(self.builder_config)

  def _info(self) -> tfds.core.DatasetInfo:
    c, world = self.builder_config, self.world
    return self.dataset_info_from_configs(
        description=__doc__.split("\n\n")[0],
        features=tfds.features.FeaturesDict({
            "uid": tfds.features.Text(),
            "video": tfds.features.Text(),
            "start_frame": tfds.features.Scalar(np.int32),
            "features": tfds.features.Tensor(shape=(c.num_frames, c.feature_dim),
                                             dtype=np.float32),
            "past_actions": tfds.features.Tensor(shape=(c.num_frames,), dtype=np.int32),
            "action": tfds.features.Scalar(np.int32),
            "verb": tfds.features.Scalar(np.int32),
            "noun": tfds.features.Scalar(np.int32),
            "history": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        }),
        # Plain JSON types, so a builder that reloads `metadata.json` sees equal values.
        metadata=tfds.core.MetadataDict(
            verbs=list(world.verbs),
            nouns=list(world.nouns),
            actions=world.actions.tolist(),
            action_names=world.action_names),
        # Examples stay in video order; readers shuffle.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    # During generation `data_dir` is TFDS's temporary directory, renamed to the final
    # version directory only once every split is written, so the corpus never appears
    # half-written (or without its dataset) in the final directory.
    self._write_corpus(epath.Path(self.data_dir) / CORPUS_FILENAME)
    return {split: self._generate_examples(split) for split in SPLITS}

  def _write_corpus(self, path: epath.Path) -> None:
    c, world = self.builder_config, self.world
    rng = np.random.default_rng([c.seed, _CORPUS])
    lines = []
    for _ in range(c.num_corpus_recipes):
      recipe = world.recipes[int(rng.integers(len(world.recipes)))]
      lines.append(world.corpus_line(recipe.realize(rng)))
    path.write_text("\n".join(lines) + "\n")

  def _generate_examples(self, split: str):
    c, world = self.builder_config, self.world
    num_videos = c.num_train_videos if split == "train" else c.num_val_videos
    for v in range(num_videos):
      _, actions, starts, ends = make_video(world, c, split, v)
      video = f"{split}_{v:05d}"
      for k in range(1, len(actions)):
        frames, _ = windows.observed_frames(
            int(starts[k]), num_frames=c.num_frames, fps=c.fps, tau_a=c.tau_a,
            video_fps=c.video_fps)
        in_progress = windows.actions_in_progress(frames, starts, ends, actions)
        uid = f"{video}_{k:03d}"
        yield uid, {
            "uid": uid,
            "video": video,
            "start_frame": int(starts[k]),
            "features": frame_features(world, c, split, v, frames, in_progress),
            "past_actions": in_progress,
            "action": int(actions[k]),
            "verb": int(world.actions[actions[k], 0]),
            "noun": int(world.actions[actions[k], 1]),
            "history": actions[:k],
        }


def corpus_path(builder: SyntheticKitchen) -> epath.Path:
  """Path of the prepared dataset's recipe corpus, one recipe per line."""
  return epath.Path(builder.data_dir) / CORPUS_FILENAME


def load(data_dir: str | None, config_name: str = "default") -> SyntheticKitchen:
  """Prepares the dataset under `data_dir` if needed and returns its builder.

  Args:
    data_dir: TFDS data directory; None uses TFDS's default (`~/tensorflow_datasets`).
    config_name: one of `SyntheticKitchen.BUILDER_CONFIGS` by name.

  Returns:
    The prepared builder; read splits with `builder.as_data_source(split)`.
  """
  builder = SyntheticKitchen(data_dir=data_dir, config=config_name,
                             file_format="array_record")
  builder.download_and_prepare()
  return builder
