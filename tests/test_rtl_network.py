# amaranth: UnusedElaboratable=no
"""RTL crossbar model, counter bank and network top (bshw/crossbar.py, periodic_carry.py, network.py)
against golden/exact in Amaranth's simulator (docs/arithmetic.md §2, §8, §9, §11)."""

import json
import random

import pytest
import torch
from amaranth.sim import Simulator

from bshw.crossbar import Crossbar, dx_width, y_width
from bshw.layer import LayerPeriphery
from bshw.network import OP_CARRY, OP_TRAIN, BshwNet
from bshw.periodic_carry import CounterBank
from golden.config import TrainConfig
from golden.exact import carry as gc
from golden.exact.trace import make_trace
from sim import netio


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_widths_follow_the_spec():  # §1/§2 table
    assert (y_width(64, 8), y_width(32, 8), y_width(784, 8), y_width(100, 8)) == (14, 13, 18, 15)
    assert (dx_width(10, 8), dx_width(32, 8), dx_width(200, 8)) == (12, 14, 16)


def test_crossbar_sums_and_pulses():
    rng = random.Random(3)
    fi, fo = 6, 5
    W = torch.tensor([[rng.randint(-128, 127) for _ in range(fo)] for _ in range(fi)])
    W[0, 0], W[1, 1] = 127, -128  # pulses against the device limits
    dut = Crossbar(fi, fo, init=W.tolist())
    x = [rng.randint(0, 1) for _ in range(fi)]
    dy = [rng.choice([-1, 0, 1]) for _ in range(fo)]
    pot = torch.tensor([[rng.random() < 0.3 for _ in range(fo)] for _ in range(fi)])
    dep = torch.tensor([[rng.random() < 0.3 for _ in range(fo)] for _ in range(fi)]) & ~pot
    pot[0, 0] = dep[1, 1] = True

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for i in range(fi):  # forward, row by row
            ctx.set(dut.row, i), ctx.set(dut.x, x[i]), ctx.set(dut.fwd, 1)
            await ctx.tick()
        ctx.set(dut.fwd, 0)
        y = (torch.tensor(x) @ W).tolist()
        assert netio.unpack(ctx.get(dut.y), fo, dut.yw, True) == y
        en, neg = netio.ternary(dy)
        ctx.set(dut.dy_en, en), ctx.set(dut.dy_neg, neg), ctx.set(dut.bwd, 1)
        for i in range(fi):  # backward sums dx_i = sum_j dy_j W[i, j]
            ctx.set(dut.row, i)
            await ctx.tick()
        ctx.set(dut.bwd, 0)
        assert netio.unpack(ctx.get(dut.dx), fi, dut.dxw, True) == (W @ torch.tensor(dy)).tolist()
        for i in range(fi):  # one level per pulse, clamped (§9)
            ctx.set(dut.row, i), ctx.set(dut.pot, netio.pack(pot[i].tolist())), ctx.set(dut.dep, netio.pack(dep[i].tolist()))
            await ctx.tick()
        ctx.set(dut.pot, 0), ctx.set(dut.dep, 0)
        want = (W + pot.long() - dep.long()).clamp(-128, 127)
        for i in range(fi):
            ctx.set(dut.row, i)
            assert netio.unpack(ctx.get(dut.rdata), fo, 8, True) == want[i].tolist()

    _run(dut, bench)


@pytest.mark.parametrize("th,cb", [(8, 8), (2, 3)])
def test_counter_bank_matches_golden(th, cb):
    rng = random.Random(th)
    fi, fo, B = 4, 6, 9
    dut = CounterBank(fi, fo, th, cb)

    async def bench(ctx):
        C = torch.zeros(fi, fo, dtype=torch.int64)
        W = torch.zeros(fi, fo, dtype=torch.int64)
        for _ in range(6):  # batches
            xs = torch.tensor([[rng.random() < 0.7 for _ in range(fi)] for _ in range(B)]).long()
            bias = rng.choice([-1, 1])
            dys = torch.tensor([[rng.choice([bias, bias, 0, -bias]) for _ in range(fo)] for _ in range(B)])
            for b in range(B):
                en, neg = netio.ternary(dys[b].tolist())
                ctx.set(dut.dy_en, en), ctx.set(dut.dy_neg, neg), ctx.set(dut.acc, 1)
                for i in range(fi):
                    ctx.set(dut.row, i), ctx.set(dut.x, int(xs[b, i]))
                    await ctx.tick()
            ctx.set(dut.acc, 0)
            C = gc.accumulate(C, xs, dys, cb)
            C, W, step = gc.carry(C, W, th, -128, 127)
            ctx.set(dut.carry, 1)
            for i in range(fi):
                ctx.set(dut.row, i)
                assert netio.unpack(ctx.get(dut.pot), fo) == (step[i] == 1).long().tolist()
                assert netio.unpack(ctx.get(dut.dep), fo) == (step[i] == -1).long().tolist()
                await ctx.tick()
            ctx.set(dut.carry, 0)
            for i in range(fi):
                ctx.set(dut.row, i)
                assert netio.unpack(ctx.get(dut.rdata), fo, cb, True) == C[i].tolist()

    _run(dut, bench)


