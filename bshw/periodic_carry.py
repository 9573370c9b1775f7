"""Per-synapse gradient counters with periodic carry into the weight (docs/arithmetic.md §9).

The counter rule lives in one place, :func:`counter_next`; :class:`PeriodicCarry` is one synapse
with its own counter and weight registers (the unit the synthesis table counts), and
:class:`CounterRule` is the rule alone, the lane that a layer's counter memory
(bshw/counter_memory.py) applies to each column of the row it walks; the weight steps leave it as
potentiation/depression pulses for the crossbar macro (bshw/macro.py).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw.lfsr import _check_int
from bshw.macro import weight_bits


def check_counter(th, counter_bits):
    """Validate ``(th, counter_bits)`` (§9, §12); return ``(cmin, cmax)``."""
    cb = _check_int("counter_bits", counter_bits, 2, 32)
    _check_int("th", th, 1)
    cmax = (1 << (cb - 1)) - 1
    if th > cmax:
        raise ValueError(f"th={th} does not fit a {cb}-bit counter (max {cmax})")
    return -(1 << (cb - 1)), cmax


def counter_next(m, c, g_en, g_neg, acc, carry, th, counter_bits, name="cnt"):
    """Add the §9 counter rule for one synapse to ``m``; return ``(c_next, step)`` signals.

    ``acc``: ``c = clamp(c + g)`` with ``g = -1 if g_neg else +1`` where ``g_en`` (the ternary gradient
    ``x * dy``); ``carry`` (after this clock's accumulation, if any): ``c >= th`` -> step -1,
    ``c <= -th`` -> step +1, and the counter clears; else step 0. Positive accumulated gradient lowers
    the weight (gradient descent, Methods "Periodical carry").
    """
    cmin, cmax = check_counter(th, counter_bits)
    cb = counter_bits
    summed = Signal(signed(cb + 1), name=f"{name}_sum")
    m.d.comb += summed.eq(c + Mux(g_en, Mux(g_neg, -1, 1), 0))
    c_now = Signal(signed(cb), name=f"{name}_now")
    m.d.comb += c_now.eq(Mux(acc, Mux(summed > cmax, cmax, Mux(summed < cmin, cmin, summed)), c))
    up, down = c_now <= -th, c_now >= th
    step = Signal(signed(2), name=f"{name}_step")
    c_next = Signal(signed(cb), name=f"{name}_next")
    m.d.comb += [step.eq(Mux(up, 1, Mux(down, -1, 0))),
                 c_next.eq(Mux(carry & (up | down), 0, c_now))]  # cleared even at a weight limit
    return c_next, step


class CounterRule(wiring.Component):
    """The §9 rule of one counter, no storage: the lane a counter memory applies to each column of the
    row it reads (bshw/counter_memory.py), emitted once and instantiated per column (bshw/leaves.py).

    Attributes
    ----------
    c : In(signed(cb))
        The counter read from memory.
    g_en, g_neg : In(1)
        The ternary gradient ``x * dy`` on the §7 wire code.
    acc, carry : In(1)
        Accumulate / carry this row (see :func:`counter_next`).
    c_next : Out(signed(cb))
        The counter to write back.
    pot, dep : Out(1)
        The carry's weight step: potentiation (+1) / depression (-1) pulse (only with ``carry``).
    """

    def __init__(self, th: int, counter_bits: int):
        check_counter(th, counter_bits)
        self.th, self.counter_bits = th, counter_bits
        super().__init__({"c": In(signed(counter_bits)), "g_en": In(1), "g_neg": In(1), "acc": In(1),
                          "carry": In(1), "c_next": Out(signed(counter_bits)), "pot": Out(1), "dep": Out(1)})

    def elaborate(self, platform):
        m = Module()
        c_next, step = counter_next(m, self.c, self.g_en, self.g_neg, self.acc, self.carry, self.th,
                                    self.counter_bits)
        m.d.comb += [self.c_next.eq(c_next), self.pot.eq(self.carry & (step == 1)),
                     self.dep.eq(self.carry & (step == -1))]
        return m


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
        self.cmin, self.cmax = check_counter(th, counter_bits)
        self.th, self.counter_bits = th, cb = th, counter_bits
        self.wmin = _check_int("wmin", wmin, -(1 << 31), -1)
        self.wmax = _check_int("wmax", wmax, 1, (1 << 31) - 1)
        self.w_init = _check_int("w_init", w_init, wmin, wmax)
        self.c_init = _check_int("c_init", c_init, self.cmin, self.cmax)
        self.weight_bits = wb = weight_bits(wmin, wmax)
        super().__init__({
            "x": In(1), "dy_en": In(1), "dy_neg": In(1), "acc": In(1), "carry": In(1),
            "load": In(1), "w_load": In(signed(wb)), "c_load": In(signed(cb)),
            "w": Out(signed(wb), init=w_init), "c": Out(signed(cb), init=c_init), "step": Out(signed(2)),
        })

    def elaborate(self, platform):
        m = Module()
        c_next, step = counter_next(m, self.c, self.x & self.dy_en, self.dy_neg, self.acc, self.carry,
                                    self.th, self.counter_bits)
        m.d.comb += self.step.eq(step)
        with m.If(self.load):
            m.d.sync += [self.w.eq(self.w_load), self.c.eq(self.c_load)]
        with m.Else():
            m.d.sync += self.c.eq(c_next)
            with m.If(self.carry):
                m.d.sync += self.w.eq(step_weight(self.w + step, self.wmin, self.wmax))
        return m


def step_weight(v, wmin: int, wmax: int):
    """``clamp(v, wmin, wmax)``: a weight stepped by a pulse stays inside the device range (§9)."""
    return Mux(v > wmax, wmax, Mux(v < wmin, wmin, v))


def _pack_rows(init, rows, cols, bits, lo, hi, what):
    """``[rows][cols]`` signed ints -> one unsigned word per row (column j in bits [j*bits, ...))."""
    if init is None:
        return [0] * rows
    if len(init) != rows or any(len(r) != cols for r in init):
        raise ValueError(f"initial {what}s must be {rows} rows of {cols}, got a different shape")
    words = []
    for r in init:
        word = 0
        for j, v in enumerate(r):
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"initial {what} {v!r} outside [{lo}, {hi}]")
            word |= (v & ((1 << bits) - 1)) << (j * bits)
        words.append(word)
    return words
