# amaranth: UnusedElaboratable=no
"""RTL periodic carry (bshw/periodic_carry.py) against bshw/golden/exact/carry.py (docs/arithmetic.md §9)."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.golden.exact import carry as gc
from bshw.periodic_carry import PeriodicCarry


@pytest.mark.parametrize("th,cb,wmin,wmax", [(8, 8, -128, 127), (3, 4, -128, 127), (2, 3, -1, 1)])
def test_random_batches_match_golden(th, cb, wmin, wmax):
    rng = random.Random(th * 100 + cb)
    dut = PeriodicCarry(th, cb, wmin, wmax, w_init=wmax - 1)

    async def bench(ctx):
        c, w = torch.zeros(1, 1, dtype=torch.int64), torch.full((1, 1), wmax - 1, dtype=torch.int64)
        for _ in range(60):  # batches
            B = rng.randint(1, 12)
            bias = rng.choice([-1, 1])
            xs = torch.tensor([[rng.random() < 0.8] for _ in range(B)], dtype=torch.int64)
            dys = torch.tensor([[rng.choice([bias, bias, 0, -bias])] for _ in range(B)], dtype=torch.int64)
            for b in range(B):
                ctx.set(dut.x, int(xs[b, 0]))
                ctx.set(dut.dy_en, int(dys[b, 0] != 0))
                ctx.set(dut.dy_neg, int(dys[b, 0] < 0))
                ctx.set(dut.acc, 1)
                await ctx.tick()
            ctx.set(dut.acc, 0)
            c = gc.accumulate(c, xs, dys, cb)
            assert ctx.get(dut.c) == int(c)
            c, w, step = gc.carry(c, w, th, wmin, wmax)
            ctx.set(dut.carry, 1)
            assert ctx.get(dut.step) == int(step)
            await ctx.tick()
            ctx.set(dut.carry, 0)
            assert (ctx.get(dut.c), ctx.get(dut.w)) == (int(c), int(w))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_hand_cases():
    # §13 cases 11 (saturated weight: counter still cleared) and 12 (4-bit counter saturation)
    dut = PeriodicCarry(3, 4, -128, 127, w_init=-128, c_init=6)

    async def bench(ctx):
        ctx.set(dut.x, 1)
        ctx.set(dut.dy_en, 1)
        ctx.set(dut.acc, 1)
        seen = []
        for neg in (0, 0, 1):
            ctx.set(dut.dy_neg, neg)
            await ctx.tick()
            seen.append(ctx.get(dut.c))
        assert seen == [7, 7, 6]
        ctx.set(dut.acc, 0)
        ctx.set(dut.carry, 1)
        await ctx.tick()
        assert (ctx.get(dut.c), ctx.get(dut.w)) == (0, -128)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("kw,exc", [
    (dict(th=8, counter_bits=4), ValueError),  # th cannot fit the counter
    (dict(th=0, counter_bits=8), ValueError),
    (dict(th=8, counter_bits=1), ValueError),
    (dict(th=8, counter_bits=8, wmin=0), ValueError),
    (dict(th=8, counter_bits=8, w_init=200), ValueError),
    (dict(th=8.0, counter_bits=8), TypeError),
])
def test_bad_parameters(kw, exc):
    with pytest.raises(exc):
        PeriodicCarry(**kw)


@pytest.mark.parametrize("th,cb", [(8, 8), (3, 4), (1, 2)])
def test_counter_rule_exhaustive(th, cb):
    """Every counter value, gradient, accumulate and carry of the §9 lane (bit-sliced on one lane)
    against the rule as §9 states it."""
    from amaranth.sim import Simulator

    from bshw.periodic_carry import CounterRule

    cmin, cmax = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
    dut = CounterRule(th, cb)
    cases = [(c, g, acc, carry) for c in range(cmin, cmax + 1) for g in (-1, 0, 1) for acc in (0, 1) for carry in (0, 1)]

    async def bench(ctx):
        for c, g, acc, carry in cases:
            ctx.set(dut.c, c), ctx.set(dut.g_en, g != 0), ctx.set(dut.g_neg, g < 0)
            ctx.set(dut.acc, acc), ctx.set(dut.carry, carry)
            now = min(max(c + g, cmin), cmax) if acc else c
            up, down = now <= -th, now >= th
            want = (0 if carry and (up or down) else now, int(carry and up), int(carry and down))
            got = (ctx.get(dut.c_next), ctx.get(dut.pot), ctx.get(dut.dep))
            assert got == want, f"c={c} g={g} acc={acc} carry={carry}: {got} != {want}"

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
