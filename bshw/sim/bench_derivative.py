"""cocotb bench: the derivative sampler (bshw/derivative_sampler.py) against bshw/golden/exact/neuron.py
(docs/arithmetic.md §6, Eq. 4).

Two tests:

* ``sampler_samples``: draws every clock, random comparator outputs; after each sample (X, A1, B1,
  ..., Ak, Bk) the flip-flops and ``d`` equal ``bshw.golden.exact.neuron.sample_neurons`` of the same
  draw sequence (its draw order and ``derivative``).
* ``sampler_random_ops``: random ``draw`` / ``restart`` / ``fire`` / reset every clock; every
  clock ``index``, ``x``, ``a``, ``b`` and ``d`` are compared. The latch-and-advance behaviour is
  the component's interface (bench model); ``d`` is ``bshw.golden.exact.neuron.derivative`` of the
  flip-flops.
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge
from cocotb.utils import get_sim_time

from bshw.golden.exact import neuron as gn
from bshw.sim import util

DEFAULTS = {"k": 4}
KNOBS = {"samples": 2000, "cycles": 20000}


def make_dut(p: dict):
    from bshw.derivative_sampler import DerivativeSampler

    return f"bshw_derivative_sampler_k{p['k']}", DerivativeSampler(p["k"])


async def _start(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    dut.fire.value, dut.draw.value, dut.restart.value, dut.rst.value = 0, 0, 0, 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


def _bits(v: int, k: int) -> list:
    return [(v >> j) & 1 for j in range(k)]


@cocotb.test()
async def sampler_samples(dut):
    """Consecutive samples of 1 + 2k draws vs golden sample_neurons (draw order X, A1, B1, ...)."""
    p = util.params({**DEFAULTS, **KNOBS})
    k, n = p["k"], p["samples"]
    per = 1 + 2 * k
    rng = util.rng(dut, "sampler_samples")
    fires = [[int(rng.random() < q) for _ in range(per)] for q in (rng.random() for _ in range(n))]
    # golden: with T = 0 and y = 0 a draw fires iff its S > 0, so S = the fire bit itself
    S = torch.tensor(fires, dtype=torch.int64)[:, :, None]
    x, A, Bs, d = gn.sample_neurons(torch.zeros(n, 1, dtype=torch.int64), S, 0, k)
    exp = {"x": x[:, 0].tolist(), "a": [sum(b << j for j, b in enumerate(r)) for r in A[:, :, 0].tolist()],
           "b": [sum(b << j for j, b in enumerate(r)) for r in Bs[:, :, 0].tolist()], "d": d[:, 0].tolist()}

    await _start(dut)
    dut.draw.value = 1
    fe = FallingEdge(dut.clk)
    got = {s: [] for s in exp}
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for i in range(n):
            for f in fires[i]:
                dut.fire.value = f
                await fe
            # after B_k: this sample's flip-flops, and the index back at X
            got["x"].append(dut.x.value)
            got["a"].append(dut.a.value)
            got["b"].append(dut.b.value)
            got["d"].append(dut.d.value)
    dut.draw.value = 0
    cycles = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert cycles == per * len(got["d"]), f"sampler_samples: {cycles} clocks for {len(got['d'])} samples of {per} draws"
    util.record("sampler_samples", cycles=cycles, samples=n, loop_s=t.s, cycles_per_s=cycles / t.s, k=k)
    got = {s: util.ints(vals) for s, vals in got.items()}
    msg = util.first_mismatch(exp, got, what="sample", context=lambda i: f"draws X,A1,B1,... = {fires[i]}")
    util.check(msg)
    dut._log.info("sampler_samples: %d samples (%d cycles) compared (x, a, b, d)", n, cycles)


@cocotb.test()
async def sampler_random_ops(dut):
    """Random draw (60 %), restart (5 %), reset (0.5 %) and fire; all outputs checked every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    k, n = p["k"], p["cycles"]
    rng = util.rng(dut, "sampler_random_ops")
    stim = [(int(rng.random() < 0.005), int(rng.random() < 0.6), int(rng.random() < 0.05), rng.getrandbits(1))
            for _ in range(n)]  # (rst, draw, restart, fire)
    # bench model of the interface: latch fire into the flip-flop of draw `index`, then advance
    exp_idx, exp_x, exp_a, exp_b = [], [], [], []
    idx, xx, a, b = 0, 0, 0, 0
    for rst, draw, restart, fire in stim:
        exp_idx.append(idx)
        exp_x.append(xx)
        exp_a.append(a)
        exp_b.append(b)
        if rst:
            idx, xx, a, b = 0, 0, 0, 0
            continue
        if draw:
            if idx == 0:
                xx = fire
            elif idx % 2:
                j = (idx - 1) // 2
                a = (a & ~(1 << j)) | (fire << j)
            else:
                j = idx // 2 - 1
                b = (b & ~(1 << j)) | (fire << j)
            idx = 0 if idx == 2 * k else idx + 1
        if restart:
            idx = 0
    A = torch.tensor([_bits(v, k) for v in exp_a])[:, :, None]
    B = torch.tensor([_bits(v, k) for v in exp_b])[:, :, None]
    exp_d = gn.derivative(A, B)[:, 0].tolist()  # Eq. 4 of the flip-flops

    await _start(dut)
    fe = FallingEdge(dut.clk)
    got = {"index": [], "x": [], "a": [], "b": [], "d": []}
    sigs = [(got[s], getattr(dut, s)) for s in got]
    prev = (0, 0, 0, 0)
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for cur in stim:
            for lst, h in sigs:
                lst.append(h.value)
            if cur != prev:
                dut.rst.value, dut.draw.value, dut.restart.value, dut.fire.value = cur
                prev = cur
            await fe
    dut.rst.value = 0
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert clocks == len(got["d"]), f"sampler_random_ops: {clocks} clocks simulated but {len(got['d'])} sampled"
    util.record("sampler_random_ops", cycles=clocks, loop_s=t.s, cycles_per_s=clocks / t.s, k=k)
    got = {s: util.ints(vals) for s, vals in got.items()}
    msg = util.first_mismatch({"index": exp_idx, "x": exp_x, "a": exp_a, "b": exp_b, "d": exp_d}, got,
                              context=lambda i: f"inputs before it: rst/draw/restart/fire = "
                                                f"{stim[i - 1] if i else 'reset'}")
    util.check(msg)
    dut._log.info("sampler_random_ops: %d cycles compared (index, x, a, b, d), %.0f cycles/s", n, n / t.s)
