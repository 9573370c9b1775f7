# amaranth: UnusedElaboratable=no
"""RTL LFSR (bshw/lfsr.py) against the golden model bshw/golden/exact/lfsr.py (docs/arithmetic.md §3)."""

import random

import pytest
from amaranth.sim import Simulator

from bshw.golden.exact.lfsr import I16, N32, leap, seed_state
from bshw.lfsr import Lfsr


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("spec,L,make", [(N32, 19, lambda s: Lfsr.n32(19, s)), (I16, 16, lambda s: Lfsr.i16(s))])
@pytest.mark.parametrize("seed", [0, 7])
def test_draws_match_golden(spec, L, make, seed):
    init = seed_state(seed, 3, spec)
    dut = make(init)
    rng = random.Random(seed)
    draws = [rng.random() < 0.7 for _ in range(1500)]  # idle cycles must not move the state

    async def bench(ctx):
        ref = init
        assert ctx.get(dut.state) == ref
        for d in draws:
            ctx.set(dut.draw, d)
            nxt = leap(ref, spec, L)
            assert ctx.get(dut.word) == nxt & ((1 << L) - 1)
            await ctx.tick()
            ref = nxt if d else ref
            assert ctx.get(dut.state) == ref

    _run(dut, bench)


def test_hand_case_and_load():
    # §13 case 1: N32 from 1 by single steps: 3, 6, 13, 27; load overrides draw
    dut = Lfsr(32, N32.taps, 1, init=1)

    async def bench(ctx):
        ctx.set(dut.draw, 1)
        seq = []
        for _ in range(4):
            await ctx.tick()
            seq.append(ctx.get(dut.state))
        assert seq == [3, 6, 13, 27]
        ctx.set(dut.load, 1)
        ctx.set(dut.load_value, 0xDEADBEEF)
        await ctx.tick()
        assert ctx.get(dut.state) == 0xDEADBEEF

    _run(dut, bench)


@pytest.mark.parametrize("kw,exc", [
    (dict(width=0, taps=(0,), leap=1), ValueError),
    (dict(width=16, taps=(16,), leap=1), ValueError),
    (dict(width=16, taps=(3,), leap=17), ValueError),
    (dict(width=16, taps=(3,), leap=4, init=0), ValueError),
    (dict(width=16, taps=(3,), leap=4, init=1 << 16), ValueError),
    (dict(width=16.0, taps=(3,), leap=4), TypeError),
    (dict(width=16, taps=(), leap=4), ValueError),
])
def test_bad_parameters(kw, exc):
    with pytest.raises(exc):
        Lfsr(**kw)
