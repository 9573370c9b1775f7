"""cocotb bench: the host wrapper (bshw/host_wrapper.py) around the periphery learns and infers exactly
like a golden trace, through its streams and its Wishbone registers (docs/arithmetic.md §11, §15).

The DUT is the host system top (``<prefix>host_system``: the wrapper, the periphery and one
behavioral Verilog macro per layer). The bench talks to it in transactions, through three drivers
in the style of the cocotb examples:

- :class:`WishboneMaster`: ``read(adr)`` / ``write(adr, value, sel)`` as Wishbone B4 classic cycles,
  with random idle clocks between them;
- :class:`StreamSource`: ``send(payload)`` queues a sample; the driver presents it with random gaps in
  ``valid`` and holds it until it is taken;
- :class:`StreamSink`: takes results with ``ready`` dropped at random and hands them to ``get()``.

Model (:class:`HostModel`): :class:`bshw.sim.netio.StateModel` follows the weights, counters and LFSR
states from the trace (its own following checked against the trace at every batch end), and a
scoreboard of the results every sample must produce, in order. The bench loads the trace's initial
state through Wishbone and reads it back; streams every batch's training samples and its CARRY;
reads the counters before the carry and the whole state after it; then classifies test images (the
first through the registers, ``CMD`` START, the rest through the streams) and reads the state once
more. Every result must arrive exactly once and in order, every value bit for bit; a failure names the
first mismatch (place, signal, index, expected, got). The regression seed is logged.

Environment: ``BSHW_HOST_DESC`` (the periphery's description), ``BSHW_HOST_TRACE``,
``BSHW_HOST_INFER`` (optional JSON of :func:`bshw.sim.network.expected_inference`),
``BSHW_HOST_STEPS`` (optional limit). :func:`run_host_bench` builds and runs it.
"""

from __future__ import annotations

import json
import os
from collections import deque
from pathlib import Path

import cocotb
from amaranth.hdl import Shape
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from cocotb.utils import get_sim_time

from bshw.host_wrapper import ID_VALUE, REG, Cmd, Status, result_layout, sample_layout
from bshw.periphery import Op
from bshw.sim import netio, util

PERIOD_NS = 10
TIMEOUT_CLOCKS = 20_000  # the longest wait for an ack or a result before the bench gives up


def u(handle) -> int:
    v = handle.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


class WishboneMaster:
    """Wishbone B4 classic master: one cycle per access (``cyc``/``stb`` until ``ack``), driven on the
    falling edge; ``max_gap`` random idle clocks before each access. Counts the clocks it waited for
    ``ack`` beyond the first (``stalled``)."""

    def __init__(self, dut, prefix: str, rng, max_gap: int = 3):
        self.dut, self.rng, self.max_gap = dut, rng, max_gap
        self.s = {n: getattr(dut, f"{prefix}{n}") for n in ("cyc", "stb", "we", "adr", "dat_w", "sel", "ack", "dat_r")}
        for n in ("cyc", "stb", "we", "adr", "dat_w", "sel"):
            self.s[n].value = 0
        self.accesses = self.stalled = 0

    async def _access(self, adr: int, value: int | None, sel: int = 0xF) -> int:
        s, clk = self.s, self.dut.clk
        for _ in range(self.rng.randint(0, self.max_gap)):
            await FallingEdge(clk)
        await FallingEdge(clk)
        s["adr"].value, s["sel"].value, s["we"].value = adr, sel, int(value is not None)
        s["dat_w"].value = value if value is not None else self.rng.getrandbits(32)  # junk on reads
        s["cyc"].value = s["stb"].value = 1
        waited = 0
        while True:
            await FallingEdge(clk)
            if u(s["ack"]):
                break
            waited += 1
            if waited > TIMEOUT_CLOCKS:
                raise AssertionError(f"wishbone: no ack for {'write' if value is not None else 'read'} of word "
                                     f"{adr:#x} after {TIMEOUT_CLOCKS} clocks")
        data = u(s["dat_r"])
        s["cyc"].value = s["stb"].value = s["we"].value = 0
        self.accesses += 1
        self.stalled += max(0, waited - 1)
        return data

    async def read(self, adr: int) -> int:
        return await self._access(adr, None)

    async def write(self, adr: int, value: int, sel: int = 0xF) -> None:
        await self._access(adr, value & 0xFFFFFFFF, sel)


