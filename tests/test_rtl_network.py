# amaranth: UnusedElaboratable=no
"""The scalable periphery (docs/arithmetic.md §15): the counter memory against bshw/golden/exact in
Amaranth's simulator, the macro interface's widths, the clock formula, leaf-cell emission and the
errors of bad parameters. The whole learner against golden traces runs under Icarus in
tests/test_sim_network.py (it needs the Verilog macro model)."""

import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.core import op_cycles
from bshw.counter_memory import CounterMemory, default_bank_cols
from bshw.golden.config import TrainConfig
from bshw.golden.exact import carry as gc
from bshw.macro import CrossbarMacroSignature, dx_width, y_width
from bshw.periphery import BshwPeriphery
from bshw.sim import netio

P = dict(noise_words=[7, 7, 5], deriv_k=4, tie="gated", output="onchip", th=8, counter_bits=8, wmin=-128, wmax=127)


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_widths_follow_the_spec():  # §1/§2 table
    assert (y_width(64, 8), y_width(32, 8), y_width(784, 8), y_width(100, 8)) == (14, 13, 18, 15)
    assert (dx_width(10, 8), dx_width(32, 8), dx_width(200, 8)) == (12, 14, 16)
    mac = CrossbarMacroSignature(784, 500)
    assert (mac.yw, mac.dxw, mac.wbits) == (18, 17, 8)
    assert set(mac.members) >= {"fwd", "x", "y", "bwd", "dy_en", "dy_neg", "dx", "upd", "upd_row", "pot", "dep",
                                "prog_we", "prog_re", "prog_row", "prog_wdata", "prog_rdata"}
    assert "bwd" not in CrossbarMacroSignature(784, 500, backward=False).members


def test_cycle_formula_table():
    """§15's table: clocks per operation of the three nets at k = 4, read latency 1, 16 input lanes
    (the input draw walks ceil(n0 / 16) words: 4 for 64 pixels, 49 for 784)."""
    assert op_cycles("train", [64, 32, 10], 4, 1, [0, 0]) == 20 + 1
    assert op_cycles("train", [64, 32, 10], 4, 1, [10, 16]) == 20 + 18
    assert op_cycles("train", [784, 100, 10], 4, 1, [0, 0]) == 65 + 1
    assert op_cycles("train", [784, 500, 200, 10], 4, 1, [0, 0, 0]) == 76 + 1
    assert op_cycles("carry", [784, 500, 200, 10], 4) == 788
    assert op_cycles("binary", [784, 100, 10], 4) == 4
    assert op_cycles("infer", [784, 500, 200, 10], 4) == 1 + 49 + 2 * 2 + 1 + 1
    assert op_cycles("train", [784, 500, 200, 10], 4, 2, [150, 0, 0]) == 1 + 49 + (2 + 9) * 2 + 3 + 2 * 2 + 1 + 152 + 1
    # one word (every pixel in one clock, as the bank that held every state in flip-flops): 1 + 1
    assert op_cycles("train", [16, 12, 10], 4, 1, [0, 0]) == op_cycles("train", [784, 12, 10], 4, 1, [0, 0], 1024)
    assert op_cycles("infer", [784, 100, 10], 4, 1, None, 8) == 1 + 98 + 2 + 1 + 1
    with pytest.raises(ValueError, match="unknown operation"):
        op_cycles("dance", [4, 2], 4)


@pytest.mark.parametrize("fi,fo,th,cb,bank_cols", [(5, 6, 8, 8, None), (40, 6, 2, 3, 2), (3, 4, 1, 2, 1)])
def test_counter_memory_matches_golden(fi, fo, th, cb, bank_cols):
    """Accumulate walks (rows with x_i = 1 only, none when dy = 0) and carry walks against
    bshw.golden.exact.carry, with the clocks of each walk and every pulse sent to the macro (§9, §15)."""
    rng = random.Random(fi * 31 + th)
    dut = CounterMemory(fi, fo, th, cb, bank_cols=bank_cols)
    B = 7

    async def walk(ctx, start):
        ctx.set(start, 1)
        await ctx.tick()
        ctx.set(start, 0)
        clocks, pulses = 0, []
        while ctx.get(dut.busy):
            if ctx.get(dut.upd):
                pulses.append((ctx.get(dut.upd_row), ctx.get(dut.pot), ctx.get(dut.dep)))
            clocks += 1
            await ctx.tick()
        return clocks, pulses

    async def bench(ctx):
        C = torch.zeros(fi, fo, dtype=torch.int64)
        W = torch.zeros(fi, fo, dtype=torch.int64)
        for _ in range(5):  # batches
            xs = torch.tensor([[rng.random() < 0.6 for _ in range(fi)] for _ in range(B)]).long()
            bias = rng.choice([-1, 1])
            dys = torch.tensor([[rng.choice([bias, bias, 0, -bias]) for _ in range(fo)] for _ in range(B)])
            dys[0] = 0  # a sample with no error walks no row
            for b in range(B):
                en, neg = netio.ternary(dys[b].tolist())
                ctx.set(dut.dy_en, en), ctx.set(dut.dy_neg, neg), ctx.set(dut.x, netio.pack(xs[b].tolist()))
                clocks, _ = await walk(ctx, dut.acc_start)
                rows = int(xs[b].sum()) if dys[b].any() else 0
                assert clocks == (rows + 1 if rows else 0)  # one row per clock, plus the write-back
            C = gc.accumulate(C, xs, dys, cb)
            C, W, step = gc.carry(C, W, th, -128, 127)
            clocks, pulses = await walk(ctx, dut.carry_start)
            assert clocks == fi + 1
            assert pulses == [(i, netio.pack((step[i] == 1).long().tolist()), netio.pack((step[i] == -1).long().tolist()))
                              for i in range(fi)]
            for i in range(fi):  # host read: two clocks after host_re
                ctx.set(dut.host_row, i), ctx.set(dut.host_re, 1)
                await ctx.tick()
                ctx.set(dut.host_re, 0)
                await ctx.tick()
                got = netio.unpack(ctx.get(dut.host_rdata.as_value()), fo, cb, True)
                assert got == C[i].tolist(), f"row {i}"
        # host write, then read back
        row = [rng.randint(-(1 << (cb - 1)), (1 << (cb - 1)) - 1) for _ in range(fo)]
        ctx.set(dut.host_row, fi - 1), ctx.set(dut.host_wdata.as_value(), netio.pack(row, cb)), ctx.set(dut.host_we, 1)
        await ctx.tick()
        ctx.set(dut.host_we, 0), ctx.set(dut.host_re, 1)
        await ctx.tick()
        ctx.set(dut.host_re, 0)
        await ctx.tick()
        assert netio.unpack(ctx.get(dut.host_rdata.as_value()), fo, cb, True) == row

    _run(dut, bench)


