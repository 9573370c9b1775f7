"""Per-synapse gradient counter with periodic carry into the weight (docs/arithmetic.md §9)."""

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.lfsr import _check_int


class PeriodicCarry(wiring.Component):
    """One synapse: saturating ``cb``-bit gradient counter and its carry into the weight (§9).

    Parameters
    ----------
    th : int
        Carry threshold, ``1 <= th <= 2^(cb-1) - 1`` (the counter must hold +-th, §12).
    counter_bits : int
        Counter width cb, 2..32.
    wmin, wmax : int
        Weight range (INT8: -128, 127; ternary: -1, 1), ``wmin < 0 < wmax``.
    w_init, c_init : int
        Reset weight and counter.

    Attributes
    ----------
    x : In(1)
        Input of the synapse's row, ``x^{l-1}_i``.
    dy_en, dy_neg : In(1)
        Ternary error of the column on the wire code of §7.
    acc : In(1)
        Accumulate ``c = clamp(c + x * dy, cmin, cmax)`` at this clock edge.
    carry : In(1)
        Carry at this clock edge (applied to the counter after this clock's accumulation, if any):
        ``c >= th`` -> ``w = max(w - 1, wmin)``, ``c = 0``; ``c <= -th`` -> ``w = min(w + 1, wmax)``, ``c = 0``.
    load, w_load, c_load : In
        Load weight and counter (priority over acc/carry).
    w : Out(signed), c : Out(signed)
        Weight and counter registers.
    step : Out(signed(2))
        Combinational: the intended weight step of a carry now (-1, 0, +1), before weight saturation.
    """

    def __init__(self, th: int, counter_bits: int, wmin: int = -128, wmax: int = 127, w_init: int = 0, c_init: int = 0):
        self.counter_bits = cb = _check_int("counter_bits", counter_bits, 2, 32)
        self.cmin, self.cmax = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
        self.th = _check_int("th", th, 1)
        if th > self.cmax:
            raise ValueError(f"th={th} does not fit a {cb}-bit counter (max {self.cmax})")
        self.wmin = _check_int("wmin", wmin, -(1 << 31), -1)
        self.wmax = _check_int("wmax", wmax, 1, (1 << 31) - 1)
        self.w_init = _check_int("w_init", w_init, wmin, wmax)
        self.c_init = _check_int("c_init", c_init, self.cmin, self.cmax)
        self.weight_bits = wb = max((-wmin - 1).bit_length(), wmax.bit_length()) + 1
        super().__init__({
            "x": In(1), "dy_en": In(1), "dy_neg": In(1), "acc": In(1), "carry": In(1),
            "load": In(1), "w_load": In(signed(wb)), "c_load": In(signed(cb)),
            "w": Out(signed(wb), init=w_init), "c": Out(signed(cb), init=c_init), "step": Out(signed(2)),
        })

    def elaborate(self, platform):
        m = Module()
        cb, wb = self.counter_bits, self.weight_bits
        # §9 ternary gradient g = x * dy and saturating accumulation
        g_en = self.x & self.dy_en
        summed = Signal(signed(cb + 1))
        m.d.comb += summed.eq(self.c + Mux(g_en, Mux(self.dy_neg, -1, 1), 0))
        c_acc = Signal(signed(cb))
        m.d.comb += c_acc.eq(Mux(summed > self.cmax, self.cmax, Mux(summed < self.cmin, self.cmin, summed)))
        c_now = Signal(signed(cb))
        m.d.comb += c_now.eq(Mux(self.acc, c_acc, self.c))
        # §9 carry: positive accumulated gradient lowers the weight
        up, down = c_now <= -self.th, c_now >= self.th
        m.d.comb += self.step.eq(Mux(up, 1, Mux(down, -1, 0)))
        with m.If(self.load):
            m.d.sync += [self.w.eq(self.w_load), self.c.eq(self.c_load)]
        with m.Elif(self.carry & (up | down)):
            m.d.sync += self.c.eq(0)  # cleared even when the weight is at its limit
            with m.If(down & (self.w > self.wmin)):
                m.d.sync += self.w.eq(self.w - 1)
            with m.Elif(up & (self.w < self.wmax)):
                m.d.sync += self.w.eq(self.w + 1)
        with m.Else():
            m.d.sync += self.c.eq(c_now)
        return m