class StreamSource:
    """Drives an ``amaranth.lib.stream`` sink port (``<prefix>payload``/``valid``/``ready``): ``send``
    queues a payload; each is presented after a random gap (probability ``gap`` per clock of holding
    ``valid`` low, junk on ``payload`` meanwhile) and held until ``valid & ready`` at a clock edge."""

    def __init__(self, dut, prefix: str, rng, gap: float = 0.3):
        self.dut, self.rng, self.gap = dut, rng, gap
        self.payload, self.valid, self.ready = (getattr(dut, f"{prefix}{n}") for n in ("payload", "valid", "ready"))
        self.width = len(self.payload)
        self.queue, self.taken, self.holding = deque(), 0, False
        self.valid.value = 0
        self.payload.value = 0
        cocotb.start_soon(self._run())

    def send(self, payload: int) -> None:
        self.queue.append(payload)

    def idle(self) -> bool:
        """Everything sent has been taken."""
        return not self.queue and not self.holding

    async def _run(self):
        clk = self.dut.clk
        while True:
            await FallingEdge(clk)
            if not self.holding:
                if self.queue and self.rng.random() >= self.gap:
                    self.payload.value, self.holding = self.queue.popleft(), True
                else:
                    self.payload.value = self.rng.getrandbits(self.width)
            self.valid.value = int(self.holding)
            await ReadOnly()  # every driver has written: ready is settled for this clock's edge
            if self.holding and u(self.ready):
                self.holding = False
                self.taken += 1


class StreamSink:
    """Takes an ``amaranth.lib.stream`` source port's payloads: ``ready`` high with probability ``p_ready``
    each clock; every ``valid & ready`` clock's payload goes to ``get()`` in order."""

    def __init__(self, dut, prefix: str, rng, p_ready: float = 0.6):
        self.dut, self.rng, self.p_ready = dut, rng, p_ready
        self.payload, self.valid, self.ready = (getattr(dut, f"{prefix}{n}") for n in ("payload", "valid", "ready"))
        self.items, self.taken_total = deque(), 0
        self.ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        clk = self.dut.clk
        while True:
            await FallingEdge(clk)
            ready = self.rng.random() < self.p_ready
            self.ready.value = int(ready)
            await ReadOnly()
            if ready and u(self.valid):
                self.items.append(u(self.payload))
                self.taken_total += 1

    async def get(self, what: str) -> int:
        waited = 0
        while not self.items:
            await FallingEdge(self.dut.clk)
            waited += 1
            if waited > TIMEOUT_CLOCKS:
                raise AssertionError(f"{what}: signal results never arrived ({TIMEOUT_CLOCKS} clocks)")
        return self.items.popleft()


class ProtocolMonitor:
    """Checks the wrapper's stream rule every clock: no sample is taken (``samples.ready``) while a
    result waits for the sink (``results.valid``). ``violation`` holds the first breach."""

    def __init__(self, dut):
        self.dut, self.violation = dut, None
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.dut
        while self.violation is None:
            await FallingEdge(d.clk)
            await ReadOnly()
            if u(d.results__valid) and u(d.samples__ready):
                self.violation = (f"signal samples.ready high at {get_sim_time('ns')} ns while a result waits "
                                  "(results.valid): a sample would start with a result pending")

    def check(self, where: str):
        assert self.violation is None, f"{where}: {self.violation}"


class HostModel:
    """What the DUT must show: the state (:class:`bshw.sim.netio.StateModel`) and the results every
    streamed sample produces, in order (op, seq, and for INFER/BINARY the class)."""

    def __init__(self, desc, weights, counters, lfsrs):
        self.state = netio.StateModel(desc, weights, counters, lfsrs)
        self.pending = deque()  # (seq, op, pred or None, where)
        self.seq = 0

    def streamed(self, op: Op, where: str, pred: int | None = None) -> int:
        self.pending.append((self.seq % 256, op, pred, where))
        self.seq += 1
        return self.seq - 1

    def check_result(self, payload: int, fields: dict) -> None:
        assert self.pending, f"signal results: an extra result {payload:#x} arrived, none was expected"
        seq, op, pred, where = self.pending.popleft()
        got = {name: (payload >> off) & ((1 << w) - 1) for name, (off, w) in fields.items()}
        if got["seq"] != seq or got["op"] != op.value:
            raise AssertionError(f"{where}: signal result.seq/op expected {seq}/{op.name}, got {got['seq']}/"
                                 f"{Op(got['op']).name} (a result lost, repeated or out of order)")
        if pred is not None and got["pred"] != pred:
            raise AssertionError(f"{where}: signal result.pred of {op.name.lower()} inference expected {pred}, "
                                 f"got {got['pred']}")


