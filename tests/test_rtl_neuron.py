# amaranth: UnusedElaboratable=no
"""RTL comparator neuron + derivative sampler + N32 LFSR against bshw/golden/exact (docs/arithmetic.md §4, §6)."""

import random

import pytest
import torch
from amaranth.hdl import Module
from amaranth.sim import Simulator

from bshw.derivative_sampler import DerivativeSampler
from bshw.golden.exact import neuron as gn
from bshw.golden.exact.lfsr import N32, LfsrBank, seed_state
from bshw.golden.exact.noise import NoiseSpec
from bshw.lfsr import Lfsr
from bshw.neuron import ComparatorNeuron


def _sim(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-6, if_exists=True)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("k,words", [(4, (7, 7, 5)), (1, (3, 3, 2)), (2, (7, 7, 5))])
def test_hidden_neuron_draws_match_golden(k, words):
    spec = NoiseSpec(words)
    init = seed_state(1, (1 << 20) + 5, N32)
    lfsr, nrn, smp = Lfsr.n32(spec.bits, init), ComparatorNeuron(14, words), DerivativeSampler(k)
    top = Module()
    top.submodules.lfsr, top.submodules.nrn, top.submodules.smp = lfsr, nrn, smp
    top.d.comb += [nrn.word.eq(lfsr.word), smp.fire.eq(nrn.fire), smp.draw.eq(lfsr.draw)]
    rng = random.Random(k)
    ys = [rng.randint(-2 * spec.T, 2 * spec.T) if rng.random() < 0.5 else rng.randint(-20, 20) for _ in range(40)]
    bank = LfsrBank(N32, [init], spec.bits)

    async def bench(ctx):
        for y in ys:  # one sample: 1 + 2k draws with the same y (§6)
            S = bank.draw(1 + 2 * k, coef=spec.coef)[None]  # [1, draws, 1]
            x, A, Bs, d = gn.sample_neurons(torch.tensor([[y]]), S, spec.T, k)
            ctx.set(nrn.y, y)
            ctx.set(lfsr.draw, 1)
            for i in range(1 + 2 * k):
                assert ctx.get(smp.index) == i
                assert ctx.get(nrn.s) == int(S[0, i, 0])
                await ctx.tick()
            assert ctx.get(smp.x) == int(x)
            assert ctx.get(smp.a) == sum(int(A[0, j, 0]) << j for j in range(k))
            assert ctx.get(smp.b) == sum(int(Bs[0, j, 0]) << j for j in range(k))
            assert ctx.get(smp.d) == int(d)
        assert ctx.get(lfsr.state) == int(bank.states[0])

    _sim(top, bench)


def test_comparator_hand_cases():
    # §13 cases 4 and 5
    dut = ComparatorNeuron(14)

    async def bench(ctx):
        word = (21 << 14) | (3 << 7) | 127  # S = 151, n = 9
        for y, want in [(-8, 1), (-9, 0)]:
            ctx.set(dut.word, word)
            ctx.set(dut.y, y)
            assert (ctx.get(dut.s), ctx.get(dut.fire)) == (151, want)
        for y, s, want in [(0, 142, 0), (0, 143, 1), (5, 138, 1)]:
            ctx.set(dut.word, (s - 127) << 7 | 127)  # u = (127, s - 127, 0)
            ctx.set(dut.y, y)
            assert ctx.get(dut.s) == s and ctx.get(dut.fire) == want

    _sim(dut, bench)


def test_derivative_truth_table_and_restart():
    # §13 case 6: k = 4 pairs (1,1), (0,0), (1,0), (0,1) -> d = 1; four (1,1) -> 0
    dut = DerivativeSampler(4)

    async def bench(ctx):
        for seq, want in [([0, 1, 1, 0, 0, 1, 0, 0, 1], 1), ([1] * 9, 0)]:
            ctx.set(dut.draw, 1)
            for f in seq:
                ctx.set(dut.fire, f)
                await ctx.tick()
            assert ctx.get(dut.d) == want and ctx.get(dut.index) == 0
        ctx.set(dut.fire, 0)
        await ctx.tick()
        ctx.set(dut.draw, 0)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        assert ctx.get(dut.index) == 0 and ctx.get(dut.x) == 0

    _sim(dut, bench)


@pytest.mark.parametrize("make,exc", [
    (lambda: ComparatorNeuron(0), ValueError),
    (lambda: ComparatorNeuron(14, (17,)), ValueError),
    (lambda: ComparatorNeuron(14, (16, 16, 1)), ValueError),
    (lambda: ComparatorNeuron(14, ()), ValueError),
    (lambda: ComparatorNeuron("14"), TypeError),
    (lambda: DerivativeSampler(3), ValueError),
    (lambda: DerivativeSampler(0), ValueError),
])
def test_bad_parameters(make, exc):
    with pytest.raises(exc):
        make()
