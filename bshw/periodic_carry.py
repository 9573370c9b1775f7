"""Per-synapse gradient counters with periodic carry into the weight (docs/arithmetic.md §9).

The counter rule lives in one place, :func:`counter_next`; :class:`PeriodicCarry` is one synapse
with its own counter and weight registers (the unit the synthesis table counts), and
:class:`CounterRule` is the rule alone, the lane that a layer's counter memory
(bshw/counter_memory.py) applies to each column of the row it walks; the weight steps leave it as
potentiation/depression pulses for the crossbar macro (bshw/macro.py).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw import bitslice as bs
from bshw import core
from bshw.core import check_int
from bshw.macro import weight_bits


def check_counter(th, counter_bits):
    """Validate ``(th, counter_bits)`` (§9, §12, :func:`bshw.core.check_counter`); return ``(cmin, cmax)``."""
    _, cb = core.check_counter(th, counter_bits)
    return -(1 << (cb - 1)), (1 << (cb - 1)) - 1


def counter_planes(m, c: list, g_en, g_neg, acc, carry, th: int, counter_bits: int, n: int, name: str = "cnt"):
    """The §9 counter rule for ``n`` counters at once, on bit planes (bshw/bitslice.py); returns
    ``(c_next, up, down)``: the planes of the counters to write back, and where a carry now steps the
    weight up (potentiation pulse) or down (depression); the pulses are ``carry & up`` and ``carry & down``.

    ``c``: the planes of the signed counters; ``g_en``, ``g_neg``: the ternary gradient ``x * dy`` of
    each counter on the §7 wire code; ``acc`` (1 bit): ``c = clamp(c + g)``, ``g = -1 if g_neg else
    +1`` where ``g_en``; ``carry`` (1 bit, after this clock's accumulation, if any): ``c >= th`` ->
    step -1 (``dep``), ``c <= -th`` -> step +1 (``pot``), and the counter clears; else step 0.
    Positive accumulated gradient lowers the weight (gradient descent, Methods "Periodical carry").
    """
    cmin, cmax = check_counter(th, counter_bits)
    cb = counter_bits
    ones = Const((1 << n) - 1, n)

    def equals(planes, value, tag):  # per lane: the counter is the constant
        bits = [p if (value >> i) & 1 else ~p for i, p in enumerate(planes)]
        return bs.net(m, bs.all_set(bits), tag)

    def offset(planes):  # signed -> unsigned order: flip the sign bit
        return list(planes[:-1]) + [bs.net(m, ~planes[-1], f"{name}_off{len(planes)}")]

    # c + 1 (carry chain through the ones) and c - 1 (borrow chain through the zeros), saturating
    up_c, dn_c, inc, dec = ones, ones, [], []
    for i, p in enumerate(c):
        inc.append(bs.net(m, p ^ up_c, f"{name}_inc{i}"))
        dec.append(bs.net(m, p ^ dn_c, f"{name}_dec{i}"))
        up_c = bs.net(m, up_c & p, f"{name}_incc{i}")
        dn_c = bs.net(m, dn_c & ~p, f"{name}_decc{i}")
    sel_inc = bs.net(m, acc.replicate(n) & g_en & ~g_neg & ~equals(c, cmax & ((1 << cb) - 1), f"{name}_at_max"),
                     f"{name}_sel_inc")
    sel_dec = bs.net(m, acc.replicate(n) & g_en & g_neg & ~equals(c, cmin & ((1 << cb) - 1), f"{name}_at_min"),
                     f"{name}_sel_dec")
    keep = bs.net(m, ~(sel_inc | sel_dec), f"{name}_keep")
    c_now = [bs.net(m, (sel_inc & a) | (sel_dec & b) | (keep & p), f"{name}_now{i}")
             for i, (a, b, p) in enumerate(zip(inc, dec, c))]
    # c_now <= -th and c_now >= th, as unsigned comparisons of the offset values
    lo = bs.less_than(m, offset(bs.const_planes(-th, cb, n)), offset(c_now), n, f"{name}_gt_neg_th")
    hi = bs.less_than(m, offset(c_now), offset(bs.const_planes(th, cb, n)), n, f"{name}_lt_th")
    up, down = bs.net(m, ~lo, f"{name}_up"), bs.net(m, ~hi, f"{name}_down")
    fire = carry.replicate(n)
    clear = bs.net(m, fire & (up | down), f"{name}_clear")  # cleared even at a weight limit
    c_next = [bs.net(m, p & ~clear, f"{name}_next{i}") for i, p in enumerate(c_now)]
    return c_next, up, down


def counter_next(m, c, g_en, g_neg, acc, carry, th, counter_bits, name="cnt"):
    """:func:`counter_planes` for one counter; return ``(c_next, step)`` signals (step +1: a
    potentiation pulse, -1: depression)."""
    planes, up, down = counter_planes(m, [c[i] for i in range(counter_bits)], g_en, g_neg, acc, carry, th,
                                      counter_bits, 1, name)
    c_next = Signal(signed(counter_bits), name=f"{name}_next")
    step = Signal(signed(2), name=f"{name}_step")
    m.d.comb += [c_next.eq(Cat(*planes)), step.eq(Mux(up, 1, Mux(down, -1, 0)))]
    return c_next, step


class CounterRule(wiring.Component):
    """The §9 rule of one counter, no storage: the lane a counter memory applies to each column of the
    row it reads (bshw/counter_memory.py), applied to every column at once (:func:`counter_planes`).

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
        c_next, up, down = counter_planes(m, [self.c[i] for i in range(self.counter_bits)], self.g_en, self.g_neg,
                                          self.acc, self.carry, self.th, self.counter_bits, 1)
        m.d.comb += [self.c_next.eq(Cat(*c_next)), self.pot.eq(self.carry & up), self.dep.eq(self.carry & down)]
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
        self.wmin = check_int("wmin", wmin, -(1 << 31), -1)
        self.wmax = check_int("wmax", wmax, 1, (1 << 31) - 1)
        self.w_init = check_int("w_init", w_init, wmin, wmax)
        self.c_init = check_int("c_init", c_init, self.cmin, self.cmax)
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
