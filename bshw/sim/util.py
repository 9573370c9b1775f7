"""Helpers used inside the simulator by the ``bshw/sim/bench_*.py`` cocotb modules.

The benches keep Python work per cycle small: stimulus and expected values are computed in bulk
with the golden model before the simulation loop, the loop only writes inputs and stores the raw
output values, and the comparison runs once afterwards (:func:`first_mismatch`).
"""

from __future__ import annotations

import json
import os
import random
import time

import cocotb

from bshw.sim.runner import METRICS_ENV, PARAMS_ENV


def params(defaults: dict) -> dict:
    """The DUT's parameters: ``defaults`` updated by ``$BSHW_SIM_PARAMS`` (set by ``run_component``)."""
    out = dict(defaults)
    text = os.environ.get(PARAMS_ENV, "").strip()
    if text:
        out.update(json.loads(text))
    return out


def env_int(name: str, default: int) -> int:
    """An integer knob of the bench (``$BSHW_SIM_CYCLES`` etc.)."""
    text = os.environ.get(name, "").strip()
    return int(text, 0) if text else default


def rng(dut, test: str) -> random.Random:
    """The test's stimulus generator, seeded from cocotb's per-test seeding of ``random`` (which
    derives from the regression seed and the test's name), and log the regression seed."""
    seed = regression_seed()
    dut._log.info("%s: regression seed %s (rerun with SEED=%s)", test, seed, seed)
    return random.Random(random.getrandbits(64))


def regression_seed() -> str:
    """The run's seed (``COCOTB_RANDOM_SEED``, set by ``run_bench`` from ``seed``/``$SEED``);
    ``cocotb.RANDOM_SEED`` is the per-test seed derived from it during a test."""
    return os.environ.get("COCOTB_RANDOM_SEED", str(cocotb.RANDOM_SEED))


def record(test: str, **metrics) -> None:
    """Append this test's measurements to ``$BSHW_SIM_METRICS`` (read back by ``run_bench``)."""
    path = os.environ.get(METRICS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, "seed": int(regression_seed()), **metrics}) + "\n")


def ints(values, signed: bool = False) -> list:
    """Raw cocotb values (``Logic`` for 1-bit signals, ``LogicArray`` otherwise) as Python ints."""
    out = []
    for v in values:
        if hasattr(v, "to_unsigned"):
            out.append(v.to_signed() if signed else v.to_unsigned())
        else:
            out.append(int(v))
    return out


class Timed:
    """``with Timed() as t: ...`` then ``t.s``: wall seconds of the block."""

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.s = time.perf_counter() - self.t0
        return False


def check(msg: str | None) -> None:
    """Fail the test with ``msg`` (from :func:`first_mismatch`) unless it is None."""
    if msg is not None:
        raise AssertionError(msg)


def first_mismatch(expected: dict, got: dict, width: dict | None = None, what: str = "cycle", *,
                   context=None) -> str | None:
    """First difference between ``expected[signal][i]`` and ``got[signal][i]`` (ints), in order of
    ``i`` then of the signals' order in ``expected``; None when all agree.

    The message names the cycle (or vector) ``i``, the signal, the lowest differing bit index,
    the expected and the received value, and ``context(i)`` (e.g. the stimulus) when given.
    """
    n = {len(v) for v in expected.values()} | {len(v) for v in got.values()}
    if len(n) != 1:
        lengths = ({k: len(v) for k, v in expected.items()}, {k: len(v) for k, v in got.items()})
        return f"length mismatch: expected {lengths[0]}, got {lengths[1]}"
    for i in range(n.pop()):
        for sig, exp in expected.items():
            e, g = exp[i], got[sig][i]
            if e != g:
                diff = e ^ g  # two's complement for negative values too
                bit = (diff & -diff).bit_length() - 1
                msg = f"first mismatch at {what} {i}: signal {sig} bit {bit}: expected {e}, got {g}"
                if context is not None:
                    msg += f" ({context(i)})"
                return msg
    return None


async def start(dut, names, period_ns: int = 10) -> list:
    """Start the clock, drive the inputs ``names`` to 0 and hold reset for two clocks; return the
    input handles (in ``names`` order). Leaves the bench at a falling edge, out of reset."""
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge

    cocotb.start_soon(Clock(dut.clk, period_ns, unit="ns", impl="gpi").start())
    handles = [getattr(dut, s) for s in names]
    for h in handles:
        h.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    return handles


async def apply_vectors(dut, handles, vectors, outputs) -> tuple:
    """Drive one input vector per clock and sample ``outputs`` after the inputs settle.

    ``handles``: input handles; ``vectors``: tuples of their values, one per clock (only changed
    inputs are written, at the falling edge); ``outputs``: names of the ports to sample in the
    ReadOnly phase of that clock (combinational outputs see this clock's inputs, registers the state
    before the edge). Returns ``({name: [raw values]}, loop seconds)``; compare afterwards.
    """
    from cocotb.triggers import FallingEdge, ReadOnly

    fe, ro = FallingEdge(dut.clk), ReadOnly()
    got = {s: [] for s in outputs}
    outs = [(got[s], getattr(dut, s)) for s in outputs]
    prev = (0,) * len(handles)
    with Timed() as t:
        for cur in vectors:
            if cur != prev:
                for h, v, q in zip(handles, cur, prev):
                    if v != q:
                        h.value = v
                prev = cur
            await ro
            for lst, h in outs:
                lst.append(h.value)
            await fe
    return got, t.s
