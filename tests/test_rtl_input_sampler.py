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


@pytest.mark.parametrize("seed,n,lanes", [(0, 37, 16), (1, 37, 4), (2, 37, 1), (3, 64, 16), (5, 1, 16), (6, 16, 16)])
def test_bank_matches_golden(seed, n, lanes):
    """Every lane of the memory-walked bank (§15 "Input samplers") is the §5 sampler of its own
    stream, including loads and reads of single streams through the host port; a draw takes
    ``ceil(n / lanes)`` clocks of stage 2 after its ``draw`` clock, the last one flagged."""
    inits = [seed_state(seed, i, I16) for i in range(n)]
    dut = InputSamplerBank(inits, lanes=lanes)
    bank = LfsrBank(I16, inits, 16)
    rng = random.Random(seed)
    words = -(-n // lanes)
    print(f"seed {seed}, {n} streams, {lanes} lanes")

    async def bench(ctx):
        for step_no in range(60):
            px = [rng.choice([0, 1, 128, 254, 255, rng.randint(0, 255)]) for _ in range(n)]
            for j, p in enumerate(px):
                ctx.set(dut.pixels[j], p)
            action = rng.random()
            if action < 0.15:  # load one stream through the host port
                j, v = rng.randrange(n), rng.randint(1, 0xFFFF)
                ctx.set(dut.load, 1), ctx.set(dut.load_sel, j), ctx.set(dut.load_value, v)
                await ctx.tick()
                ctx.set(dut.load, 0)
                bank.states[j] = v
            elif action < 0.8:
                ctx.set(dut.draw, 1)
                await ctx.tick()
                ctx.set(dut.draw, 0)
                walked = 0
                while ctx.get(dut.busy):
                    walked += 1
                    last = ctx.get(dut.last)
                    await ctx.tick()
                    assert last == (not ctx.get(dut.busy)), f"step {step_no}: last flag at word {walked}"
                assert walked == words, f"step {step_no}: the walk took {walked} clocks, expected {words}"
                r = bank.draw(1)[0]
                want = sample_inputs(torch.tensor(px), r).tolist()
                got = [(ctx.get(dut.x) >> j) & 1 for j in range(n)]
                assert got == want, f"step {step_no}: x lanes differ at {[j for j in range(n) if got[j] != want[j]]}"
            else:
                await ctx.tick()
            for j in rng.sample(range(n), min(n, 3)):  # a synchronous read: the state a clock later
                ctx.set(dut.rd_sel, j)
                await ctx.tick()
                assert ctx.get(dut.rd_state) == int(bank.states[j]), f"step {step_no}: state of stream {j}"

    _run(dut, bench)


@pytest.mark.parametrize("lanes,exc", [(0, ValueError), (3, ValueError), (512, ValueError), (2.0, TypeError)])
def test_bank_refuses_bad_lanes(lanes, exc):
    with pytest.raises(exc, match="lanes"):
        InputSamplerBank([1, 2, 3], lanes=lanes)


@pytest.mark.parametrize("init,exc", [(0, ValueError), (1 << 16, ValueError), (1.0, TypeError)])
def test_bad_parameters(init, exc):
    with pytest.raises(exc):
        InputSampler(init)
