# amaranth: UnusedElaboratable=no
"""RTL high-precision neuron periphery (bshw/hp_periphery.py) against its golden functions."""

import math
import random

import pytest
from amaranth.sim import Simulator

from bshw.hp_periphery import (
    HpNeuronPeriphery,
    activation_table,
    derivative_table,
    hp_delta,
    hp_gradient,
)


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_tables_by_hand():
    z, D = activation_table(), derivative_table()
    assert len(z) == len(D) == 256
    assert z[0] == 128 and D[0] == 255  # y = 0: sigma = 1/2 -> 127.5 rounds up; z(1-z) = 1/4 = full scale
    assert z[0x80] == 0 and z[0x7F] == 255  # y = -128 / 127 at gain 1/16: sigma(-8), sigma(7.94)
    assert z[16] == round(255 / (1 + math.exp(-1)))  # y = 16 -> sigma(1) = 0.731 -> 186
    ys = list(range(128, 256)) + list(range(128))  # codes in increasing y
    assert all(z[a] <= z[c] for a, c in zip(ys, ys[1:]))
    assert D[16] == D[256 - 16] == round(255 * 4 * 0.7310585786 * 0.2689414214)  # symmetric in y
    assert hp_delta(-128, 255) == -128 and hp_delta(127, 255) == 126 and hp_delta(-1, 1) == -1  # floor
    assert hp_gradient(255, -128) == -32640


@pytest.mark.parametrize("bits,gain,seed", [(8, 1 / 16, 0), (5, 0.5, 1)])
def test_matches_golden(bits, gain, seed):
    dut = HpNeuronPeriphery(bits, gain)
    z, D = activation_table(bits, gain), derivative_table(bits, gain)
    rng = random.Random(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    print(f"seed {seed}")

    async def bench(ctx):
        for code in range(1 << bits):  # every table entry through the ROM
            ctx.set(dut.adc, code)
            ctx.set(dut.fwd, 1)
            await ctx.tick()
            ctx.set(dut.fwd, 0)
            ctx.set(dut.adc, (code + 1) % (1 << bits))
            await ctx.tick()  # fwd low: the looked-up value holds
            assert (ctx.get(dut.z), ctx.get(dut.deriv)) == (z[code], D[code]), f"code {code}"
            dx = rng.choice([lo, hi, 0, -1, rng.randint(lo, hi)])
            ctx.set(dut.dx, dx)
            ctx.set(dut.bwd, 1)
            await ctx.tick()
            ctx.set(dut.bwd, 0)
            delta = hp_delta(dx, D[code], bits)
            assert ctx.get(dut.delta) == delta, f"code {code}, dx {dx}: delta {ctx.get(dut.delta)} != {delta}"
            for x in (0, (1 << bits) - 1, rng.randint(0, (1 << bits) - 1)):
                ctx.set(dut.x_in, x)
                ctx.set(dut.upd, 1)
                await ctx.tick()
                assert ctx.get(dut.grad) == hp_gradient(x, delta), f"code {code}, x {x}, delta {delta}"
            ctx.set(dut.upd, 0)

    _run(dut, bench)


@pytest.mark.parametrize("kw,exc", [
    (dict(bits=1), ValueError), (dict(bits=9), ValueError), (dict(bits=8.0), TypeError),
    (dict(gain=0), ValueError), (dict(gain=float("inf")), ValueError), (dict(gain="1"), TypeError),
    (dict(gain=True), TypeError),
])
def test_bad_parameters(kw, exc):
    with pytest.raises(exc):
        HpNeuronPeriphery(**kw)
