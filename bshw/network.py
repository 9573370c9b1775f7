"""Network top: input samplers, layers and crossbars, and the sequencer that runs one training
sample, one batch-end carry, or one inference pass in the schedule of docs/arithmetic.md §8.

Transaction interface (a bench hands over a whole sample, then reads the result):

1. Set ``pixels`` (and ``label``), pulse ``start`` for one clock with ``op``:
   ``OP_TRAIN`` (one sample: input draw, forward with X/A/B draws, backward, accumulate),
   ``OP_CARRY`` (the batch-end carry cycle on every counter, §9),
   ``OP_INFER`` (one stochastic vote: input draw, one X draw per hidden layer, §8 "Inference"),
   ``OP_BINARY`` (binary inference: no draws, ``x^0 = p >= 128``, ``x^l = y^l > 0``).
2. Wait for ``done`` (one clock, ``busy`` falls with it). The probes (``x0``, ``y<l>``, ``x<l>``,
   ``a<l>``, ``b<l>``, ``d<l>``, ``dx<l>``, ``dz_*<l>``, ``dy_*<l>``, ``pred``) then hold the sample's
   values until the next ``start``; during ``OP_CARRY`` the pulses appear on ``pulse_*``.

Host ports, used while not busy: ``mem_*`` reads/writes a crossbar row of weights or counters,
``lfsr_*`` reads/writes an LFSR state (stream order: the input pixels, then the neurons of layer 1,
2, ... - the trace header's ``lfsr_in`` then ``lfsr``).

Per-stream draw order (the contract, §8) is kept exactly; the cycle count per sample is
``1 + sum_l (fan_in_l + draws_l) + sum_{l>=2} fan_in_l + sum_l fan_in_l + 2`` (row-serial crossbar model).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.crossbar import Crossbar
from bshw.input_sampler import InputSampler
from bshw.layer import LayerPeriphery
from bshw.lfsr import _check_int

OP_TRAIN, OP_CARRY, OP_INFER, OP_BINARY = 0, 1, 2, 3


class BshwNet(wiring.Component):
    """A fully connected binary stochastic network with on-chip learning (§1-§9).

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[n0, n1, ..., nL]``: n0 input pixels, nL = output neurons (>= 2 entries).
    params : dict
        The resolved hardware parameters (``golden.exact.ExactParams.resolve``: noise_words, deriv_k,
        tie, output, th, counter_bits, wmin, wmax). ``output`` must be ``onchip``.
    init : dict or None
        Reset state as in the trace header's ``init`` (``weights``, ``counters`` [fan_in][fan_out] per
        layer, ``lfsr_in``, ``lfsr``); None: zero weights and counters, LFSR states 1.
    """

    def __init__(self, sizes, params: dict, init: dict | None = None):
        sizes = [_check_int("layer size", n, 1) for n in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and at least one layer, got {sizes!r}")
        if params.get("output", "onchip") != "onchip":
            raise ValueError(f"output = {params['output']!r}: the RTL implements the onchip output layer (§7)")
        self.sizes, self.L, self.params = sizes, len(sizes) - 1, dict(params)
        P = self.params
        self.k = k = _check_int("deriv_k", P["deriv_k"], 1)
        init = init or {}
        W, C = init.get("weights"), init.get("counters")
        lfsr_in, lfsr = init.get("lfsr_in") or [1] * sizes[0], init.get("lfsr") or [None] * self.L
        self.samplers = [InputSampler(init=s) for s in lfsr_in]
        if len(self.samplers) != sizes[0]:
            raise ValueError(f"init.lfsr_in needs {sizes[0]} states, got {len(self.samplers)}")
        self.crossbars, self.layers = [], []
        for li in range(self.L):
            fi, fo = sizes[li], sizes[li + 1]
            hidden = li < self.L - 1
            self.crossbars.append(Crossbar(fi, fo, P["wmin"], P["wmax"], backward=li > 0,
                                           init=None if W is None else W[li]))
            self.layers.append(LayerPeriphery(
                fi, fo, hidden=hidden, n_upper=sizes[li + 2] if hidden else 1, k=k,
                noise_words=tuple(P["noise_words"]), tie=P["tie"], th=P["th"], counter_bits=P["counter_bits"],
                wmin=P["wmin"], wmax=P["wmax"], lfsr_init=lfsr[li], counter_init=None if C is None else C[li]))
        self.n_streams = sum(sizes)
        self.max_rows = max(sizes[:-1])
        self.w_row_bits = max(c.fan_out * c.wbits for c in self.crossbars)
        self.c_row_bits = max(lp.fan_out * P["counter_bits"] for lp in self.layers)
        self.max_out = max(sizes[1:])
        sig = {"start": In(1), "op": In(2), "busy": Out(1), "done": Out(1),
               "pixels": In(8 * sizes[0]), "label": In(range(max(sizes[-1], 2))), "pred": Out(range(max(sizes[-1], 2))),
               "x0": Out(sizes[0]),
               "mem_layer": In(range(max(self.L, 2))), "mem_row": In(range(max(self.max_rows, 2))),
               "mem_we_w": In(1), "mem_we_c": In(1), "mem_wdata_w": In(self.w_row_bits),
               "mem_wdata_c": In(self.c_row_bits), "mem_rdata_w": Out(self.w_row_bits),
               "mem_rdata_c": Out(self.c_row_bits),
               "lfsr_sel": In(range(self.n_streams)), "lfsr_we": In(1), "lfsr_wdata": In(32), "lfsr_rdata": Out(32),
               "pulse_valid": Out(1), "pulse_layer": Out(range(max(self.L, 2))),
               "pulse_row": Out(range(max(self.max_rows, 2))),
               "pulse_pot": Out(self.max_out), "pulse_dep": Out(self.max_out)}
        for li, (xb, lp) in enumerate(zip(self.crossbars, self.layers)):
            n, l = lp.fan_out, li + 1
            sig.update({f"y{l}": Out(n * xb.yw), f"x{l}": Out(n), f"dy_en{l}": Out(n), f"dy_neg{l}": Out(n)})
            if lp.hidden:
                sig.update({f"a{l}": Out(k * n), f"b{l}": Out(k * n), f"d{l}": Out(n), f"dx{l}": Out(n * lp.dxw),
                            f"dz_en{l}": Out(n), f"dz_neg{l}": Out(n)})
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        L, k, sizes = self.L, self.k, self.sizes
        xbs, lps = self.crossbars, self.layers
        for i, s in enumerate(self.samplers):
            m.submodules[f"pixel{i}"] = s
        for li in range(L):
            m.submodules[f"crossbar{li + 1}"] = xbs[li]
            m.submodules[f"layer{li + 1}"] = lps[li]

        op = Signal(2)  # the running operation, latched at start
        row = Signal(range(max(self.max_rows, 2)))
        dcount = Signal(range(2 * k + 2))
        busy = Signal()
        binary, train = op == OP_BINARY, op == OP_TRAIN
        m.d.comb += self.busy.eq(busy)

        # -- datapath wiring ----------------------------------------------------------------------
        pix = [self.pixels[8 * i:8 * i + 8] for i in range(sizes[0])]
        draw_in = Signal()
        for i, s in enumerate(self.samplers):  # §5: pixel against its I16 draw
            m.d.comb += [s.pixel.eq(pix[i]), s.draw.eq(draw_in),
                         s.load.eq(self.lfsr_we & ~busy & (self.lfsr_sel == i)), s.load_value.eq(self.lfsr_wdata)]
        x0 = Cat(*[s.x for s in self.samplers])
        m.d.comb += self.x0.eq(x0)
        # the binary input of every crossbar: sampled bits, or in binary inference x = p >= 128, y > 0 (§8)
        xsrc = [Mux(binary, Cat(*[p[7] for p in pix]), x0)]
        for li in range(L - 1):
            xb = xbs[li]
            ypos = Cat(*[xb.y[j * xb.yw:(j + 1) * xb.yw].as_signed() > 0 for j in range(xb.fan_out)])
            xsrc.append(Mux(binary, ypos, lps[li].x))
        target = Signal(sizes[-1])
        m.d.comb += target.eq(Const(1, sizes[-1]) << self.label)

        addr_row = Mux(busy, row, self.mem_row)
        stream = sizes[0]
        for li in range(L):
            xb, lp, l = xbs[li], lps[li], li + 1
            sel = (self.mem_layer == li) & ~busy
            m.d.comb += [xb.row.eq(addr_row), lp.row.eq(addr_row),
                         xb.x.eq(xsrc[li].bit_select(row, 1)), lp.x_row.eq(xsrc[li].bit_select(row, 1)),
                         lp.y.eq(xb.y), xb.pot.eq(lp.pot), xb.dep.eq(lp.dep),
                         xb.we.eq(self.mem_we_w & sel), xb.wdata.eq(self.mem_wdata_w),
                         lp.c_we.eq(self.mem_we_c & sel), lp.c_wdata.eq(self.mem_wdata_c),
                         lp.lfsr_wdata.eq(self.lfsr_wdata),
                         getattr(self, f"y{l}").eq(xb.y), getattr(self, f"x{l}").eq(lp.x),
                         getattr(self, f"dy_en{l}").eq(lp.dy_en), getattr(self, f"dy_neg{l}").eq(lp.dy_neg)]
            for j in range(lp.fan_out):
                m.d.comb += lp.lfsr_we[j].eq(self.lfsr_we & ~busy & (self.lfsr_sel == stream + j))
            stream += lp.fan_out
            if li > 0:  # backward through this crossbar: the error of its own layer drives the columns
                m.d.comb += [xb.dy_en.eq(lp.dy_en), xb.dy_neg.eq(lp.dy_neg)]
            if lp.hidden:  # §7: the sign comparators sit on this layer's rows of the crossbar above
                up = lps[li + 1]
                m.d.comb += [lp.dx.eq(xbs[li + 1].dx), lp.upper_en.eq(up.dy_en)]
                for name in ("a", "b", "d", "dz_en", "dz_neg"):
                    m.d.comb += getattr(self, f"{name}{l}").eq(getattr(lp, name))
                m.d.comb += getattr(self, f"dx{l}").eq(xbs[li + 1].dx)
            else:
                m.d.comb += lp.target.eq(target)
        with m.Switch(self.mem_layer):  # host read of the addressed row
            for li in range(L):
                with m.Case(li):
                    m.d.comb += [self.mem_rdata_w.eq(xbs[li].rdata), self.mem_rdata_c.eq(lps[li].c_rdata)]
        states = [s.r for s in self.samplers]  # the I16 state
        for lp in lps:
            states += [lp.lfsr_state[32 * j:32 * (j + 1)] for j in range(lp.fan_out)]
        m.d.comb += self.lfsr_rdata.eq(Array(states)[self.lfsr_sel])

        # argmax of the output sums, lowest index on ties (§8 inference)
        xo = xbs[-1]
        best, best_y = Const(0, self.pred.shape()), xo.y[0:xo.yw].as_signed()
        for j in range(1, xo.fan_out):
            yj = xo.y[j * xo.yw:(j + 1) * xo.yw].as_signed()
            take = yj > best_y
            best, best_y = Mux(take, j, best), Mux(take, yj, best_y)
        m.d.comb += self.pred.eq(best)

        # -- sequencer (§8 schedule) ----------------------------------------------------------------
        def rows_then(li_rows, nxt):
            """Advance ``row`` over ``li_rows`` rows; after the last go to ``nxt`` (row back to 0)."""
            with m.If(row == li_rows - 1):
                m.d.sync += row.eq(0)
                m.next = nxt
            with m.Else():
                m.d.sync += row.eq(row + 1)

        def after_fwd(li):  # where a finished forward/draw of layer li goes
            if li < L - 1:
                return f"FWD{li + 1}"
            return f"BWD{L - 1}" if L > 1 else "ACC0"

        with m.FSM(init="IDLE"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [op.eq(self.op), row.eq(0), dcount.eq(0), busy.eq(1)]
                    m.d.comb += [xb.clear.eq(1) for xb in xbs]
                    m.d.comb += [lp.restart.eq(1) for lp in lps]  # the next draw of every neuron is X (§6)
                    with m.Switch(self.op):
                        with m.Case(OP_TRAIN, OP_INFER):
                            m.next = "SAMPLE"
                        with m.Case(OP_BINARY):
                            m.next = "FWD0"
                        with m.Case(OP_CARRY):
                            m.next = "CARRY0"
            with m.State("SAMPLE"):  # §5: every pixel's I16 stream draws once
                m.d.comb += draw_in.eq(1)
                m.next = "FWD0"
            for li in range(L):
                hidden = li < L - 1
                with m.State(f"FWD{li}"):  # §2 forward sums, one crossbar row per clock
                    m.d.comb += xbs[li].fwd.eq(1)
                    with m.If(row == sizes[li] - 1):
                        m.d.sync += row.eq(0)
                        with m.If(binary):
                            m.next = f"FWD{li + 1}" if hidden else "FIN"
                        with m.Elif(train | hidden):
                            m.next = f"DRAW{li}"
                        with m.Else():  # stochastic inference: the output layer draws nothing
                            m.next = "FIN"
                    with m.Else():
                        m.d.sync += row.eq(row + 1)
                with m.State(f"DRAW{li}"):  # §6: X, A1, B1, ..., Ak, Bk (hidden, training) or X only
                    m.d.comb += lps[li].draw.eq(1)
                    last = (dcount == 2 * k) if hidden else Const(1)
                    with m.If(last | ~train):
                        m.d.sync += dcount.eq(0)
                        m.next = (f"FWD{li + 1}" if hidden else after_fwd(li))
                    with m.Else():
                        m.d.sync += dcount.eq(dcount + 1)
                if li > 0:
                    with m.State(f"BWD{li}"):  # §7: dx of layer li's rows, top layer down
                        m.d.comb += xbs[li].bwd.eq(1)
                        rows_then(sizes[li], f"BWD{li - 1}" if li > 1 else "ACC0")
                with m.State(f"ACC{li}"):  # §9 accumulate x^{l-1} (outer) dy^l, saturating
                    m.d.comb += lps[li].acc.eq(1)
                    rows_then(sizes[li], f"ACC{li + 1}" if li < L - 1 else "FIN")
                with m.State(f"CARRY{li}"):  # §9 carry: pulses from the counters step the crossbar
                    m.d.comb += [lps[li].carry.eq(1), self.pulse_valid.eq(1), self.pulse_layer.eq(li),
                                 self.pulse_pot.eq(lps[li].pot), self.pulse_dep.eq(lps[li].dep)]
                    rows_then(sizes[li], f"CARRY{li + 1}" if li < L - 1 else "FIN")
            with m.State("FIN"):
                m.d.comb += self.done.eq(1)
                m.d.sync += busy.eq(0)
                m.next = "IDLE"
        m.d.comb += self.pulse_row.eq(row)
        return m
