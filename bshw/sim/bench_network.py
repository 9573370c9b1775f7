"""cocotb bench: the periphery top (bshw/periphery.py) with its crossbar macros trains and infers
exactly like the golden exact mode (docs/arithmetic.md §8-§11, §15).

Model: a golden trace (``bshw trace``, §11) - every sampled bit, sum, error, counter, carry and
weight of each training step, computed by bshw/golden/exact - and, optionally, the golden learner's
predictions after those steps. Two arrangements of the arrays (``BSHW_NET_MACRO``):

- ``numpy``: the DUT is the periphery top; a numpy model per layer (bshw/sim/macro_model.py) answers its
  macro pins, and the bench compares every update pulse the periphery sends;
- ``hdl``: the DUT is the system top (bshw/system.py), the Verilog macro model inside it.

The bench talks to the DUT in transactions: load the trace's initial state through the host ports
and read it back, hand over one sample per ``TRAIN`` and compare every probe and the operation's
clock count (§15 formula) when it is done, read the counters before the batch-end ``CARRY``, then
compare pulses, weights, counters and LFSR states; finally ``BINARY`` / ``INFER`` per test image. A
failure names the first mismatch: step, sample, signal, index, expected, got.

Environment: ``BSHW_NET_DESC`` (the description written with the Verilog), ``BSHW_NET_TRACE``,
``BSHW_NET_MACRO``, ``BSHW_NET_INFER`` (optional JSON: ``pixels``, ``binary``, ``stochastic``),
``BSHW_NET_STEPS`` (optional limit).
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, SimTimeoutError, Timer, with_timeout
from cocotb.utils import get_sim_time

from bshw.sim import netio, util

PERIOD_NS = 10


def u(handle) -> int:
    """Unsigned value of a port (1-bit ports read as ``Logic``, wider ones as ``LogicArray``)."""
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


class Net:
    """Transaction-level driver of the periphery (or system) top."""

    def __init__(self, dut, desc, macro: str):
        self.dut, self.desc, self.macro = dut, desc, macro
        self.ops = desc["ops"]
        self.L = len(desc["layers"])
        self.cb = desc["params"]["counter_bits"]
        self.lat = desc["read_latency"]
        self.arrays = []
        self.cycles = {}  # op -> list of clock counts

    async def reset(self):
        d = self.dut
        cocotb.start_soon(Clock(d.clk, PERIOD_NS, unit="ns").start())
        for name in ("start", "op", "host__mem_we_w", "host__mem_we_c", "host__mem_re", "host__lfsr_we", "pixels",
                     "label", "host__mem_layer", "host__mem_row", "host__lfsr_sel", "host__mem_wdata_w",
                     "host__mem_wdata_c", "host__lfsr_wdata"):
            getattr(d, name).value = 0
        if self.macro == "numpy":
            from bshw.hwparams import HwParams
            from bshw.sim.macro_model import NumpyMacro

            P = HwParams.from_dict(self.desc["params"])
            for li, layer in enumerate(self.desc["layers"]):
                a = NumpyMacro(d, f"xb{li + 1}__", layer, P.wmin, P.wmax, self.lat,
                               device=None if P.device is None else dict(P.device),
                               number=li + 1)  # §16: the array's device model, when the parameters name one
                self.arrays.append(a)
                cocotb.start_soon(a.run())
        d.rst.value = 1
        await FallingEdge(d.clk)
        await FallingEdge(d.clk)
        d.rst.value = 0

    async def op(self, name, pixels=None, label=None) -> int:
        """Run one operation (on ``pixels``/``label`` when given); return its clock count, ``start``
        clock to ``done`` clock. Returns in the ReadOnly phase of the ``done`` clock."""
        d = self.dut
        await FallingEdge(d.clk)
        while u(d.busy):  # the last clock of the previous operation: start it in IDLE
            await FallingEdge(d.clk)
        if pixels is not None:
            d.pixels.value = netio.pack(pixels, 8)
        if label is not None:
            d.label.value = label
        d.op.value, d.start.value = self.ops[name], 1
        t0 = get_sim_time("ns")
        # a sequencer that never ends an operation fails here, naming it, instead of hanging the run
        limit = 4 * max(self.desc["cycles"]["train_all_rows"], self.desc["cycles"]["carry"]) + 64
        try:
            await with_timeout(RisingEdge(d.busy), 4 * PERIOD_NS, "ns")
            d.start.value = 0
            await with_timeout(RisingEdge(d.done), limit * PERIOD_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"{name}: signal clocks: the operation did not end within {limit} clocks") from None
        await ReadOnly()
        n = int((get_sim_time("ns") - t0 + PERIOD_NS // 2) // PERIOD_NS) + 1
        self.cycles.setdefault(name, []).append(n)
        return n

    async def idle(self):
        """Wait until the sequencer is back in IDLE (the host ports address rows only then)."""
        await Timer(1, unit="ns")  # leave a ReadOnly phase before writing an address
        while u(self.dut.busy):
            await FallingEdge(self.dut.clk)

    async def write_rows(self, layer, weights=None, counters=None):
        d = self.desc["layers"][layer]
        rows = weights if weights is not None else counters
        await self.idle()
        for i, r in enumerate(rows):
            await FallingEdge(self.dut.clk)
            self.dut.host__mem_layer.value, self.dut.host__mem_row.value = layer, i
            if weights is not None:
                self.dut.host__mem_wdata_w.value, self.dut.host__mem_we_w.value = netio.pack(r, d["wbits"]), 1
            else:
                self.dut.host__mem_wdata_c.value, self.dut.host__mem_we_c.value = netio.pack(r, self.cb), 1
        await FallingEdge(self.dut.clk)
        self.dut.host__mem_we_w.value = self.dut.host__mem_we_c.value = 0

    async def read_rows(self, layer):
        """``(weights, counters)`` of a layer as ``[fan_in][fan_out]`` lists, through ``mem_re``: one
        read at a time, the next strobe a clock after the previous row's ``mem_rvalid`` (§15 host
        ports; with a macro read latency above 1 a strobe in the ``mem_rvalid`` clock is not taken)."""
        d, dut = self.desc["layers"][layer], self.dut
        W, C = [], []
        await self.idle()
        for i in range(d["fan_in"]):
            await FallingEdge(dut.clk)
            dut.host__mem_layer.value, dut.host__mem_row.value, dut.host__mem_re.value = layer, i, 1
            await FallingEdge(dut.clk)
            dut.host__mem_re.value = 0
            while not u(dut.host__mem_rvalid):
                await FallingEdge(dut.clk)
            W.append(netio.unpack(u(dut.host__mem_rdata_w), d["fan_out"], d["wbits"], True))
            C.append(netio.unpack(u(dut.host__mem_rdata_c), d["fan_out"], self.cb, True))
        return W, C

    async def write_lfsrs(self, states):
        await self.idle()
        for i, s in enumerate(states):
            await FallingEdge(self.dut.clk)
            self.dut.host__lfsr_sel.value, self.dut.host__lfsr_wdata.value, self.dut.host__lfsr_we.value = i, s, 1
        await FallingEdge(self.dut.clk)
        self.dut.host__lfsr_we.value = 0

    async def read_lfsrs(self):
        out = []
        await self.idle()
        for i in range(sum(self.desc["sizes"])):  # a synchronous read: the state a clock after lfsr_sel
            await FallingEdge(self.dut.clk)
            self.dut.host__lfsr_sel.value = i
            await FallingEdge(self.dut.clk)
            out.append(u(self.dut.host__lfsr_rdata))
        return out


def _pulse_mismatch(layer: int, fan_out: int, want, got) -> str:
    """Name the first differing carry pulse: layer, row, column, expected and got (+1 pot, -1 dep)."""
    if got is None or got[0] != want[0]:
        return f"signal pulse{layer + 1}: row {want[0]} expected, got {got and got[0]}"
    ev = [p - d for p, d in zip(netio.unpack(want[1], fan_out), netio.unpack(want[2], fan_out))]
    gv = [p - d for p, d in zip(netio.unpack(got[1], fan_out), netio.unpack(got[2], fan_out))]
    j = next(j for j in range(fan_out) if ev[j] != gv[j])
    return f"signal pulse{layer + 1}[{want[0]}][{j}] expected {ev[j]:+d}, got {gv[j]:+d}"


def _streams(lfsr_in, lfsr):
    return list(lfsr_in) + [s for layer in lfsr for s in layer]


async def _check_lfsrs(net, want, where: str) -> int:
    got = await net.read_lfsrs()
    bad = next((i for i, (e, g) in enumerate(zip(want, got)) if e != g), None)
    assert bad is None, (f"{where}: signal {netio.stream_name(net.desc['sizes'], bad)} expected {want[bad]:#x}, "
                         f"got {got[bad]:#x}")
    return len(want)


async def _check_state(net, model, where: str) -> int:
    """Compare every LFSR state, weight and counter with the model; return the values compared."""
    n = await _check_lfsrs(net, model.lfsr, where)
    for li in range(net.L):
        W, C = await net.read_rows(li)
        n += netio.check_layer_state(model, li, W, C, where)
    return n


def _check_clocks(n: int, want: int, where: str, op: str) -> int:
    assert n == want, f"{where}: signal clocks of {op}: expected {want} (the §15 formula), got {n}"
    return 1


@cocotb.test()
async def network_matches_golden(dut):
    """Training steps of a golden trace, bit for bit; then inference. After every operation the
    whole observable state (every LFSR, weight and counter) and the clock count are compared
    (``BSHW_NET_STATE=step``: the state at batch ends and after the last inference only)."""
    with open(os.environ["BSHW_NET_DESC"]) as f:
        desc = json.load(f)
    limit = os.environ.get("BSHW_NET_STEPS", "").strip()
    from bshw.golden.exact.trace import open_trace

    # the trace was checked line by line before the bench started (run_network's load_trace)
    header, steps = open_trace(os.environ["BSHW_NET_TRACE"], int(limit) if limit else None, check=False)
    macro = os.environ.get("BSHW_NET_MACRO", "numpy")
    every_op = os.environ.get("BSHW_NET_STATE", "op") == "op"
    sizes = desc["sizes"]
    dut._log.info("network %s (%s macros), trace seed %s, %s steps, state compared after every %s "
                  "(rerun with SEED=%s)", "-".join(map(str, sizes)), macro, header["seed"], limit or "all",
                  "operation" if every_op else "batch", util.regression_seed())
    if header["params"] != desc["params"] or [x["fan_in"] for x in header["layers"]] != sizes[:-1]:
        raise AssertionError("the trace was made for other hardware parameters or sizes than this RTL")
    t0 = time.perf_counter()
    net = Net(dut, desc, macro)
    await net.reset()
    init = header["init"]
    # §3/§15 seeding: out of reset every LFSR holds the seed_state of the RTL's configuration seed
    compared = await _check_lfsrs(net, netio.seed_states(sizes, desc["seed"]), "after reset")
    # the host LFSR port: load states unlike both the reset and the trace's, read them back, then the trace's
    start = _streams(init["lfsr_in"], init["lfsr"])
    other = [(s ^ 0x5A5A5A5A) & (0xFFFF if i < sizes[0] else 0xFFFFFFFF) or 1 for i, s in enumerate(start)]
    await net.write_lfsrs(other)
    compared += await _check_lfsrs(net, other, "after loading other states")
    for li in range(net.L):  # load the trace's initial state through the host ports, then read it back
        await net.write_rows(li, weights=init["weights"][li])
        await net.write_rows(li, counters=init["counters"][li])
    await net.write_lfsrs(start)
    model = netio.StateModel(desc, init["weights"], init["counters"], start)
    compared += await _check_state(net, model, "after loading")
    layout = netio.probe_layout(desc)
    samples = n_steps = 0
    for step in steps:
        n_steps += 1
        s = step["step"]
        for b, rec in enumerate(step["samples"]):
            where = f"step {s} sample {b}"
            n = await net.op("train", rec["pixels"], step["labels"][b])
            exp = netio.expected_probes(desc, rec)
            got = {p: u(getattr(dut, p)) for p in exp}
            msg = netio.mismatch(layout, exp, got, where)
            assert msg is None, msg
            compared += sum(layout[p][0] for p in exp)
            model.train(rec)
            if every_op:
                compared += await _check_state(net, model, f"{where} after training")
            compared += _check_clocks(n, netio.op_clocks(net.desc, "train", rec), where, "train")
            samples += 1
        for li, up in enumerate(step["update"]):
            _, C = await net.read_rows(li)
            msg = netio.row_mismatch("counter", li + 1, up["counter_pre"], C, f"step {s} before carry")
            assert msg is None, msg
        bad = model.carry(step["update"], _streams(step["lfsr_in_end"], step["lfsr_end"]))
        assert bad is None, f"step {s}: {bad}"
        for a in net.arrays:
            a.pulses.clear()
        n = await net.op("carry")
        for li, (a, up) in enumerate(zip(net.arrays, step["update"])):  # numpy macros: every pulse
            want = [(i, netio.pack([v == 1 for v in r]), netio.pack([v == -1 for v in r]))
                    for i, r in enumerate(up["carry"])]
            for got_p, want_p in zip(a.pulses + [None] * len(want), want):
                if got_p != want_p:
                    raise AssertionError(f"step {s} carry: " + _pulse_mismatch(li, a.fan_out, want_p, got_p))
            compared += len(want) * a.fan_out
        compared += await _check_state(net, model, f"step {s} after carry")
        compared += _check_clocks(n, netio.op_clocks(net.desc, "carry"), f"step {s}", "carry")
        dut._log.info("step %d: %d samples, every probe, clock count, pulse, weight, counter and LFSR state equal",
                      s, len(step["samples"]))
    train_s = time.perf_counter() - t0
    train_cycles = int(get_sim_time("ns") // PERIOD_NS)
    infer_n = agree = 0
    path = os.environ.get("BSHW_NET_INFER", "").strip()
    if path:
        with open(path) as f:
            inf = json.load(f)
        n_inf = len(inf["pixels"])
        for i, px in enumerate(inf["pixels"]):
            where = f"test sample {i}"
            last = i == n_inf - 1
            n = await net.op("binary", px)
            g_bin = u(dut.pred)
            if every_op or last:
                compared += await _check_state(net, model, f"{where} after binary inference")
            compared += _check_clocks(n, netio.op_clocks(net.desc, "binary"), where, "binary")
            n = await net.op("infer")
            g_vote = u(dut.pred)
            model.infer()
            if every_op or last:
                compared += await _check_state(net, model, f"{where} after stochastic inference")
            compared += _check_clocks(n, netio.op_clocks(net.desc, "infer"), where, "infer")
            infer_n += 1
            agree += int(g_bin == inf["binary"][i] and g_vote == inf["stochastic"][i])  # counted, not assumed
            assert g_bin == inf["binary"][i], \
                f"{where}: signal pred of binary inference expected {inf['binary'][i]}, got {g_bin}"
            assert g_vote == inf["stochastic"][i], \
                f"{where}: signal pred of stochastic inference expected {inf['stochastic'][i]}, got {g_vote}"
    cycles = int(get_sim_time("ns") // PERIOD_NS)
    wall = time.perf_counter() - t0
    per = {name: sum(v) / len(v) for name, v in net.cycles.items()}
    util.record("network_matches_golden", steps=n_steps, samples=samples, compared=compared, cycles=cycles,
                wall_s=wall, cycles_per_s=cycles / wall if wall else 0.0, infer=infer_n, infer_agree=agree,
                train_wall_s=train_s, train_cycles=train_cycles, op_cycles=per, macro=macro, limits=model.limits,
                state_every_op=every_op)
