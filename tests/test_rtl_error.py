# amaranth: UnusedElaboratable=no
"""RTL error driver (bshw/error_driver.py) against bshw/golden/exact/error.py (docs/arithmetic.md §7)."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.error_driver import ErrorDriver
from bshw.golden.exact import error as ge


def _check(dut, cases):
    async def bench(ctx):
        for dx, upper, d in cases:
            ctx.set(dut.dx, dx)
            ctx.set(dut.upper_en, upper)
            ctx.set(dut.d, d)
            dz = ge.tie_sign(torch.tensor([[dx]]), torch.tensor([upper != 0]), dut.tie)
            en, neg = ge.encode(dz)
            assert (ctx.get(dut.dz_en), ctx.get(dut.dz_neg)) == (int(en), int(neg)), (dx, upper, d)
            en, neg = ge.encode(ge.ternary_error(torch.tensor([[d]]), dz))
            got = (ctx.get(dut.en), ctx.get(dut.neg))
            assert got == (int(en), int(neg)), (dx, upper, d)
            assert not (got[0] == 0 and got[1] == 1)  # illegal code never produced

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("tie", ["gated", "zero", "plus"])
def test_matches_golden(tie):
    rng = random.Random(tie)
    dut = ErrorDriver(12, 10, tie)
    cases = [(dx, u, d) for dx in (-2048, -3, -1, 0, 1, 5, 2047) for u in (0, 1, 0x200, 0x3FF) for d in (0, 1)]
    cases += [(rng.choice([0, rng.randint(-2048, 2047)]), rng.choice([0, rng.randint(0, 1023)]), rng.randint(0, 1))
              for _ in range(300)]
    _check(dut, cases)


def test_hand_cases():
    # §13 case 7: dx = (3, 0, -2) driven: gated (1, 1, -1); nothing driven: dx = 0 -> 0
    dut = ErrorDriver(12, 10, "gated")

    async def bench(ctx):
        ctx.set(dut.d, 1)
        for dx, upper, want in [(3, 1, (1, 0)), (0, 1, (1, 0)), (-2, 1, (1, 1)), (0, 0, (0, 0))]:
            ctx.set(dut.dx, dx)
            ctx.set(dut.upper_en, upper)
            assert (ctx.get(dut.en), ctx.get(dut.neg)) == want

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("kw,exc", [
    (dict(dx_width=0), ValueError), (dict(dx_width=12, n_upper=0), ValueError),
    (dict(dx_width=12, tie="sign"), ValueError), (dict(dx_width=12, tie=None), TypeError),
])
def test_bad_parameters(kw, exc):
    with pytest.raises(exc):
        ErrorDriver(**kw)
