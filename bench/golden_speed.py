"""Training-step speed of the golden models, as ratios measured in one process (issue 21).

    python bench/golden_speed.py [--repeats 7] [--batches 10] [--data DIR]

One torch thread, batch 100, the same MNIST batches for every learner. Each learner warms up on one
batch, then every repeat times ``--batches`` training steps of each learner, round robin step by step
(so a load change on shared cores hits all of them alike); a ratio is the median over repeats of
(time per step of the reference) / (time per step of the learner), i.e. a speed ratio (> 1: faster).

Times are this thread's CPU time by default (``--clock cpu``): with one torch thread every op runs
on it, and preemption by other jobs on shared cores does not count; ``--clock wall`` for elapsed.

Rows:
  float SSS / HHH     784-500-200-10, fp32 weights: the float BS model (``bshw train --mode float``)
                      against a plain-autograd HP step of the same net (Linear + sigmoid + summed
                      cross-entropy, loss.backward(), SGD step); goal >= 1.0. The model's own HHH
                      (``algo="HHH"``) is shown beside it for reference.
  exact / float SSS   64-32-10 (8x8 inputs) and 784-100-10, INT8: the hardware-exact integer mode
                      against the float SSS model with INT8 periodic-carry weights; goal >= 0.5.
Benchmarks only print; nothing here is a test.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bshw.golden.config import TrainConfig  # noqa: E402
from bshw.golden.data import load_dataset  # noqa: E402
from bshw.golden.inputs import downsample, to_unit  # noqa: E402
from bshw.golden.model import init_weight, make_learner  # noqa: E402

BATCH = 100


class PlainHHH:
    """High-precision FC training with stock autograd (the reference of the float SSS goal)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        gen = torch.Generator().manual_seed(cfg.seed)
        sizes = [cfg.input_side ** 2, *cfg.hidden, 10]
        self.w = [init_weight(dict(kind="fc", fan_in=i, fan_out=o), gen, cfg.init_gain).requires_grad_()
                  for i, o in zip(sizes, sizes[1:])]

    def train_batch(self, x, t):
        h = to_unit(downsample(x, self.cfg.input_side).flatten(1))
        for w in self.w[:-1]:
            h = torch.sigmoid(self.cfg.a * F.linear(h, w))
        loss = F.cross_entropy(F.linear(h, self.w[-1]), t, reduction="sum")
        loss.backward()
        with torch.no_grad():
            for w in self.w:
                w.sub_(w.grad, alpha=self.cfg.learning_rate / len(t))
                w.grad = None
        return loss.item() / len(t)


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def step_times(learners: dict, x, t, batches: int, repeats: int, clock=time.thread_time) -> dict:
    """Seconds per training step of each learner, one list entry per repeat (interleaved)."""
    for L in learners.values():  # warm-up (first-call allocations, cached tables)
        L.train_batch(x[:BATCH], t[:BATCH])
    out = {k: [] for k in learners}
    for _ in range(repeats):
        tot = dict.fromkeys(learners, 0.0)
        for i in range(1, batches + 1):  # round robin per step: a load change hits every learner
            for k, L in learners.items():
                t0 = clock()
                L.train_batch(x[i * BATCH:(i + 1) * BATCH], t[i * BATCH:(i + 1) * BATCH])
                tot[k] += clock() - t0
        for k in learners:
            out[k].append(tot[k] / batches)
    return out


def ratio(times: dict, ref: str, new: str) -> float:
    return statistics.median(r / n for r, n in zip(times[ref], times[new]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--batches", type=int, default=10, help="timed steps per learner per repeat")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: this thread's CPU time (default; steady on shared, loaded cores), wall: elapsed")
    p.add_argument("--data")
    args = p.parse_args(argv)
    clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    data = load_dataset("mnist", args.data)
    n = (args.batches + 1) * BATCH
    x, t = data.train_x[:n], data.train_y[:n]

    big = dict(hidden=(500, 200), input_side=28)
    tf = step_times({"plain HHH": PlainHHH(TrainConfig(algo="HHH", **big)),
                     "model HHH": make_learner(TrainConfig(algo="HHH", **big)),
                     "float SSS": make_learner(TrainConfig(algo="SSS", **big))}, x, t, args.batches, args.repeats, clock)
    rows = [("float SSS / plain-autograd HHH", "784-500-200-10", tf, "plain HHH", "float SSS", 1.0),
            ("float SSS / model HHH (reference)", "784-500-200-10", tf, "model HHH", "float SSS", None)]
    for name, kw in (("64-32-10", dict(hidden=(32,), input_side=8)), ("784-100-10", dict(hidden=(100,), input_side=28))):
        te = step_times({"float SSS": make_learner(TrainConfig(algo="SSS", weights="int8", **kw)),
                         "exact": make_learner(TrainConfig(mode="exact", weights="int8", **kw))},
                        x, t, args.batches, args.repeats, clock)
        rows.append(("exact / float SSS (INT8)", name, te, "float SSS", "exact", 0.5))

    print(f"torch {torch.__version__}, 1 thread, batch {BATCH}, {args.batches} steps x {args.repeats} repeats, "
          f"{args.clock} clock, median of per-repeat ratios")
    print("| ratio (speed) | net | reference ms/step | measured ms/step | ratio | goal | met |")
    print("|---|---|---:|---:|---:|---:|---|")
    for label, net, times, ref, new, goal in rows:
        r = ratio(times, ref, new)
        ms_ref, ms_new = 1e3 * statistics.median(times[ref]), 1e3 * statistics.median(times[new])
        g = "-" if goal is None else f">= {goal:.1f}"
        met = "-" if goal is None else ("yes" if r >= goal else "NO")
        print(f"| {label} | {net} | {ms_ref:.2f} ({ref}) | {ms_new:.2f} ({new}) | {r:.2f} | {g} | {met} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
