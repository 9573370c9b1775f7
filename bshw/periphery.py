"""The synthesizable periphery top: input samplers, neurons, counter memories and the sequencer,
with one crossbar-macro interface per layer (docs/arithmetic.md §8, §15).

Transaction interface (a bench hands over a whole sample, then reads the result):

1. Set ``pixels`` (and ``label``), pulse ``start`` for one clock with ``op`` (:class:`Op`):
   ``TRAIN`` (one sample: input draw, forward with X/A/B draws, backward, accumulate),
   ``CARRY`` (the batch-end carry of every counter, §9), ``INFER`` (one stochastic vote, §8
   "Inference"), ``BINARY`` (binary inference: no draws, ``x^0 = p >= 128``, ``x^l = y^l > 0``).
2. ``busy`` rises with the next clock; ``done`` is high for the operation's last clock. Results
   (``pred``, and with ``probes`` every sampled bit, sum and error) then hold until the next ``start``.

Host ports (only while not busy), the sub-interface ``host`` (:class:`HostSignature`; Verilog ports
``host__<name>``): ``mem_layer``/``mem_row`` address a row of a layer; ``mem_we_w`` programs the
row's levels in the macro, ``mem_we_c`` writes its counters; ``mem_re`` reads both, ``mem_rvalid``
marks when ``mem_rdata_w``/``mem_rdata_c`` hold the row. ``lfsr_sel`` addresses an LFSR in the trace
header's order (``lfsr_in``, then ``lfsr`` layer by layer), ``lfsr_we``/``lfsr_wdata`` load it,
``lfsr_rdata`` reads it one clock later (a synchronous read). The host wrapper (bshw/host_wrapper.py)
drives them from Wishbone registers.

Every stream draws exactly the §8 draws in order; :func:`bshw.core.op_cycles` gives the clocks per
operation.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from bshw.core import INPUT_LANES, check_int, check_lanes, op_cycles  # noqa: F401  (op_cycles: the §15 clock formula)
from bshw.counter_memory import CounterMemory
from bshw.hwparams import HwParams
from bshw.input_sampler import InputSamplerBank
from bshw.macro import CrossbarMacroSignature
from bshw.neuron_periphery import NeuronBank, OutputNeuronBank


class Op(enum.Enum, shape=2):
    """Operation codes of the ``op`` port (§15)."""

    TRAIN = 0
    CARRY = 1
    INFER = 2
    BINARY = 3


class HostSignature(wiring.Signature):
    """The periphery's host ports (docs/arithmetic.md §15 "Host ports"), from the host's side: the
    host drives the row address, strobes and data (``Out``) and reads ``mem_rvalid``, the row read
    and the selected LFSR's state (``In``). The periphery's member ``host`` is ``In(HostSignature)``.

    Parameters
    ----------
    n_layers : int
        Weight layers (``mem_layer`` addresses them, 0-based).
    n_rows : int
        The most rows of a layer (its fan-in; ``mem_row``).
    w_row_bits, c_row_bits : int
        Bits of a row of levels / of counters (the widest layer's fan-out times the level / counter width).
    n_streams : int
        LFSR streams (every pixel and every neuron; ``lfsr_sel``).
    """

    def __init__(self, n_layers: int, n_rows: int, w_row_bits: int, c_row_bits: int, n_streams: int):
        for name, v in (("n_layers", n_layers), ("n_rows", n_rows), ("w_row_bits", w_row_bits),
                        ("c_row_bits", c_row_bits), ("n_streams", n_streams)):
            check_int(name, v, 1)
        super().__init__({
            "mem_layer": Out(range(max(n_layers, 2))), "mem_row": Out(range(max(n_rows, 2))),
            "mem_we_w": Out(1), "mem_we_c": Out(1), "mem_re": Out(1), "mem_rvalid": In(1),
            "mem_wdata_w": Out(w_row_bits), "mem_wdata_c": Out(c_row_bits),
            "mem_rdata_w": In(w_row_bits), "mem_rdata_c": In(c_row_bits),
            "lfsr_sel": Out(range(n_streams)), "lfsr_we": Out(1), "lfsr_wdata": Out(32), "lfsr_rdata": In(32)})


class BshwPeriphery(wiring.Component):
    """The digital periphery of a fully connected binary stochastic network with on-chip learning.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, n1, ..., nL]`` (>= 2 entries).
    params : bshw.hwparams.HwParams or dict
        The resolved hardware parameters (validated there; a dict is read by ``HwParams.from_dict``);
        ``output`` must be ``onchip``. The golden side derives them from a training configuration
        (``bshw.golden.exact.ExactParams.resolve``); the HDL takes them as they are.
    seeds : dict or None
        Reset states of the LFSRs as in the trace header's ``init`` (``lfsr_in``, ``lfsr``); None: all 1.
    counters : list or None
        Initial counters ``[fan_in][fan_out]`` per layer (None: zero, §10).
    probes : bool
        Add the debug probe outputs (every sampled bit, sum and error; the benches use them).
    read_latency : int
        Clocks from a macro read strobe to its data (>= 1), :class:`bshw.macro.CrossbarMacroSignature`.
    bank_cols : int, list of int or None
        Counter-memory columns per bank, for every layer or per layer (must divide the layer's
        fan-out); None: :func:`bshw.counter_memory.default_bank_cols`.
    input_lanes : int
        Pixels the input samplers draw per clock (a power of two, 1-256): their I16 states sit in
        memory, ``input_lanes`` per word, walked word by word (:class:`bshw.input_sampler.InputSamplerBank`).
    """

    def __init__(self, sizes, params: HwParams | dict, *, seeds: dict | None = None, counters=None, probes: bool = False,
                 read_latency: int = 1, bank_cols=None, input_lanes: int = INPUT_LANES):
        # A refused configuration raises from here: the half-built design (and any counter memory
        # already made) is not an unused one, so Amaranth must not warn about it when collected.
        try:
            self._construct(sizes, params, seeds=seeds, counters=counters, probes=probes, read_latency=read_latency,
                            bank_cols=bank_cols, input_lanes=input_lanes)
        except Exception:
            for obj in [self, *getattr(self, "counters", [])]:
                obj._MustUse__silence = True
            raise

    def _construct(self, sizes, params: HwParams | dict, *, seeds: dict | None = None, counters=None, probes: bool = False,
                   read_latency: int = 1, bank_cols=None, input_lanes: int = INPUT_LANES):
        sizes = [check_int("layer size", n, 1) for n in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and at least one layer, got {sizes!r}")
        P = HwParams.from_dict(params)  # every rule of §12 checked there, once
        if P.output != "onchip":
            raise ValueError(f"output = {P.output!r}: the RTL implements the onchip output layer (§7)")
        self.sizes, self.L, self.params, self.probes = sizes, len(sizes) - 1, P, bool(probes)
        self.k = P.deriv_k
        self.read_latency = check_int("read_latency", read_latency, 1, 16)
        self.input_lanes = check_lanes(input_lanes)
        L = self.L
        if bank_cols is None or isinstance(bank_cols, int):
            bank_cols = [bank_cols] * L
        if len(bank_cols) != L:
            raise ValueError(f"bank_cols needs one entry per layer ({L}), got {bank_cols!r}")
        # the macros first: their width checks refuse an impossible size before anything is allocated
        self.macros = [CrossbarMacroSignature(sizes[li], sizes[li + 1], P.wmin, P.wmax, backward=li > 0,
                                              read_latency=read_latency) for li in range(L)]
        seeds = seeds or {}
        lfsr_in = list(seeds.get("lfsr_in") or [1] * sizes[0])
        lfsr = seeds.get("lfsr") or [[1] * n for n in sizes[1:]]
        if len(lfsr_in) != sizes[0] or [len(s or []) for s in lfsr] != sizes[1:]:
            raise ValueError(f"seeds need {sizes[0]} input and {sizes[1:]} neuron states")
        self.seeds = {"lfsr_in": [check_int("input seed", s, 1, 0xFFFF) for s in lfsr_in],
                      "lfsr": [[check_int("neuron seed", s, 1, 0xFFFFFFFF) for s in layer] for layer in lfsr]}
        self.counters = []  # filled one by one: a refused layer leaves the ones before it reachable
        for li in range(L):
            self.counters.append(CounterMemory(sizes[li], sizes[li + 1], P.th, P.counter_bits,
                                               bank_cols=bank_cols[li], init=None if counters is None else counters[li]))
        wb, cb = self.macros[0].wbits, P.counter_bits
        self.w_row_bits = max(sizes[1:]) * wb
        self.c_row_bits = max(sizes[1:]) * cb
        self.n_streams = sum(sizes)
        n_out = max(sizes[-1], 2)
        sig = {"start": In(1), "op": In(Op), "busy": Out(1), "done": Out(1),
               "pixels": In(data.ArrayLayout(8, sizes[0])), "label": In(range(n_out)), "pred": Out(range(n_out)),
               "host": In(HostSignature(L, max(sizes[:-1]), self.w_row_bits, self.c_row_bits, self.n_streams))}
        for li, mac in enumerate(self.macros):
            sig[f"xb{li + 1}"] = Out(mac)
        if self.probes:
            k = self.k
            sig["x0"] = Out(sizes[0])
            for li, mac in enumerate(self.macros):
                n, l = sizes[li + 1], li + 1
                sig.update({f"y{l}": Out(n * mac.yw), f"x{l}": Out(n), f"dy_en{l}": Out(n), f"dy_neg{l}": Out(n)})
                if li < L - 1:
                    dxw = self.macros[li + 1].dxw
                    sig.update({f"a{l}": Out(k * n), f"b{l}": Out(k * n), f"d{l}": Out(n), f"dx{l}": Out(n * dxw),
                                f"dz_en{l}": Out(n), f"dz_neg{l}": Out(n)})
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        L, k, sizes, P, lat = self.L, self.k, self.sizes, self.params, self.read_latency
        xbs = [getattr(self, f"xb{li + 1}") for li in range(L)]
        busy = Signal()
        op = Signal(Op)
        binary, train = op == Op.BINARY, op == Op.TRAIN
        m.d.comb += self.busy.eq(busy)
        host = ~busy

        # -- input samplers (§5) and neurons (§4, §6, §7): one bit-sliced bank per layer (§15 "Banks") --
        # Host LFSR port: stream s is lane s - offset of the bank whose range holds it (the trace
        # header's order: pixels, then layer by layer).
        draw_in, restart = Signal(), Signal()
        draw = [Signal(name=f"draw{li + 1}") for li in range(L)]
        banks = [InputSamplerBank(self.seeds["lfsr_in"], lanes=self.input_lanes)]
        for li in range(L):
            n, mac = sizes[li + 1], self.macros[li]
            if li < L - 1:
                # n_upper = 1: the `gated` rule's OR over the layer above's en lines is one gate per
                # layer (below), its output shared by the layer's neurons (§7)
                banks.append(NeuronBank(mac.yw, self.macros[li + 1].dxw, k, P.tie, tuple(P.noise_words), 1,
                                        self.seeds["lfsr"][li]))
            else:
                banks.append(OutputNeuronBank(mac.yw, tuple(P.noise_words), self.seeds["lfsr"][li]))
        # The read is synchronous (§15 host ports): the input states are read from their memory, and
        # the neuron banks' states are registered to the same one clock.
        offset, rdata, in_mine = 0, Const(0, 32), Signal()
        for bi, bank in enumerate(banks):
            m.submodules["input_samplers" if bi == 0 else f"neurons{bi}"] = bank
            n = bank.n
            mine = (self.host.lfsr_sel >= offset) & (self.host.lfsr_sel < offset + n)
            lane = Signal(range(max(n, 2)), name=f"lfsr_lane{bi}")
            m.d.comb += [lane.eq(self.host.lfsr_sel - offset), bank.load.eq(self.host.lfsr_we & host & mine),
                         bank.load_sel.eq(lane), bank.rd_sel.eq(lane), bank.load_value.eq(self.host.lfsr_wdata)]
            if bi == 0:
                m.d.sync += in_mine.eq(mine)
            else:
                rdata = Mux(mine, bank.rd_state, rdata)
            offset += n
        neuron_rdata = Signal(32)
        m.d.sync += neuron_rdata.eq(rdata)
        m.d.comb += self.host.lfsr_rdata.eq(Mux(in_mine, banks[0].rd_state, neuron_rdata))
        inputs, neurons = banks[0], banks[1:]
        m.d.comb += [inputs.pixels.eq(self.pixels), inputs.draw.eq(draw_in)]
        x0 = inputs.x
        layer_x = [nb.x for nb in neurons]
        for li, nb in enumerate(neurons):
            m.d.comb += [nb.y.eq(xbs[li].y), nb.draw.eq(draw[li])]
            if li < L - 1:
                m.d.comb += nb.restart.eq(restart)
        dy_en, dy_neg = [], []
        target = Signal(sizes[-1])
        m.d.comb += target.eq(Const(1, sizes[-1]) << self.label)
        for li in range(L):
            en, neg = Signal(sizes[li + 1], name=f"dy_en{li + 1}_bits"), Signal(sizes[li + 1], name=f"dy_neg{li + 1}_bits")
            if li < L - 1:  # §7: sign of dx on this layer's rows of the macro above, tie rule, dy = dz d
                m.d.comb += [neurons[li].dx.eq(xbs[li + 1].dx), en.eq(neurons[li].en), neg.eq(neurons[li].neg)]
            else:  # §7 onchip output: dy = x - t
                m.d.comb += [en.eq(layer_x[li] ^ target), neg.eq(target & ~layer_x[li])]
            dy_en.append(en)
            dy_neg.append(neg)
        for li in range(L - 1):  # §7 `gated`: one OR over the layer above's en lines
            upper_any = Signal(name=f"upper_any{li + 1}")
            m.d.comb += upper_any.eq(dy_en[li + 1].any())
            m.d.comb += neurons[li].upper_en.eq(upper_any)

        # -- the macros' drive: binary rows and ternary columns (§2, §8) -------------------------------
        pix_msb = Cat(*[self.pixels[i][7] for i in range(sizes[0])])
        xsrc = [Signal(n, name=f"row_drive{li + 1}") for li, n in enumerate(sizes[:-1])]
        m.d.comb += xsrc[0].eq(Mux(binary, pix_msb, x0))
        for li in range(L - 1):
            ypos = Cat(*[xbs[li].y[j] > 0 for j in range(sizes[li + 1])])
            m.d.comb += xsrc[li + 1].eq(Mux(binary, ypos, layer_x[li]))
        for li in range(L):
            m.d.comb += xbs[li].x.eq(xsrc[li])
            if li > 0:
                m.d.comb += [xbs[li].dy_en.eq(dy_en[li]), xbs[li].dy_neg.eq(dy_neg[li])]

        # -- counter memories (§9) and the host's row port -------------------------------------------
        acc_start, carry_start = Signal(), Signal()
        for li, cm in enumerate(self.counters):
            m.submodules[f"counters{li + 1}"] = cm
            xb, here = xbs[li], host & (self.host.mem_layer == li)
            cb, n = cm.counter_bits, cm.fan_out
            m.d.comb += [cm.acc_start.eq(acc_start), cm.carry_start.eq(carry_start), cm.x.eq(xsrc[li]),
                         cm.dy_en.eq(dy_en[li]), cm.dy_neg.eq(dy_neg[li]),
                         xb.upd.eq(cm.upd), xb.upd_row.eq(cm.upd_row), xb.pot.eq(cm.pot), xb.dep.eq(cm.dep),
                         cm.host_row.eq(self.host.mem_row), cm.host_we.eq(self.host.mem_we_c & here),
                         cm.host_wdata.eq(self.host.mem_wdata_c[:n * cb]), cm.host_re.eq(self.host.mem_re & here),
                         xb.prog_row.eq(self.host.mem_row), xb.prog_we.eq(self.host.mem_we_w & here),
                         xb.prog_re.eq(self.host.mem_re & here),
                         xb.prog_wdata.eq(self.host.mem_wdata_w[:n * self.macros[li].wbits])]
        with m.Switch(self.host.mem_layer):
            for li in range(L):
                with m.Case(li):
                    m.d.comb += [self.host.mem_rdata_w.eq(xbs[li].prog_rdata.as_value()),
                                 self.host.mem_rdata_c.eq(self.counters[li].host_rdata.as_value())]
        rvalid = Signal(max(lat, 2))  # the macro answers after `lat` clocks, the counters after 2
        m.d.sync += rvalid.eq(Cat(self.host.mem_re & host, rvalid))
        m.d.comb += self.host.mem_rvalid.eq(rvalid[-1])
        walking = Cat(*[cm.busy for cm in self.counters]).any()

        # argmax of the output sums, lowest index on ties (§8 inference)
        yo = xbs[-1].y
        best, best_y = Const(0, self.pred.shape()), yo[0]
        for j in range(1, sizes[-1]):
            take = yo[j] > best_y
            best, best_y = Mux(take, j, best), Mux(take, yo[j], best_y)
        m.d.comb += self.pred.eq(best)

        if self.probes:
            m.d.comb += self.x0.eq(x0)
            for li in range(L):
                l = li + 1
                m.d.comb += [getattr(self, f"y{l}").eq(xbs[li].y.as_value()), getattr(self, f"x{l}").eq(layer_x[li]),
                             getattr(self, f"dy_en{l}").eq(dy_en[li]), getattr(self, f"dy_neg{l}").eq(dy_neg[li])]
                if li < L - 1:
                    nb = neurons[li]
                    m.d.comb += [getattr(self, f"a{l}").eq(nb.a.as_value()), getattr(self, f"b{l}").eq(nb.b.as_value()),
                                 getattr(self, f"d{l}").eq(nb.d), getattr(self, f"dx{l}").eq(xbs[li + 1].dx.as_value()),
                                 getattr(self, f"dz_en{l}").eq(nb.dz_en), getattr(self, f"dz_neg{l}").eq(nb.dz_neg)]

        # -- sequencer (§8 order; the clocks of each phase in bshw.core.op_cycles) -------------------------------
        dcount = Signal(range(2 * k + 2))
        wcount = Signal(range(max(lat, 2)))

        def read_then(state, strobe, go):
            """``state`` strobes a macro read; ``go()`` picks the next state once its data is valid."""
            with m.State(state):
                m.d.comb += strobe.eq(1)
                if lat == 1:
                    go()
                else:
                    m.d.sync += wcount.eq(0)
                    m.next = state + "_WAIT"
            if lat > 1:
                with m.State(state + "_WAIT"):
                    with m.If(wcount == lat - 2):
                        go()
                    with m.Else():
                        m.d.sync += wcount.eq(wcount + 1)

        def after_draws(li):
            if li < L - 1:
                m.next = f"FWD{li + 1}"
            else:
                m.next = f"BWD{L - 1}" if L > 1 else "ACC"

        # §5: TRAIN and INFER start the input walk in their start clock (IDLE is exactly ~busy). A plain
        # assignment, not a branch of the FSM: a simulator evaluates it at time 0, while the FSM's
        # combinational block waits for an event on its inputs (Icarus in SystemVerilog mode), and a
        # draw strobe unknown after reset would leave the input walk unknown until the first operation.
        m.d.comb += draw_in.eq(self.start & ~busy & ((self.op == Op.TRAIN) | (self.op == Op.INFER)))
        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [op.eq(self.op), dcount.eq(0), busy.eq(1)]
                    m.d.comb += restart.eq(1)  # the next draw of every neuron is X (§6)
                    with m.Switch(self.op):
                        with m.Case(Op.TRAIN, Op.INFER):  # §5: the input walk's first word is read now
                            m.next = "SAMPLE"
                        with m.Case(Op.BINARY):
                            m.next = "FWD0"
                        with m.Case(Op.CARRY):  # §9: every layer's counters walk every row at once
                            m.d.comb += carry_start.eq(1)
                            m.next = "WALK"
            with m.State("SAMPLE"):  # §5: every pixel's I16 stream draws once, input_lanes a clock
                with m.If(inputs.last):
                    m.next = "FWD0"
            for li in range(L):
                hidden = li < L - 1

                def go(li=li, hidden=hidden):
                    with m.If(binary):
                        m.next = f"FWD{li + 1}" if hidden else "FIN"
                    with m.Elif(train | hidden):
                        m.next = f"DRAW{li}"
                    with m.Else():  # stochastic inference: the output layer draws nothing
                        m.next = "FIN"

                read_then(f"FWD{li}", xbs[li].fwd, go)  # §2 forward: all column sums at once
                with m.State(f"DRAW{li}"):  # §6: X, A1, B1, ..., Ak, Bk (hidden, training) or X only
                    m.d.comb += draw[li].eq(1)
                    last = (dcount == 2 * k) if hidden else Const(1)
                    with m.If(last | ~train):
                        m.d.sync += dcount.eq(0)
                        after_draws(li)
                    with m.Else():
                        m.d.sync += dcount.eq(dcount + 1)
                if li > 0:  # §7: dx on layer li's rows from macro li + 1, top layer down
                    def back(li=li):
                        m.next = f"BWD{li - 1}" if li > 1 else "ACC"

                    read_then(f"BWD{li}", xbs[li].bwd, back)
            with m.State("ACC"):  # §9: every layer accumulates x (outer) dy at once, rows with x_i = 1
                m.d.comb += acc_start.eq(1)
                m.next = "WALK"
            with m.State("WALK"):
                with m.If(~walking):
                    m.next = "FIN"
            with m.State("FIN"):
                m.d.comb += self.done.eq(1)
                m.d.sync += busy.eq(0)
                m.next = "IDLE"
        return m