def _tiny_trace(batch=3, seed=5):
    cfg = TrainConfig.from_dict({"hidden": (4,), "input_side": 3, "weights": "int8", "mode": "exact",
                                 "batch": batch, "seed": seed}, where="test")
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (batch,), generator=g)
    lines = make_trace(cfg, 1, images, labels).splitlines()
    return cfg, json.loads(lines[0]), json.loads(lines[1])


def test_network_top_trains_like_the_golden_trace():
    """One batch of a 9-4-10 net: every probe after every sample, pulses, weights and counters."""
    from bshw.rtl import build, describe

    cfg, header, step = _tiny_trace()
    top, learner = build(cfg)
    desc = describe(learner, cfg, top)
    layout = netio.probe_layout(desc)

    async def op(ctx, code, pixels=None, label=0):
        if pixels is not None:
            ctx.set(top.pixels, netio.pack(pixels, 8))
        ctx.set(top.label, label), ctx.set(top.op, code), ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
        pulses = []
        while not ctx.get(top.done):
            if ctx.get(top.pulse_valid):
                pulses.append((ctx.get(top.pulse_layer), ctx.get(top.pulse_row), ctx.get(top.pulse_pot),
                               ctx.get(top.pulse_dep)))
            await ctx.tick()
        return pulses

    async def bench(ctx):
        for b, rec in enumerate(step["samples"]):
            await op(ctx, OP_TRAIN, rec["pixels"], step["labels"][b])
            exp = netio.expected_probes(desc, rec)
            msg = netio.mismatch(layout, exp, {p: ctx.get(getattr(top, p)) for p in exp}, f"sample {b}")
            assert msg is None, msg
            await ctx.tick()
        pulses = await op(ctx, OP_CARRY)
        want = [(li, i, netio.pack([v == 1 for v in r]), netio.pack([v == -1 for v in r]))
                for li, up in enumerate(step["update"]) for i, r in enumerate(up["carry"])]
        assert pulses == want
        await ctx.tick()
        for li, up in enumerate(step["update"]):
            lay = desc["layers"][li]
            ctx.set(top.mem_layer, li)
            for i in range(lay["fan_in"]):
                ctx.set(top.mem_row, i)
                assert netio.unpack(ctx.get(top.mem_rdata_w), lay["fan_out"], 8, True) == up["weights"][i]
                assert netio.unpack(ctx.get(top.mem_rdata_c), lay["fan_out"], desc["params"]["counter_bits"],
                                    True) == up["counter"][i]

    _run(top, bench)


# -- bad parameters fail at construction (issue 7) ---------------------------------------------------
@pytest.mark.parametrize("make,match", [
    (lambda: Crossbar(0, 4), "fan_in"),
    (lambda: Crossbar(4, 0), "fan_out"),
    (lambda: Crossbar(4, 4, wmin=0), "wmin"),
    (lambda: Crossbar(1 << 33, 4, wmin=-(1 << 31), wmax=(1 << 31) - 1), "wider than 64"),
    (lambda: Crossbar(2, 2, init=[[1, 2], [3, 200]]), "outside"),
    (lambda: Crossbar(2, 2, init=[[1, 2]]), "shape"),
    (lambda: CounterBank(4, 4, th=8, counter_bits=4), "does not fit"),
    (lambda: CounterBank(4, 4, th=0, counter_bits=8), "th"),
    (lambda: LayerPeriphery(4, 4, tie="sometimes"), "tie rule"),
    (lambda: LayerPeriphery(4, 4, k=3), "k"),
    (lambda: LayerPeriphery(4, 2, lfsr_init=[1]), "lfsr_init"),
    (lambda: BshwNet([4], {}), "sizes"),
])
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_parameter_types_raise():
    with pytest.raises(TypeError, match="fan_in"):
        Crossbar(4.0, 4)


def test_host_output_is_refused():
    from bshw.rtl import build
    from golden.errors import BshwError

    cfg = TrainConfig.from_dict({"hidden": (4,), "input_side": 3, "weights": "int8", "mode": "exact",
                                 "hw": {"output": "host"}}, where="test")
    with pytest.raises(BshwError, match="onchip"):
        build(cfg)
