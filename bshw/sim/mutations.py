"""Mutation check of the regression: break one rule of the RTL, show that a named bench catches it.

Each mutant is the periphery top built with one rule of docs/arithmetic.md broken, paired with the
golden trace it is run against (some rules only matter in some situations: the `gated` tie rule's
no-error gate matters where a layer above often drives no error at all, i.e. a narrow upper hidden
layer). ``python -m bshw.sim.mutations`` (``make mutants``) runs them all and prints which bench caught
which mutant and the first mismatch; tests/test_sim_network.py asserts the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from unittest import mock

# trace configurations: the default 64-32-10 net, and a 16-8-2-10 net with k = 1 whose narrow
# second hidden layer often drives no error (so the gate of the `gated` tie rule matters)
TRACES = {
    "default": ({"hidden": (32,), "input_side": 8}, 2, 50),
    "deep": ({"hidden": (8, 2), "input_side": 4, "hw": {"deriv_k": 1}}, 4, 10),
}

# name -> (what is broken, trace, parameter change or None, the signal that must catch it)
MUTANTS = {
    "tie-zero": ("ties give dz = 0 (rule `zero`) where the spec's `gated` gives +1", "default",
                 {"tie": "zero"}, "dz_en"),
    "no-gate": ("the no-error gate is dropped: ties always give +1 (rule `plus`)", "deep", {"tie": "plus"}, "dz_en"),
    "swap-ab": ("A and B swapped in the derivative: d = B AND NOT A", "default", None, "d1"),
    "th-off-by-one": ("carry threshold th + 1 instead of th", "default", {"th": "+1"}, "carry pulse"),
    "acc-skip-row": ("the accumulate walk drops the write-back of its first row with x_i = 1", "default", None,
                     "counter before carry"),
}


def _swapped_sampler():
    from bshw import derivative_sampler
    from bshw.derivative_sampler import DerivativeSampler

    class SwappedAB(DerivativeSampler):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            # the mutation (later assignment wins): every lane's pairs swapped
            m.d.comb += self.d.eq(derivative_sampler.sampled_derivative(self.planes(self.b), self.planes(self.a)))
            return m

    return SwappedAB


def _row_skipping_memory():
    from amaranth.hdl import Signal

    from bshw.counter_memory import CounterMemory

    class SkipFirstRow(CounterMemory):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            s2_valid, carrying, writes = self._stage2
            first = Signal(init=1)  # the next write-back is the walk's first
            with m.If(self.acc_start):
                m.d.sync += first.eq(1)
            with m.Elif(s2_valid):
                m.d.sync += first.eq(0)
            for wr in writes:  # the mutation: no write-back of an accumulate walk's first row
                with m.If(s2_valid & ~carrying & first):
                    m.d.comb += wr.en.eq(0)
            return m

    return SkipFirstRow


PATCHES = {"swap-ab": ("bshw.neuron_periphery", "DerivativeSampler", _swapped_sampler),
           "acc-skip-row": ("bshw.periphery", "CounterMemory", _row_skipping_memory)}


def trace_for(name: str, out_dir) -> Path:
    """Write (once) the golden trace of configuration ``name`` on random images; return its path."""
    from bshw.sim.network import write_random_trace

    over, steps, batch = TRACES[name]
    return write_random_trace(Path(out_dir) / f"trace-{name}.jsonl", over, steps, batch)


def build_mutant(name: str, trace: Path, out_dir) -> Path:
    """Write the mutant's probed RTL and a description with the *unbroken* parameters (so the bench
    runs it against the trace); return the folder."""
    import importlib

    from bshw.golden.config import TrainConfig
    from bshw.rtl import build, describe, write_design

    header = json.loads(trace.open().readline())
    cfg = TrainConfig.from_dict(header["config"], where="trace header")
    _, _, change, _ = MUTANTS[name]
    patch = contextlib.nullcontext()
    if name in PATCHES:
        module, attr, make = PATCHES[name]
        patch = mock.patch.object(importlib.import_module(module), attr, make())
    folder = Path(out_dir) / f"mutant-{name}"
    with patch:  # construction and emission (the leaf modules are emitted last) both see the mutation
        top, learner = build(cfg, probes=True)
        if change:
            from bshw.periphery import BshwPeriphery

            params = dict(learner.P)
            for k, v in change.items():
                params[k] = params[k] + int(v) if isinstance(v, str) and v.startswith("+") else v
            top = BshwPeriphery(learner.sizes, params, seeds=top.seeds, probes=True)
        desc = describe(learner, cfg, top)
        desc["params"] = learner.P  # the trace's parameters: the mutant claims to implement them
        write_design(folder, top, desc)
    return folder


def run_mutant(name: str, out_dir, seed: int = 0) -> dict:
    """Run one mutant against its trace: ``{"mutant", "broken", "caught", "by", "mismatch", "wall_s"}``."""
    from bshw.sim.network import run_network

    t0 = time.perf_counter()
    broken, trace_name, _, probe = MUTANTS[name]
    trace = trace_for(trace_name, out_dir)
    folder = build_mutant(name, trace, out_dir)
    res = run_network(trace, rtl_dir=folder, build_dir=Path(out_dir) / f"build-{name}", seed=seed)
    msg = res["mismatch"] or ""
    return {"mutant": name, "broken": broken, "caught": not res["passed"], "by": "bshw.sim.bench_network",
            "expected_probe": probe, "named": probe in msg, "mismatch": msg.split("\n")[0],
            "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bshw.sim.mutations", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="sim_build/mutations", help="work folder")
    p.add_argument("names", nargs="*", help=f"mutants (default all: {', '.join(MUTANTS)})")
    a = p.parse_args(argv)
    ok = True
    for name in a.names or MUTANTS:
        r = run_mutant(name, a.out)
        ok &= r["caught"]
        print(f"{name:14s} caught={r['caught']!s:5s} {r['wall_s']:5.1f} s  {r['mismatch']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