def test_default_bank_widths():
    assert default_bank_cols(500, 8) == 25 and default_bank_cols(10, 8) == 10 and default_bank_cols(32, 8) == 32
    assert CounterMemory(784, 500, 8, 8).n_banks == 20
    assert default_bank_cols(7, 64) == 1


def test_cells_are_banked():
    """Pixels and neurons as one bit-sliced bank per layer, each layer's counters as one memory with
    the bit-sliced rule (§15 "Banks"): no module or clocked process per cell."""
    from amaranth.back import verilog

    top = BshwPeriphery([9, 6, 4, 10], P)
    text = verilog.convert(top, name="bshw_periphery", emit_src=False)
    for sub in ("input_samplers", "neurons1", "neurons2", "neurons3", "counters1", "counters2", "counters3"):
        assert text.count(f"module \\bshw_periphery.{sub} ") == 1, sub
    assert "pixel0" not in text and "neuron0" not in text and "rule" not in text  # no cell per pixel, neuron, column
    # one register per bit plane, whatever the layer's width: 16 I16 planes for the pixels, 32 N32
    # planes per layer, the draws' flip-flops, the walkers
    assert text.count("always @(posedge clk)") < 200
    assert "xb3__upd" in text and "xb1__bwd" not in text  # the first layer's array has no backward read
    assert "dx1" not in text  # probes only on request


def test_probes_are_optional():
    bare, probed = BshwPeriphery([9, 4, 10], P), BshwPeriphery([9, 4, 10], P, probes=True)
    assert "x0" not in bare.signature.members and "d1" in probed.signature.members
    assert probed.signature.members["a1"].shape == 4 * 4


# -- bad parameters fail at construction -------------------------------------------------------------
@pytest.mark.parametrize("make,exc,match", [
    (lambda: CounterMemory(4, 6, 8, 8, bank_cols=4), ValueError, "does not divide"),
    (lambda: CounterMemory(4, 6, 8, 8, bank_cols=0), ValueError, "bank_cols"),
    (lambda: CounterMemory(4, 4, th=8, counter_bits=4), ValueError, "does not fit"),
    (lambda: CounterMemory(4, 4, th=0, counter_bits=8), ValueError, "th"),
    (lambda: CounterMemory(0, 4, 8, 8), ValueError, "fan_in"),
    (lambda: CounterMemory(2, 2, 8, 8, init=[[1, 2], [3, 200]]), ValueError, "outside"),
    (lambda: CrossbarMacroSignature(4, 4, read_latency=0), ValueError, "read_latency"),
    (lambda: CrossbarMacroSignature(4, 4, wmin=0), ValueError, "wmin"),
    (lambda: CrossbarMacroSignature(1 << 33, 4, wmin=-(1 << 31), wmax=(1 << 31) - 1), ValueError, "wider than 64"),
    (lambda: CrossbarMacroSignature(4.0, 4), TypeError, "fan_in"),
    (lambda: BshwPeriphery([4], P), ValueError, "sizes"),
    (lambda: BshwPeriphery([4, 6, 10], P, bank_cols=4), ValueError, "does not divide"),
    (lambda: BshwPeriphery([4, 6, 10], P, bank_cols=[6]), ValueError, "one entry per layer"),
    (lambda: BshwPeriphery([4, 6, 10], P, read_latency=0), ValueError, "read_latency"),
    (lambda: BshwPeriphery([4, 6, 10], {**P, "tie": "sometimes"}), ValueError, "tie"),
    (lambda: BshwPeriphery([4, 6, 10], {**P, "output": "host"}), ValueError, "onchip"),
    (lambda: BshwPeriphery([4, 6, 10], P, seeds={"lfsr_in": [1] * 3, "lfsr": [[1] * 6, [1] * 10]}), ValueError,
     "seeds"),
    (lambda: BshwPeriphery([4, 6, 10], P, seeds={"lfsr_in": [0] * 4, "lfsr": [[1] * 6, [1] * 10]}), ValueError,
     "input seed"),
    (lambda: BshwPeriphery([1 << 33, 4], {**P, "wmin": -(1 << 31), "wmax": (1 << 31) - 1}), ValueError,
     "wider than 64"),
])
def test_bad_parameters_raise(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_host_output_is_refused():
    from bshw.errors import BshwError
    from bshw.rtl import build

    cfg = TrainConfig.from_dict({"hidden": (4,), "input_side": 3, "weights": "int8", "mode": "exact",
                                 "hw": {"output": "host"}}, where="test")
    with pytest.raises(BshwError, match="onchip"):
        build(cfg)
