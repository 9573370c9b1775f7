"""Training throughput of the hardware-exact integer mode as a ratio to the float SSS model.

    python bench/exact_speed.py [--batches 30] [--hidden 32 --input-side 8] [--hidden 100 --input-side 28]

Both learners train on the same MNIST batches in the same process (one torch thread), step by step
in turn, so a load change on shared cores hits both alike; the figure is samples/s exact / samples/s
float, INT8 weights. Times are this thread's CPU time by default (``--clock cpu``: preemption by
other jobs does not count), elapsed time with ``--clock wall``. (Until issue 21's last round this
bench ran the float learner's batches, then the exact learner's, on the wall clock: on loaded shared
cores that ratio moved by +-0.1 from run to run.)
Goal (issue 21): at least 0.5 on both nets. ``bench/golden_speed.py`` measures the same ratios
interleaved over several repeats (median), next to the float SSS / HHH ratio, in one table.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bshw.golden.config import TrainConfig  # noqa: E402
from bshw.golden.data import load_dataset  # noqa: E402
from bshw.golden.model import make_learner  # noqa: E402

NETS = {"64-32-10": dict(hidden=(32,), input_side=8), "784-100-10": dict(hidden=(100,), input_side=28)}


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def samples_per_s(cfgs, x, t, batch, clock=time.thread_time):
    """Samples/s of a learner per config, trained in turn step by step (after one warm-up batch)."""
    learners = [make_learner(cfg) for cfg in cfgs]
    for learner in learners:
        learner.train_batch(x[:batch], t[:batch])  # warm-up (first-call allocations, cached tables)
    secs = [0.0] * len(learners)
    for i in range(batch, len(x), batch):
        for j, learner in enumerate(learners):
            t0 = clock()
            learner.train_batch(x[i:i + batch], t[i:i + batch])
            secs[j] += clock() - t0
    return [(len(x) - batch) / s for s in secs]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu",
                   help="cpu: this thread's CPU time (default; steady on shared, loaded cores), wall: elapsed")
    p.add_argument("--data")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_dataset("mnist", args.data)
    n = (args.batches + 1) * 100
    x, t = data.train_x[:n], data.train_y[:n]
    print("| net | float SSS samples/s | exact samples/s | exact / float |")
    print("|---|---:|---:|---:|")
    for name, kw in NETS.items():
        fl, ex = samples_per_s([TrainConfig(algo="SSS", weights="int8", **kw),
                                TrainConfig(mode="exact", weights="int8", **kw)], x, t, 100, CLOCKS[args.clock])
        print(f"| {name} | {fl:.0f} | {ex:.0f} | {ex / fl:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
