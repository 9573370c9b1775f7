"""cocotb bench: the network top (bshw/network.py) trains and infers exactly like the golden
exact mode (docs/arithmetic.md §8-§11).

Model: a golden trace (``bshw trace``, §11) - every sampled bit, sum, error, counter, carry and
weight of each training step, computed by golden/exact - and, optionally, the golden learner's
predictions after those steps. The bench talks to the DUT in transactions: load the trace's initial
state through the host ports, hand over one sample per ``OP_TRAIN`` and compare every probe when
it is done, read the counters before the batch-end ``OP_CARRY``, record every pulse during it,
then compare weights, counters and LFSR states; finally ``OP_BINARY`` / ``OP_INFER`` per test sample.
A failure names the first mismatch: step, sample, signal, index, expected, got.

Environment: ``BSHW_NET_DESC`` (the ``bshw_net.json`` written with the Verilog), ``BSHW_NET_TRACE``,
``BSHW_NET_INFER`` (optional JSON: ``pixels``, ``binary``, ``stochastic``), ``BSHW_NET_STEPS`` (optional
limit).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from sim import netio, util

PERIOD_NS = 10


def u(handle) -> int:
    """Unsigned value of a port (1-bit ports read as ``Logic``, wider ones as ``LogicArray``)."""
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


def _load_json_lines(path):
    with open(path) as f:
        lines = [json.loads(s) for s in f if s.strip()]
    if not lines or lines[0].get("format") != "bshw-exact-trace" or lines[0].get("version") != 1:
        raise ValueError(f"{path} is not a bshw-exact-trace version 1 file")
    return lines[0], lines[1:]


class Net:
    """Transaction-level driver of the network top."""

    def __init__(self, dut, desc):
        self.dut, self.desc = dut, desc
        self.ops = desc["ops"]
        self.L = len(desc["layers"])
        self.cb = desc["params"]["counter_bits"]

    async def reset(self):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, PERIOD_NS, unit="ns").start())
        for name in ("start", "op", "mem_we_w", "mem_we_c", "lfsr_we", "pixels", "label", "mem_layer",
                     "mem_row", "lfsr_sel", "mem_wdata_w", "mem_wdata_c", "lfsr_wdata"):
            getattr(d, name).value = 0
        d.rst.value = 1
        await FallingEdge(d.clk)
        await FallingEdge(d.clk)
        d.rst.value = 0

    async def op(self, name, pixels=None, label=None, monitor=False):
        """Run one operation (on ``pixels``/``label`` when given); return the pulses seen (``monitor``)
        as ``[(layer, row, pot, dep)]``. Returns in the ReadOnly phase of the ``done`` clock."""
        d, pulses = self.dut, []
        await FallingEdge(d.clk)
        if pixels is not None:
            d.pixels.value = netio.pack(pixels, 8)
        if label is not None:
            d.label.value = label
        d.op.value, d.start.value = self.ops[name], 1
        await RisingEdge(d.busy)
        d.start.value = 0
        if not monitor:
            await RisingEdge(d.done)
            await ReadOnly()
            return pulses
        while True:
            await ReadOnly()
            if u(d.pulse_valid):
                pulses.append((u(d.pulse_layer), u(d.pulse_row),
                               u(d.pulse_pot), u(d.pulse_dep)))
            if u(d.done):
                return pulses
            await RisingEdge(d.clk)

    async def idle(self):
        """Wait until the sequencer is back in IDLE (the host ports address rows only then)."""
        await Timer(1, unit="ns")  # leave a ReadOnly phase before writing an address
        while u(self.dut.busy):
            await FallingEdge(self.dut.clk)

    async def write_rows(self, layer, weights=None, counters=None):
        d = self.desc["layers"][layer]
        rows = weights if weights is not None else counters
        for i, r in enumerate(rows):
            await FallingEdge(self.dut.clk)
            self.dut.mem_layer.value, self.dut.mem_row.value = layer, i
            if weights is not None:
                self.dut.mem_wdata_w.value, self.dut.mem_we_w.value = netio.pack(r, d["wbits"]), 1
            else:
                self.dut.mem_wdata_c.value, self.dut.mem_we_c.value = netio.pack(r, self.cb), 1
        await FallingEdge(self.dut.clk)
        self.dut.mem_we_w.value = self.dut.mem_we_c.value = 0

    async def read_rows(self, layer):
        """``(weights, counters)`` of a layer as ``[fan_in][fan_out]`` lists (combinational host read)."""
        d = self.desc["layers"][layer]
        W, C = [], []
        await self.idle()
        for i in range(d["fan_in"]):
            self.dut.mem_layer.value, self.dut.mem_row.value = layer, i
            await Timer(1, unit="ns")
            W.append(netio.unpack(u(self.dut.mem_rdata_w), d["fan_out"], d["wbits"], True))
            C.append(netio.unpack(u(self.dut.mem_rdata_c), d["fan_out"], self.cb, True))
        return W, C

    async def write_lfsrs(self, states):
        for i, s in enumerate(states):
            await FallingEdge(self.dut.clk)
            self.dut.lfsr_sel.value, self.dut.lfsr_wdata.value, self.dut.lfsr_we.value = i, s, 1
        await FallingEdge(self.dut.clk)
        self.dut.lfsr_we.value = 0

    async def read_lfsrs(self):
        out = []
        await self.idle()
        for i in range(sum(self.desc["sizes"])):
            self.dut.lfsr_sel.value = i
            await Timer(1, unit="ns")
            out.append(u(self.dut.lfsr_rdata))
        return out


def _pulse_mismatch(desc, want, got) -> str:
    """Name the first differing carry pulse: layer, row, column, expected and got (+1 pot, -1 dep)."""
    if got is None or got[:2] != want[:2]:
        return f"pulse of (layer, row) {want[:2]} expected, got {got and got[:2]}"
    li, i = want[:2]
    n = desc["layers"][li]["fan_out"]
    ev = [p - d for p, d in zip(netio.unpack(want[2], n), netio.unpack(want[3], n))]
    gv = [p - d for p, d in zip(netio.unpack(got[2], n), netio.unpack(got[3], n))]
    j = next(j for j in range(n) if ev[j] != gv[j])
    return f"signal carry pulse of layer {li + 1} [{i}][{j}] expected {ev[j]:+d}, got {gv[j]:+d}"


def _streams(lfsr_in, lfsr):
    return list(lfsr_in) + [s for layer in lfsr for s in layer]


@cocotb.test()
async def network_matches_golden(dut):
    """Training steps of a golden trace, bit for bit; then inference predictions."""
    with open(os.environ["BSHW_NET_DESC"]) as f:
        desc = json.load(f)
    header, steps = _load_json_lines(os.environ["BSHW_NET_TRACE"])
    limit = os.environ.get("BSHW_NET_STEPS", "").strip()
    steps = steps[: int(limit)] if limit else steps
    dut._log.info("network %s, trace seed %s, %d steps (rerun with SEED=%s)",
                  "-".join(map(str, desc["sizes"])), header["seed"], len(steps), util.regression_seed())
    if header["params"] != desc["params"] or [x["fan_in"] for x in header["layers"]] != desc["sizes"][:-1]:
        raise AssertionError("the trace was made for other hardware parameters or sizes than this RTL")
    t0 = time.perf_counter()
    net = Net(dut, desc)
    await net.reset()
    init = header["init"]
    for li in range(net.L):  # load the trace's initial state through the host ports, then read it back
        await net.write_rows(li, weights=init["weights"][li])
        await net.write_rows(li, counters=init["counters"][li])
    await net.write_lfsrs(_streams(init["lfsr_in"], init["lfsr"]))
    for li in range(net.L):
        W, C = await net.read_rows(li)
        msg = netio.row_mismatch("weight", li + 1, init["weights"][li], W, "after loading") or \
            netio.row_mismatch("counter", li + 1, init["counters"][li], C, "after loading")
        assert msg is None, msg
    layout = netio.probe_layout(desc)
    compared = samples = 0
    for step in steps:
        s = step["step"]
        for b, rec in enumerate(step["samples"]):
            await net.op("train", rec["pixels"], step["labels"][b])
            exp = netio.expected_probes(desc, rec)
            got = {p: u(getattr(dut, p)) for p in exp}
            msg = netio.mismatch(layout, exp, got, f"step {s} sample {b}")
            assert msg is None, msg
            compared += sum(layout[p][0] for p in exp)
            samples += 1
        for li, up in enumerate(step["update"]):
            _, C = await net.read_rows(li)
            msg = netio.row_mismatch("counter before carry", li + 1, up["counter_pre"], C, f"step {s}")
            assert msg is None, msg
        pulses = await net.op("carry", monitor=True)
        want = [(li, i, netio.pack([v == 1 for v in r]), netio.pack([v == -1 for v in r]))
                for li, up in enumerate(step["update"]) for i, r in enumerate(up["carry"])]
        for got_p, want_p in zip(pulses + [None] * len(want), want):
            if got_p != want_p:
                raise AssertionError(f"step {s} carry: " + _pulse_mismatch(desc, want_p, got_p))
        for li, up in enumerate(step["update"]):
            W, C = await net.read_rows(li)
            msg = netio.row_mismatch("weight", li + 1, up["weights"], W, f"step {s} after carry") or \
                netio.row_mismatch("counter", li + 1, up["counter"], C, f"step {s} after carry")
            assert msg is None, msg
            compared += 2 * len(W) * len(W[0]) + len(W) * len(W[0])
        got_l = await net.read_lfsrs()
        want_l = _streams(step["lfsr_in_end"], step["lfsr_end"])
        bad = next((i for i, (e, g) in enumerate(zip(want_l, got_l)) if e != g), None)
        assert bad is None, f"step {s}: LFSR state of stream {bad} expected {want_l[bad]:#x}, got {got_l[bad]:#x}"
        compared += len(want_l)
        dut._log.info("step %d: %d samples, every probe, pulse, weight, counter and LFSR state equal", s,
                      len(step["samples"]))
    infer_n = agree = 0
    path = os.environ.get("BSHW_NET_INFER", "").strip()
    if path:
        with open(path) as f:
            inf = json.load(f)
        for i, px in enumerate(inf["pixels"]):
            await net.op("binary", px)
            g = u(dut.pred)
            assert g == inf["binary"][i], f"test sample {i}: binary inference class expected {inf['binary'][i]}, got {g}"
            await net.op("infer")
            g = u(dut.pred)
            assert g == inf["stochastic"][i], \
                f"test sample {i}: stochastic inference vote expected {inf['stochastic'][i]}, got {g}"
            infer_n += 1
        agree = infer_n
    cycles = int(get_sim_time("ns") // PERIOD_NS)
    wall = time.perf_counter() - t0
    util.record("network_matches_golden", steps=len(steps), samples=samples, compared=compared, cycles=cycles,
                wall_s=wall, cycles_per_s=cycles / wall if wall else 0.0, infer=infer_n, infer_agree=agree)