class Host:
    """The register-level operations of the wrapper, over :class:`WishboneMaster`."""

    def __init__(self, wb: WishboneMaster, desc: dict, shape: dict):
        self.wb, self.desc = wb, desc
        self.cb = desc["params"]["counter_bits"]
        self.w_words, self.c_words, self.pix_words = shape["w_words"], shape["c_words"], shape["pix_words"]
        self.layer = None

    async def rd(self, name):
        return await self.wb.read(REG[name].addr)

    async def wr(self, name, value, sel=0xF):
        await self.wb.write(REG[name].addr, value, sel)

    async def _row(self, layer, row):
        if layer != self.layer:
            await self.wr("ROW_LAYER", layer)
            self.layer = layer
        await self.wr("ROW_INDEX", row)

    async def _window_write(self, name, word, n):
        await self.wr("WIDX", 0)
        for w in range(n):
            await self.wr(name, word >> (32 * w))

    async def _window_read(self, name, n) -> int:
        await self.wr("WIDX", 0)
        word = 0
        for w in range(n):
            word |= await self.rd(name) << (32 * w)
        return word

    async def write_row(self, layer, row, levels=None, counters=None):
        await self._row(layer, row)
        if levels is not None:
            await self._window_write("LEVELS", netio.pack(levels, self.desc["layers"][layer]["wbits"]), self.w_words)
            await self.wr("CMD", Cmd.WRITE_LEVELS)
        if counters is not None:
            await self._window_write("COUNTERS", netio.pack(counters, self.cb), self.c_words)
            await self.wr("CMD", Cmd.WRITE_COUNTERS)

    async def read_row(self, layer, row) -> tuple:
        d = self.desc["layers"][layer]
        await self._row(layer, row)
        await self.wr("CMD", Cmd.READ_ROW)  # acknowledged once the row is in the buffers
        w = await self._window_read("LEVELS", self.w_words)
        c = await self._window_read("COUNTERS", self.c_words)
        return netio.unpack(w, d["fan_out"], d["wbits"], True), netio.unpack(c, d["fan_out"], self.cb, True)

    async def read_layer(self, layer) -> tuple:
        W, C = [], []
        for i in range(self.desc["layers"][layer]["fan_in"]):
            w, c = await self.read_row(layer, i)
            W.append(w)
            C.append(c)
        return W, C

    async def write_lfsrs(self, states):
        for s, v in enumerate(states):
            await self.wr("LFSR_SEL", s)
            await self.wr("LFSR_DATA", v)

    async def read_lfsrs(self, n) -> list:
        out = []
        for s in range(n):
            await self.wr("LFSR_SEL", s)
            out.append(await self.rd("LFSR_DATA"))
        return out

    async def start(self, op: Op, pixels) -> tuple:
        """One operation from the registers: pixels through the window, CMD START, poll DONE; (pred, op)."""
        await self._window_write("PIXELS", netio.pack(pixels, 8), self.pix_words)
        await self.wr("CMD", Cmd.START | (op.value << 4))
        for _ in range(TIMEOUT_CLOCKS):
            if await self.rd("STATUS") >> Status.DONE & 1:
                break
        else:
            raise AssertionError("signal STATUS.DONE never rose after CMD START")
        r = await self.rd("RESULT")
        assert r >> 18 & 1, f"signal RESULT[18] (started by CMD) expected 1, got 0 (RESULT {r:#x})"
        return r & 0xFFFF, Op(r >> 16 & 3)


