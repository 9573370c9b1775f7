# amaranth: UnusedElaboratable=no
"""RTL hidden-neuron periphery (bshw/neuron_periphery.py) against bshw/golden/exact (docs/arithmetic.md §3-§7).

Each sample: the golden LFSR bank draws the ``1 + 2k`` noise sums (X, A1, B1, ...), golden
``sample_neurons`` gives x, A, B, d, golden ``tie_sign``/``ternary_error``/``encode`` give (en, neg).
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.golden.exact import error as ge
from bshw.golden.exact import neuron as gn
from bshw.golden.exact.lfsr import N32, LfsrBank, seed_state, stream_id
from bshw.golden.exact.noise import NoiseSpec
from bshw.neuron_periphery import NeuronPeriphery


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("k,words,tie,seed", [(4, (7, 7, 5), "gated", 0), (1, (3, 3, 2), "zero", 1),
                                              (2, (7, 7, 5), "plus", 2)])
def test_samples_match_golden(k, words, tie, seed):
    spec = NoiseSpec(words)
    init = seed_state(seed, stream_id(1, 3), N32)
    dut = NeuronPeriphery(14, 12, k, tie, words, 10, init)
    bank = LfsrBank(N32, [init], spec.bits)
    rng = random.Random(seed)
    print(f"seed {seed}")

    async def bench(ctx):
        for n in range(12):
            y = rng.randint(-2 * spec.T, 2 * spec.T) if n % 2 else rng.randint(-12, 12)
            S = bank.draw(1 + 2 * k, coef=spec.coef)[None]  # [1, draws, 1] in order X, A1, B1, ...
            x, A, Bs, d = gn.sample_neurons(torch.tensor([[y]]), S, spec.T, k)
            ctx.set(dut.y, y)
            ctx.set(dut.draw, 1)
            for i in range(1 + 2 * k):
                assert ctx.get(dut.index) == i, (n, i)
                await ctx.tick()
            ctx.set(dut.draw, 0)
            got = (ctx.get(dut.x), ctx.get(dut.a), ctx.get(dut.b), ctx.get(dut.d))
            want = (int(x), sum(int(A[0, j, 0]) << j for j in range(k)),
                    sum(int(Bs[0, j, 0]) << j for j in range(k)), int(d))
            assert got == want, f"sample {n}, y={y}, S={S.flatten().tolist()}: (x, a, b, d) {got} != {want}"
            assert ctx.get(dut.state) == int(bank.states[0]), f"sample {n}: LFSR state"
            for dx in (0, rng.randint(-2048, 2047), -1, 1):  # backward: dy = sign(dx) * d (§7)
                upper = rng.choice([0, 1, rng.randint(0, 1023)])
                ctx.set(dut.dx, dx)
                ctx.set(dut.upper_en, upper)
                dz = ge.tie_sign(torch.tensor([[dx]]), torch.tensor([upper != 0]), tie)
                en, neg = ge.encode(ge.ternary_error(d, dz))
                assert (ctx.get(dut.en), ctx.get(dut.neg)) == (int(en), int(neg)), (n, dx, upper, int(d))
            await ctx.tick()  # an idle clock moves nothing (§3)
            assert ctx.get(dut.state) == int(bank.states[0]) and ctx.get(dut.index) == 0

    _run(dut, bench)


def test_hand_case_load_and_restart():
    # §13 case 6 drives the comparator through S; here: load a state, draw X only, restart, full sample
    init = seed_state(0, stream_id(1, 0), N32)
    dut = NeuronPeriphery(init=1)
    spec = NoiseSpec((7, 7, 5))

    async def bench(ctx):
        ctx.set(dut.load, 1)
        ctx.set(dut.load_value, init)
        await ctx.tick()
        ctx.set(dut.load, 0)
        assert ctx.get(dut.state) == init
        bank = LfsrBank(N32, [init], spec.bits)
        ctx.set(dut.y, 1 << 12)  # far above T: every draw fires -> A = B = 1, d = 0
        ctx.set(dut.draw, 1)
        await ctx.tick()
        bank.draw(1)
        ctx.set(dut.draw, 0)
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        assert ctx.get(dut.index) == 0 and ctx.get(dut.x) == 1
        ctx.set(dut.draw, 1)
        for _ in range(9):
            await ctx.tick()
        bank.draw(9)
        assert (ctx.get(dut.a), ctx.get(dut.b), ctx.get(dut.d)) == (0xF, 0xF, 0)
        assert ctx.get(dut.state) == int(bank.states[0])

    _run(dut, bench)


@pytest.mark.parametrize("kw,exc", [
    (dict(y_width=1), ValueError), (dict(y_width=14.0), TypeError), (dict(dx_width=65), ValueError),
    (dict(k=3), ValueError), (dict(tie="sign"), ValueError), (dict(noise_words=(17,)), ValueError),
    (dict(noise_words=(16, 16, 1)), ValueError), (dict(n_upper=0), ValueError), (dict(init=0), ValueError),
    (dict(init=1 << 32), ValueError), (dict(init="1"), TypeError),
])
def test_bad_parameters(kw, exc):
    with pytest.raises(exc):
        NeuronPeriphery(**kw)
