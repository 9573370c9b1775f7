"""cocotb bench: the leap-ahead LFSR (bshw/lfsr.py) against bshw/golden/exact/lfsr.py (docs/arithmetic.md §3).

Model: ``bshw.golden.exact.lfsr.leap`` (the one-step reference applied ``leap`` times) for the random
draw / load / reset stimulus, and ``bshw.golden.exact.lfsr.LfsrBank`` (the batched GF(2) form the
golden training uses) for a long run of consecutive draws from a ``seed_state`` start.
Checked every cycle: ``state`` and the combinational ``word``.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge
from cocotb.utils import get_sim_time

from bshw.golden.exact.lfsr import I16, N32, LfsrBank, leap, seed_state
from bshw.sim import util

DEFAULTS = {"kind": "n32", "leap": 19, "init": 1}  # the DUT
KNOBS = {"cycles": 20000, "stream_draws": 20000}  # the bench
SPECS = {"n32": N32, "i16": I16}


def make_dut(p: dict):
    """``(toplevel, component)``: ``Lfsr.n32(leap, init)`` or ``Lfsr.i16(init)``."""
    from bshw.lfsr import Lfsr

    if p["kind"] == "n32":
        return "bshw_lfsr_n32", Lfsr.n32(p["leap"], p["init"])
    if p["kind"] == "i16":
        return "bshw_lfsr_i16", Lfsr.i16(p["init"])
    raise ValueError(f"kind must be n32 or i16, got {p['kind']!r}")


def _setup(p):
    spec = SPECS[p["kind"]]
    L = p["leap"] if p["kind"] == "n32" else spec.width
    return spec, L, (1 << L) - 1


async def _reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    for sig in (dut.draw, dut.load, dut.load_value):
        sig.value = 0
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0


@cocotb.test()
async def lfsr_random_ops(dut):
    """Random draw (70 %), load (1 %, of seed_state values and random words) and reset (0.2 %)."""
    p = util.params({**DEFAULTS, **KNOBS})
    spec, L, wmask = _setup(p)
    rng = util.rng(dut, "lfsr_random_ops")
    n = p["cycles"]
    # stimulus and model, in bulk before the loop
    rst, load, lval, draw = [], [], [], []
    for _ in range(n):
        u = rng.random()
        rst.append(int(u < 0.002))
        load.append(int(0.002 <= u < 0.012))
        v = seed_state(rng.getrandbits(16), rng.getrandbits(24), spec) if rng.random() < 0.5 \
            else rng.randint(1, spec.mask)
        lval.append(v if load[-1] else 0)
        draw.append(int(rng.random() < 0.7))
    exp_state, exp_word = [], []
    s = p["init"]
    for i in range(n):
        nxt = leap(s, spec, L)  # §3: the one-step function L times
        exp_state.append(s)
        exp_word.append(nxt & wmask)
        s = p["init"] if rst[i] else lval[i] if load[i] else nxt if draw[i] else s

    await _reset(dut)
    got_state, got_word = [], []
    fe = FallingEdge(dut.clk)
    prev = (0, 0, 0, 0)
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for i in range(n):
            got_state.append(dut.state.value)
            got_word.append(dut.word.value)
            cur = (rst[i], load[i], lval[i], draw[i])
            if cur != prev:
                dut.rst.value, dut.load.value, dut.load_value.value, dut.draw.value = cur
                prev = cur
            await fe
    dut.rst.value = 0
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert clocks == len(got_state), f"lfsr_random_ops: {clocks} clocks simulated but {len(got_state)} sampled"
    util.record("lfsr_random_ops", cycles=clocks, loop_s=t.s, cycles_per_s=clocks / t.s, kind=p["kind"])
    got = {"state": util.ints(got_state), "word": util.ints(got_word)}
    msg = util.first_mismatch({"state": exp_state, "word": exp_word}, got,
                              context=lambda i: f"inputs before it: rst/load/load_value/draw = "
                                                f"{(rst[i-1], load[i-1], lval[i-1], draw[i-1]) if i else 'reset'}")
    util.check(msg)
    dut._log.info("lfsr_random_ops: %d cycles compared (state, word), %.0f cycles/s", n, n / t.s)


@cocotb.test()
async def lfsr_stream_matches_bank(dut):
    """A stream loaded with ``seed_state(seed, stream)`` draws every clock; each word equals
    ``LfsrBank.draw`` (the golden training's batched LFSR) and the end state its state."""
    p = util.params({**DEFAULTS, **KNOBS})
    spec, L, _ = _setup(p)
    rng = util.rng(dut, "lfsr_stream_matches_bank")
    n = p["stream_draws"]
    init = seed_state(rng.getrandbits(20), rng.getrandbits(21), spec)
    bank = LfsrBank(spec, [init], L)
    exp_word = bank.draw(n)[:, 0].tolist()

    await _reset(dut)
    dut.load.value, dut.load_value.value = 1, init
    await FallingEdge(dut.clk)
    dut.load.value, dut.draw.value = 0, 1
    got_word = []
    fe = FallingEdge(dut.clk)
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for _ in range(n):
            got_word.append(dut.word.value)
            await fe
    dut.draw.value = 0
    end = dut.state.value.to_unsigned()
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert clocks == len(got_word), f"lfsr_stream_matches_bank: {clocks} clocks simulated but {len(got_word)} sampled"
    util.record("lfsr_stream_matches_bank", cycles=clocks, loop_s=t.s, cycles_per_s=clocks / t.s, kind=p["kind"])
    msg = util.first_mismatch({"word": exp_word}, {"word": util.ints(got_word)}, what="draw",
                              context=lambda i: f"stream start state {init:#x}")
    util.check(msg)
    assert end == int(bank.states[0]), f"end state after {n} draws: expected {int(bank.states[0]):#x}, got {end:#x}"
    dut._log.info("lfsr_stream_matches_bank: %d draws compared from %#x", n, init)