async def check_state(host: Host, model: netio.StateModel, sizes, where: str, lfsrs=None) -> int:
    """Read every LFSR state, level and counter through Wishbone; compare with the model (bit for bit)."""
    want = model.lfsr if lfsrs is None else lfsrs
    got = await host.read_lfsrs(len(want))
    bad = next((i for i, (e, g) in enumerate(zip(want, got)) if e != g), None)
    assert bad is None, f"{where}: signal {netio.stream_name(sizes, bad)} expected {want[bad]:#x}, got {got[bad]:#x}"
    n = len(want)
    for li in range(len(sizes) - 1):
        W, C = await host.read_layer(li)
        n += netio.check_layer_state(model, li, W, C, where)
    return n


def _trace(path, limit):
    with open(path) as f:
        header = json.loads(f.readline())
        steps = [json.loads(line) for n, line in enumerate(f) if line.strip() and (limit is None or n < limit)]
    return header, steps


@cocotb.test()
async def host_wrapper_matches_golden(dut):
    """The trace's training and inference through the wrapper's streams and registers, bit for bit."""
    with open(os.environ["BSHW_HOST_DESC"]) as f:
        desc = json.load(f)
    limit = os.environ.get("BSHW_HOST_STEPS", "").strip()
    header, steps = _trace(os.environ["BSHW_HOST_TRACE"], int(limit) if limit else None)
    sizes = desc["sizes"]
    rng = util.rng(dut, "host_wrapper_matches_golden")  # logs the regression seed
    # random stalls on both stream sides, always: gaps in valid at the source, ready dropped at the sink
    src_gap, p_ready, wb_gap = rng.choice([0.2, 0.4, 0.6]), rng.choice([0.3, 0.5, 0.7]), rng.choice([0, 2, 4])
    dut._log.info("network %s, trace seed %s, %d steps; source gap %.1f, sink ready %.1f, bus idle up to %d "
                  "(rerun with SEED=%s)", "-".join(map(str, sizes)), header["seed"], len(steps), src_gap, p_ready,
                  wb_gap, util.regression_seed())
    if header["params"] != desc["params"]:
        raise AssertionError("the trace was made for other hardware parameters than this RTL")

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    wb = WishboneMaster(dut, "wb__", rng, wb_gap)
    src = StreamSource(dut, "samples__", rng, src_gap)
    sink = StreamSink(dut, "results__", rng, p_ready)
    monitor = ProtocolMonitor(dut)
    dut.rst.value = 1
    await FallingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    slay = sample_layout(sizes[0], desc["ports"]["label"]["width"])
    rlay = result_layout(desc["ports"]["pred"]["width"])
    s_off = {name: slay[name].offset for name in ("pixels", "label", "op")}
    r_fields = {name: (rlay[name].offset, Shape.cast(rlay[name].shape).width) for name in ("pred", "op", "seq")}

    def sample(pixels, label, op: Op) -> int:
        return (netio.pack(pixels, 8) << s_off["pixels"]) | (label << s_off["label"]) | (op.value << s_off["op"])

    # -- registers: identity, shape, byte lanes, the error flags ------------------------------------
    assert await wb.read(REG["ID"].addr) == ID_VALUE, "signal ID: wrong identification word"
    shape_w, shape2 = await wb.read(REG["SHAPE"].addr), await wb.read(REG["SHAPE2"].addr)
    wbits, cb = desc["layers"][0]["wbits"], desc["params"]["counter_bits"]
    fo = max(x["fan_out"] for x in desc["layers"])
    shape = {"w_words": shape_w & 0xFFFF, "c_words": shape_w >> 16, "pix_words": shape2 & 0xFFFF}
    want_shape = {"w_words": -(-fo * wbits // 32), "c_words": -(-fo * cb // 32), "pix_words": -(-sizes[0] * 8 // 32)}
    assert shape == want_shape and shape2 >> 16 == sum(sizes), f"signal SHAPE: expected {want_shape}, got {shape}"
    host = Host(wb, desc, shape)
    await host.wr("ROW_INDEX", 0x1234)
    await host.wr("ROW_INDEX", 0xFFFF, sel=0b0001)  # only byte lane 0
    got = await host.rd("ROW_INDEX")
    assert got == 0x12FF, f"signal ROW_INDEX (sel 0b0001 write of 0xffff over 0x1234) expected 0x12ff, got {got:#x}"
    await host.wr("CMD", 0xF)  # no such command
    await host.wr("ROW_LAYER", len(sizes) - 1)  # no such layer
    host.layer = None
    await host.wr("CMD", Cmd.READ_ROW)
    st = await host.rd("STATUS")
    want = (1 << Status.ERR_CMD) | (1 << Status.ERR_RANGE)
    assert st & want == want, f"signal STATUS expected ERR_CMD and ERR_RANGE set, got {st:#x}"
    await host.wr("STATUS", want)
    st = await host.rd("STATUS")
    assert st == 0, f"signal STATUS after clearing the errors expected 0, got {st:#x}"

    # -- out of reset, then the trace's initial state through Wishbone ---------------------------------
    compared = 0
    init = header["init"]
    reset_lfsrs = netio.seed_states(sizes, desc["seed"])
    got = await host.read_lfsrs(len(reset_lfsrs))
    bad = next((i for i, (e, g) in enumerate(zip(reset_lfsrs, got)) if e != g), None)
    assert bad is None, f"after reset: signal {netio.stream_name(sizes, bad)} expected {reset_lfsrs[bad]:#x}, got {got[bad]:#x}"
    lfsrs = list(init["lfsr_in"]) + [s for layer in init["lfsr"] for s in layer]
    for li in range(len(sizes) - 1):
        for i in range(sizes[li]):
            await host.write_row(li, i, levels=init["weights"][li][i], counters=init["counters"][li][i])
    await host.write_lfsrs(lfsrs)
    model = HostModel(desc, init["weights"], init["counters"], lfsrs)
    compared += await check_state(host, model.state, sizes, "after loading")

    async def drain(where: str, levels_fixed: bool = True):
        """Take every pending result, reading STATUS meanwhile (a register that answers during
        operations); a result is lost when the source has handed everything over, the wrapper is idle
        with no result waiting, and the sink holds nothing. With ``levels_fixed`` (no CARRY among the
        pending operations) rows of levels are also read at random meanwhile: READ_ROW waits for the
        operation in flight (the stall), and the levels must be the model's whenever it is answered."""
        nonlocal compared
        polls = 0
        while model.pending:
            while not sink.items:
                if levels_fixed and rng.random() < 0.3:
                    li = rng.randrange(len(sizes) - 1)
                    i = rng.randrange(sizes[li])
                    w, _ = await host.read_row(li, i)
                    msg = netio.row_mismatch("weight", li + 1, [model.state.W[li][i]], [w], f"{where} (row {i} read "
                                             "while streaming)")
                    assert msg is None, msg
                    compared += len(w)
                    continue
                idle = src.idle()
                st = await host.rd("STATUS")
                polls += 1
                if (idle and not st & 0b11 and not sink.items) or polls > TIMEOUT_CLOCKS:
                    seq, op, _, w = model.pending[0]
                    raise AssertionError(f"{w}: signal results: result {seq} ({op.name}) never arrived "
                                         f"(STATUS {st:#x}, {sink.taken_total} results taken)")
            monitor.check(where)
            model.check_result(sink.items.popleft(), r_fields)
            compared += 1

    # -- training: every batch streamed, the counters read before its carry, the state after ---------
    samples = 0
    for step in steps:
        s = step["step"]
        for b, rec in enumerate(step["samples"]):
            src.send(sample(rec["pixels"], step["labels"][b], Op.TRAIN))
            model.streamed(Op.TRAIN, f"step {s} sample {b}")
            model.state.train(rec)
            samples += 1
        await drain(f"step {s}")
        for li, up in enumerate(step["update"]):
            _, C = await host.read_layer(li)
            msg = netio.row_mismatch("counter", li + 1, up["counter_pre"], C, f"step {s} before carry")
            assert msg is None, msg
        bad = model.state.carry(step["update"], list(step["lfsr_in_end"]) + [v for x in step["lfsr_end"] for v in x])
        assert bad is None, f"step {s}: {bad}"
        src.send(sample([0] * sizes[0], 0, Op.CARRY))
        model.streamed(Op.CARRY, f"step {s} carry")
        await drain(f"step {s} carry", levels_fixed=False)
        compared += await check_state(host, model.state, sizes, f"step {s} after carry")
        dut._log.info("step %d: %d samples and the carry through the streams, state equal", s, len(step["samples"]))

    # -- inference: the first image through the registers, the rest through the streams --------------
    infer_n = 0
    path = os.environ.get("BSHW_HOST_INFER", "").strip()
    if path:
        with open(path) as f:
            inf = json.load(f)
        for i, px in enumerate(inf["pixels"]):
            if i == 0:
                for op, want in ((Op.BINARY, inf["binary"][0]), (Op.INFER, inf["stochastic"][0])):
                    pred, gop = await host.start(op, px)
                    assert gop == op, f"test sample 0: signal RESULT op expected {op.name}, got {gop.name}"
                    assert pred == want, (f"test sample 0 (registers): signal pred of {op.name.lower()} inference "
                                          f"expected {want}, got {pred}")
            else:
                src.send(sample(px, 0, Op.BINARY))
                model.streamed(Op.BINARY, f"test sample {i}", inf["binary"][i])
                src.send(sample(px, 0, Op.INFER))
                model.streamed(Op.INFER, f"test sample {i}", inf["stochastic"][i])
            infer_n += 1
        await drain("inference")
        compared += 2 * infer_n
        compared += await check_state(host, model.state, sizes, "after inference", lfsrs=inf["lfsr_end"])

    # -- exactly once: nothing more arrives; the wrapper's counts agree -------------------------------
    for _ in range(50):
        await FallingEdge(dut.clk)
    assert not sink.items, f"signal results: {len(sink.items)} extra result(s) arrived after the last one"
    monitor.check("at the end")
    c = await host.rd("COUNT")
    assert (c & 0xFFFF, c >> 16) == (model.seq % 65536, model.seq % 65536), \
        f"signal COUNT expected {model.seq} samples and results, got {c & 0xFFFF} and {c >> 16}"
    util.record("host_wrapper_matches_golden", steps=len(steps), samples=samples, infer=infer_n,
                results=model.seq, compared=compared, wb_accesses=wb.accesses, wb_stalled=wb.stalled,
                src_gap=src_gap, p_ready=p_ready, wb_gap=wb_gap)


def run_host_bench(trace_path, *, build_dir, rtl_dir=None, infer_samples: int = 0, seed: int | None = None,
                   steps: int | None = None, simulator: str | None = None, waves: bool | None = None) -> dict:
    """Build (or take from ``rtl_dir``) the RTL of the trace's configuration with its host wrapper and
    run this bench on the host system top. Returns :func:`bshw.sim.runner.run_bench`'s dict with
    ``mismatch`` (the first failure message or None)."""
    from bshw.golden.config import TrainConfig
    from bshw.io import atomic_write_text
    from bshw.rtl import generate
    from bshw.sim.runner import run_bench

    build = Path(build_dir)
    with open(trace_path) as f:
        header = json.loads(f.readline())
    if rtl_dir is None:
        rtl_dir = build / "rtl"
        generate(TrainConfig.from_dict(header["config"], where="trace header"), rtl_dir)
    rtl_dir = Path(rtl_dir)
    desc = rtl_dir / "bshw_periphery.json"
    env = {"BSHW_HOST_DESC": str(desc.resolve()), "BSHW_HOST_TRACE": str(Path(trace_path).resolve()),
           "BSHW_HOST_STEPS": "" if steps is None else str(steps)}
    if infer_samples:
        from bshw.golden.exact.trace import load_trace
        from bshw.sim.network import expected_inference

        _, records = load_trace(Path(trace_path), steps)
        inf = build / "infer.json"
        atomic_write_text(inf, json.dumps(expected_inference(header, records[-1], infer_samples)))
        env["BSHW_HOST_INFER"] = str(inf.resolve())
    sources = [rtl_dir / f for f in (rtl_dir / "bshw_host_system.f").read_text().split()]
    res = run_bench("bshw_host_system", sources, "bshw.sim.bench_host_wrapper", build_dir=build / "bench", seed=seed,
                    waves=waves, simulator=simulator, extra_env=env)
    res["mismatch"] = (res["failures"] or [None])[0]
    return res
