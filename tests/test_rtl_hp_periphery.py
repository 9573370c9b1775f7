# amaranth: UnusedElaboratable=no
"""RTL high-precision neuron periphery (bshw/hp_periphery.py) against its golden functions.

The ROM is checked against tables recomputed here from the fixed-point contract of bshw/hp_periphery.py
(``z = round((2^B - 1) sigma(g y))``, ``D = round((2^B - 1) 4 s (1 - s))``, round half up) in 60-digit
decimal arithmetic, not against ``activation_table`` / ``derivative_table``, which filled it (issue 22,
point 6: a ROM compared with the tables that filled it cannot fail)."""

import math
import random
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from amaranth.sim import Simulator

from bshw.hp_periphery import (
    HpNeuronPeriphery,
    activation_table,
    derivative_table,
    hp_delta,
    hp_gradient,
)


def _contract_tables(bits: int, gain: float) -> tuple:
    """``(z, D)`` codes of every ADC code from the contract, independently of bshw.hp_periphery."""
    full = (1 << bits) - 1
    with localcontext() as ctx:
        ctx.prec = 60
        f = Fraction(gain)
        g = Decimal(f.numerator) / Decimal(f.denominator)
        z, D = [], []
        for code in range(1 << bits):
            y = code - (1 << bits) if code >> (bits - 1) else code  # two's complement B bits
            s = 1 / (1 + (-(g * y)).exp())
            z.append(int((full * s).to_integral_value(ROUND_HALF_UP)))
            D.append(int((full * 4 * s * (1 - s)).to_integral_value(ROUND_HALF_UP)))
    return z, D


def _rom_words(dut) -> list:
    """The ROM's contents as elaborated (``z | D << B`` per word)."""
    return [int(w) for w in dut.elaborate(None).submodules.rom.init]


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
    z, D = _contract_tables(bits, gain)  # the expected ROM, from the contract (not the tables that filled it)
    assert (activation_table(bits, gain), derivative_table(bits, gain)) == (z, D)  # the golden functions too
    assert _rom_words(dut) == [a | (b << bits) for a, b in zip(z, D)]  # the elaborated ROM, word by word
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
