"""Golden traces for the RTL benches: ``bshw trace`` (docs/arithmetic.md §11).

A JSON-lines file: a header line, then one line per training step (batch) with every sampled bit,
noise sum, error and counter of that step. Written atomically.
"""

import json

import torch

from golden.config import TrainConfig
from golden.errors import BshwError
from golden.io import atomic_write_text

FORMAT, VERSION = "bshw-exact-trace", 1


def _l(v):
    return None if v is None else v.tolist()


def header(learner, seed: int) -> dict:
    """Line 1: format, version, config, resolved parameters, layers, initial state."""
    return {"format": FORMAT, "version": VERSION, "seed": seed, "config": learner.cfg.to_dict(),
            "params": learner.P, "layers": learner.layers,
            "init": {"weights": [_l(w) for w in learner.W], "counters": [_l(c) for c in learner.C],
                     "lfsr_in": _l(learner.in_bank.states),
                     "lfsr": [None if b is None else _l(b.states) for b in learner.banks],
                     "host_lfsr": None if learner.host_bank is None else _l(learner.host_bank.states)}}


def step_record(learner, i: int, rec: dict) -> dict:
    """One step's line from the ``record`` dict of :meth:`ExactLearner.train_batch`."""
    L, B = learner.L, len(rec["labels"])
    samples = []
    for b in range(B):
        layers = []
        for l in range(L):
            e = {"y": _l(rec["ys"][l][b])}
            if rec["S"][l] is not None:
                e["S"] = _l(rec["S"][l][b])
            e["x"] = _l(rec["xs"][l + 1][b])
            if l < L - 1:
                e.update(A=_l(rec["A"][l][b]), B=_l(rec["B"][l][b]), d=_l(rec["d"][l][b]),
                         dx=_l(rec["dx"][l][b]), dz=_l(rec["dz"][l][b]))
            e["dy"] = _l(rec["dy"][l][b])
            layers.append(e)
        samples.append({"pixels": _l(rec["pixels"][b]), "r": _l(rec["r"][b]), "x0": _l(rec["xs"][0][b]),
                        "layers": layers})
    if learner.P["output"] == "host":  # the host's Bernoulli outcome is data, not a chip signal
        for s in samples:
            s["layers"][-1]["host_zB"] = s["layers"][-1].pop("x")
    update = [{"counter_pre": _l(rec["counter_pre"][l]), "carry": _l(rec["carry"][l]),
               "counter": _l(rec["counters"][l]), "weights": _l(rec["weights"][l])} for l in range(L)]
    return {"step": i, "labels": _l(rec["labels"]), "samples": samples, "update": update,
            "lfsr_in_end": _l(learner.in_bank.states),
            "lfsr_end": [None if b_ is None else _l(b_.states) for b_ in learner.banks]}


def make_trace(cfg: TrainConfig, steps: int, images: torch.Tensor, labels: torch.Tensor) -> str:
    """The trace text of ``steps`` training steps on the first ``steps * cfg.batch`` samples (in order)."""
    from golden.exact import make_learner

    if not isinstance(steps, int) or steps < 1:
        raise BshwError(f"steps = {steps!r}: a positive whole number")
    if len(images) < steps * cfg.batch:
        raise BshwError(f"{steps} steps of batch {cfg.batch} need {steps * cfg.batch} samples, "
                        f"the data set has {len(images)}")
    learner = make_learner(cfg)
    lines = [json.dumps(header(learner, cfg.seed), separators=(",", ":"))]
    for i in range(steps):
        rec = {}
        sl = slice(i * cfg.batch, (i + 1) * cfg.batch)
        learner.train_batch(images[sl], labels[sl], record=rec)
        lines.append(json.dumps(step_record(learner, i, rec), separators=(",", ":")))
    return "\n".join(lines) + "\n"


def read_trace(path) -> tuple:
    """``(header, [step records])`` of a trace file, checking format and version."""
    try:
        with open(path) as f:
            lines = [json.loads(s) for s in f if s.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise BshwError(f"cannot read trace {path}: {e}") from None
    if not lines or lines[0].get("format") != FORMAT or lines[0].get("version") != VERSION:
        raise BshwError(f"{path} is not a {FORMAT} version {VERSION} file")
    return lines[0], lines[1:]


def add_arguments(p):
    p.add_argument("--steps", type=int, default=2, help="training steps (batches) to record (default 2)")
    p.add_argument("--seed", type=int, default=0, help="run seed: initial weights and every LFSR seed")
    p.add_argument("--out", required=True, help="output file (JSON lines)")
    p.add_argument("--config", help="TOML file with a [train] table (mode is forced to exact)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 32)")
    p.add_argument("--input-side", type=int, help="images are downsampled to side x side (default 8)")
    p.add_argument("--batch", type=int, help="samples per step (default 100; th follows from it)")
    p.add_argument("--weights", help="int8 (default), int4, ternary, intN")
    p.add_argument("--hw", help='hardware parameters as JSON, e.g. \'{"tie": "zero", "deriv_k": 1}\'')
    p.add_argument("--data", help="data directory (default: the usual MNIST lookup)")


def run(args) -> int:
    from golden.exact.params import config_from_args

    cfg = config_from_args(args, ("hidden", "input_side", "batch", "weights", "data"),
                           {"mode": "exact", "seed": args.seed}, where="trace")
    from golden.data import load_dataset

    data = load_dataset(cfg.dataset_name, cfg.data)
    atomic_write_text(args.out, make_trace(cfg, args.steps, data.train_x, data.train_y))
    print(f"wrote {args.steps} steps (batch {cfg.batch}) to {args.out}")
    return 0
