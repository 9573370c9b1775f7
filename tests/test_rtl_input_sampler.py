# amaranth: UnusedElaboratable=no
"""RTL input sampler (bshw/input_sampler.py) against bshw/golden/exact/noise.py's input rule (docs/arithmetic.md §5)."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.golden.exact.lfsr import I16, LfsrBank, seed_state, step
from bshw.golden.exact.noise import sample_inputs
from bshw.input_sampler import InputSampler, InputSamplerBank


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def _unstep(state: int) -> int:
    """The I16 state one step before ``state`` (the inverse of golden ``step``)."""
    for top in (0, 1):
        prev = (state >> 1) | (top << 15)
        if step(prev, I16) == state:
            return prev
    raise AssertionError(state)


@pytest.mark.parametrize("seed", [0, 3])
def test_draws_match_golden(seed):
    init = seed_state(seed, 17, I16)
    dut = InputSampler(init)
    bank = LfsrBank(I16, [init], 16)
    rng = random.Random(seed)
    print(f"seed {seed}")

    async def bench(ctx):
        for n in range(400):
            p = rng.choice([0, 1, 254, 255, rng.randint(0, 255)])
            d = rng.random() < 0.8
            ctx.set(dut.pixel, p)
            ctx.set(dut.draw, d)
            x_before = ctx.get(dut.x)
            await ctx.tick()
            if d:
                r = bank.draw(1)[0]  # [1] int64: the draw's r
                want = int(sample_inputs(torch.tensor([p]), r)[0])
                assert ctx.get(dut.r) == int(r[0]), f"draw {n}: r"
                assert ctx.get(dut.x) == want, f"draw {n}: pixel {p}, r {int(r[0]):#06x}: x {ctx.get(dut.x)} != {want}"
            else:  # no draw: neither the LFSR nor x moves (§3)
                assert ctx.get(dut.r) == int(bank.states[0]) and ctx.get(dut.x) == x_before, f"idle {n}"

    _run(dut, bench)


def test_hand_cases():
    # §13 case 13: r = 0x1234 -> u = 70: pixel 70 -> 0, 71 -> 1; r = 0xFFFF -> u = 0: pixel 1 -> 1,
    # pixel 0 -> 0; r = 255 -> u = 0
    dut = InputSampler()

    async def bench(ctx):
        for r, p, want in [(0x1234, 70, 0), (0x1234, 71, 1), (0xFFFF, 1, 1), (0xFFFF, 0, 0), (255, 1, 1), (255, 0, 0)]:
            s = r
            for _ in range(16):
                s = _unstep(s)
            ctx.set(dut.load, 1)
            ctx.set(dut.load_value, s)
            ctx.set(dut.draw, 1)  # load has priority: no draw this clock
            await ctx.tick()
            assert ctx.get(dut.r) == s
            ctx.set(dut.load, 0)
            ctx.set(dut.pixel, p)
            await ctx.tick()
            ctx.set(dut.draw, 0)
            assert (ctx.get(dut.r), ctx.get(dut.x)) == (r, want), (hex(r), p)

    _run(dut, bench)


@pytest.mark.parametrize("seed,n", [(0, 37), (5, 1)])
def test_bank_matches_golden(seed, n):
    """Every lane of the bit-sliced bank (§15 "Banks") is the §5 sampler of its own stream, including
    loads and reads of single lanes through the host port."""
    inits = [seed_state(seed, i, I16) for i in range(n)]
    dut = InputSamplerBank(inits)
    bank = LfsrBank(I16, inits, 16)
    rng = random.Random(seed)

    async def bench(ctx):
        for step_no in range(60):
            px = [rng.choice([0, 1, 128, 254, 255, rng.randint(0, 255)]) for _ in range(n)]
            for j, p in enumerate(px):
                ctx.set(dut.pixels[j], p)
            action = rng.random()
            if action < 0.1:  # load one lane through the host port
                j, v = rng.randrange(n), rng.randint(1, 0xFFFF)
                ctx.set(dut.load, 1), ctx.set(dut.load_sel, j), ctx.set(dut.load_value, v)
                await ctx.tick()
                ctx.set(dut.load, 0)
                bank.states[j] = v
            elif action < 0.8:
                ctx.set(dut.draw, 1)
                await ctx.tick()
                ctx.set(dut.draw, 0)
                r = bank.draw(1)[0]
                want = sample_inputs(torch.tensor(px), r).tolist()
                got = [(ctx.get(dut.x) >> j) & 1 for j in range(n)]
                assert got == want, f"step {step_no}: x lanes differ at {[j for j in range(n) if got[j] != want[j]]}"
            else:
                await ctx.tick()
            j = rng.randrange(n)
            ctx.set(dut.rd_sel, j)
            assert ctx.get(dut.rd_state) == int(bank.states[j]), f"step {step_no}: state of lane {j}"

    _run(dut, bench)


@pytest.mark.parametrize("init,exc", [(0, ValueError), (1 << 16, ValueError), (1.0, TypeError)])
def test_bad_parameters(init, exc):
    with pytest.raises(exc):
        InputSampler(init)
