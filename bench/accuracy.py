"""Accuracy table of the FC net on MNIST (paper Fig. 3f and Fig. 5d) and the BS-vs-HP step cost.

    python bench/accuracy.py --epochs 10            # the full table (~15 min on 2 cores)
    python bench/accuracy.py --epochs 1 --only HHH,SSS

Trains, in one run and with one seed, HHH and SSS (tie rules zero / plus / random) with FP32
weights, and SSS with INT8, INT4, ternary and memristor weights; prints the test error of the
three inference methods (HP, deterministic binary, stochastic majority vote of 10 and of 100
repetitions). Then times SSS training steps against a plain torch-autograd HHH implementation of
the same net in the same process, and prints the ratio. Same seed, same numbers.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bshw.golden.config import TrainConfig  # noqa: E402
from bshw.golden.data import load_dataset  # noqa: E402
from bshw.golden.model import FloatLearner  # noqa: E402
from bshw.golden.train import fit  # noqa: E402
from bshw.io import atomic_write_json  # noqa: E402

# name -> TrainConfig overrides (weight ranges: the per-width defaults of docs/algorithm.md).
RUNS = {
    "HHH": dict(algo="HHH"),
    "SSS": dict(algo="SSS"),
    "SSS tie=plus": dict(algo="SSS", tie="plus"),
    "SSS tie=random": dict(algo="SSS", tie="random"),
    "SSS INT8": dict(algo="SSS", weights="int8"),
    "SSS INT4": dict(algo="SSS", weights="int4"),
    "SSS ternary": dict(algo="SSS", weights="ternary"),
    "SSS memristor": dict(algo="SSS", weights="memristor"),
}


class PlainHHH(torch.nn.Module):
    """The same FC net as ordinary torch code: Linear (no bias) -> sigmoid(a y), softmax CE, SGD."""

    def __init__(self, sizes, a):
        super().__init__()
        self.a = a
        self.fcs = torch.nn.ModuleList(torch.nn.Linear(i, o, bias=False) for i, o in zip(sizes, sizes[1:]))

    def forward(self, x):
        for fc in self.fcs[:-1]:
            x = torch.sigmoid(self.a * fc(x))
        return self.fcs[-1](x)


def throughput(data, batches=150, batch=100):
    """Samples/s of SSS (this model) and of plain-autograd HHH on the same batches, same process."""
    x, t = data.train_x[: batches * batch], data.train_y[: batches * batch]
    res = {}
    for name in ("SSS", "HHH"):
        learner = FloatLearner(TrainConfig(algo=name))
        learner.train_batch(x[:batch], t[:batch])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, len(x), batch):
            learner.train_batch(x[i:i + batch], t[i:i + batch])
        res[f"golden {name}"] = len(x) / (time.perf_counter() - t0)
    net = PlainHHH([784, 500, 200, 10], 4.0)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    xf = x.flatten(1).float() / 255
    loss_fn = torch.nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        opt.zero_grad()
        loss_fn(net(xf[i:i + batch]), t[i:i + batch]).backward()
        opt.step()
    res["plain autograd HHH"] = len(x) / (time.perf_counter() - t0)
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", help="MNIST directory (default: the usual search)")
    p.add_argument("--only", help="comma-separated run names, e.g. HHH,SSS")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady timings on shared cores)")
    p.add_argument("--json", default="runs/bench-accuracy.json", help="where to write the figures")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist", args.data)
    print(f"data: {data.source} ({len(data.train_x)} train, {len(data.test_x)} test); "
          f"epochs {args.epochs}, seed {args.seed}", flush=True)
    names = args.only.split(",") if args.only else list(RUNS)
    rows, t_all = {}, time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        cfg = TrainConfig(epochs=args.epochs, seed=args.seed, votes=10, device=args.device, **RUNS[name])
        m = fit(cfg, progress=False, data=data, final_votes=100)
        e = m["epochs"][-1]
        rows[name] = {"hp": e["test_error"]["hp"], "binary": e["test_error"]["binary"],
                      "vote10": e["vote_curve"]["10"], "vote100": e["vote_curve"]["100"],
                      "minutes": (time.perf_counter() - t0) / 60}
        r = rows[name]
        print(f"  {name:<16} HP {100 * r['hp']:5.2f}%  binary {100 * r['binary']:5.2f}%  "
              f"vote10 {100 * r['vote10']:5.2f}%  vote100 {100 * r['vote100']:5.2f}%  "
              f"({r['minutes']:.1f} min)", flush=True)
    print(f"\nTest error (%) after {args.epochs} epochs, FC 784-500-200-10, batch 100, lr 0.1, a = 4, "
          f"seed {args.seed}")
    print(f"| {'run':<16} | HP inference | binary | stochastic x10 | stochastic x100 |")
    print(f"|{'-' * 18}|-------------:|-------:|---------------:|----------------:|")
    for name, r in rows.items():
        print(f"| {name:<16} | {100 * r['hp']:12.2f} | {100 * r['binary']:6.2f} | {100 * r['vote10']:14.2f} | "
              f"{100 * r['vote100']:15.2f} |")
    wall = (time.perf_counter() - t_all) / 60
    print(f"wall time: {wall:.1f} min")
    tp = throughput(data)
    ratio = tp["golden SSS"] / tp["plain autograd HHH"]
    print("\nTraining throughput (samples/s, same run): " + ", ".join(f"{k} {v:.0f}" for k, v in tp.items()))
    print(f"ratio SSS / plain-autograd HHH = {ratio:.2f} (goal >= 1: the BS step costs no more than the HP step)")
    if args.json:
        atomic_write_json(args.json, {"epochs": args.epochs, "seed": args.seed, "errors": rows,
                                      "throughput": tp, "ratio_sss_over_autograd_hhh": ratio,
                                      "wall_minutes": wall})
    return 0


if __name__ == "__main__":
    sys.exit(main())
