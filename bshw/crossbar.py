"""Behavioral model of the analog memristor crossbar (docs/arithmetic.md §2, §8, §9).

NOT part of the synthesizable periphery: in silicon these are conductances and column/row currents
(Methods, "Forward weighted summation"; ``G_ij = G_ref + G0 w_ij``). The model holds the integer
weights and produces exactly the integers the contract defines - the forward sums ``y_j`` and the
backward sums ``dx_i`` - and steps a weight by one level per potentiation/depression pulse, clamped to
the device range. It works one crossbar row per clock (the sums are built row by row into the column
and row registers); the contract fixes the draw order, not cycle numbers (§8), so the integers
are the same as a one-shot analog read. Synthesis (bshw/synth.py) leaves this module out.
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw.lfsr import _check_int
from bshw.periodic_carry import _pack_rows, step_weight, weight_bits


def ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def y_width(fan_in: int, wbits: int) -> int:
    """Signed width of ``y = sum_i x_i W[i, j]`` (§2): ``b + ceil(log2(fan_in))``."""
    return wbits + ceil_log2(fan_in)


def dx_width(fan_out: int, wbits: int) -> int:
    """Signed width of ``dx = sum_j dy_j W[i, j]`` (§2): ``ceil(log2(fan_out 2^(b-1) + 1)) + 1``."""
    return ceil_log2(fan_out * (1 << (wbits - 1)) + 1) + 1


class Crossbar(wiring.Component):
    """Integer crossbar ``W[fan_in][fan_out]``: forward column sums, backward row sums, pulse updates.

    Parameters
    ----------
    fan_in, fan_out : int
        Rows (inputs) and columns (neurons), each >= 1.
    wmin, wmax : int
        Weight (conductance level) range, ``wmin < 0 < wmax`` (INT8: -128, 127; ternary: -1, 1).
    backward : bool
        Build the backward row sums (every layer but the first).
    init : list of list of int or None
        Initial weights ``[fan_in][fan_out]`` (None: all zero).

    Attributes
    ----------
    row : In(range(fan_in))
        The row of this clock's operation (and of the host port).
    clear : In(1)
        Zero the column sums ``y`` (start of a sample).
    fwd, x : In(1)
        Forward: ``y_j += W[row, j]`` for every column j when ``x`` (the row's binary input) is 1.
    y : Out(fan_out * yw)
        Column sums (signed ``yw``-bit fields, column j at ``[j*yw, (j+1)*yw)``).
    bwd : In(1), dy_en, dy_neg : In(fan_out)
        Backward: latch ``dx_row = sum_j dy_j W[row, j]`` with dy on the §7 wire code.
    dx : Out(fan_in * dxw)
        Row sums (signed ``dxw``-bit fields), valid for the rows latched since the sample began.
    pot, dep : In(fan_out)
        Pulses on the row: ``W[row, j] += 1`` (pot) / ``-= 1`` (dep), clamped to ``[wmin, wmax]``.
    we : In(1), wdata : In(fan_out * b)
        Host write of the row; ``rdata`` : Out(fan_out * b) the row now.
    """

    def __init__(self, fan_in: int, fan_out: int, wmin: int = -128, wmax: int = 127, *, backward: bool = True,
                 init=None):
        self.fan_in = _check_int("fan_in", fan_in, 1)
        self.fan_out = _check_int("fan_out", fan_out, 1)
        self.wmin = _check_int("wmin", wmin, -(1 << 31), -1)
        self.wmax = _check_int("wmax", wmax, 1, (1 << 31) - 1)
        self.wbits = b = weight_bits(wmin, wmax)
        self.yw, self.dxw = y_width(fan_in, b), dx_width(fan_out, b)
        if self.yw > 64 or self.dxw > 64:
            raise ValueError(f"a {fan_in}x{fan_out} crossbar of {b}-bit weights needs sums wider than 64 bits")
        self.backward = bool(backward)
        self.init = _pack_rows(init, fan_in, fan_out, b, wmin, wmax, "weight")
        sig = {"row": In(range(fan_in)), "clear": In(1), "fwd": In(1), "x": In(1), "y": Out(fan_out * self.yw),
               "pot": In(fan_out), "dep": In(fan_out),
               "we": In(1), "wdata": In(fan_out * b), "rdata": Out(fan_out * b)}
        if self.backward:
            sig.update(bwd=In(1), dy_en=In(fan_out), dy_neg=In(fan_out), dx=Out(fan_in * self.dxw))
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        b, n = self.wbits, self.fan_out
        m.submodules.levels = levels = Memory(shape=unsigned(n * b), depth=self.fan_in, init=self.init)
        rd, wr = levels.read_port(domain="comb"), levels.write_port()
        m.d.comb += [rd.addr.eq(self.row), wr.addr.eq(self.row), self.rdata.eq(rd.data)]
        w = [rd.data[j * b:(j + 1) * b].as_signed() for j in range(n)]

        # forward: column currents, summed row by row into the column registers (§2)
        for j in range(n):
            yj = self.y[j * self.yw:(j + 1) * self.yw].as_signed()
            with m.If(self.clear):
                m.d.sync += yj.eq(0)
            with m.Elif(self.fwd & self.x):
                m.d.sync += yj.eq(yj + w[j])

        # backward: the row current of ternary column drives dy (§2, §7 wire code)
        if self.backward:
            terms = [Mux(self.dy_en[j], Mux(self.dy_neg[j], -w[j], w[j]), 0) for j in range(n)]
            total = Signal(signed(self.dxw))
            m.d.comb += total.eq(sum(terms[1:], terms[0]))
            with m.If(self.bwd):
                m.d.sync += self.dx.word_select(self.row, self.dxw).eq(total)

        # update: one level per pulse, held inside the device range (§9)
        stepped = [step_weight(w[j] + self.pot[j] - self.dep[j], self.wmin, self.wmax) for j in range(n)]
        m.d.comb += [wr.en.eq(self.we | (self.pot | self.dep).any()),
                     wr.data.eq(Mux(self.we, self.wdata, Cat(*[s[:b] for s in stepped])))]
        return m
