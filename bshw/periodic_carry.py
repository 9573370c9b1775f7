"""Per-synapse gradient counters with periodic carry into the weight (docs/arithmetic.md §9).

The counter rule lives in one place, :func:`counter_next`; :class:`PeriodicCarry` is one synapse
with its own counter and weight registers (the unit the synthesis table counts), and
:class:`CounterBank` is a layer's counters stored row by row and updated one crossbar row per clock
by ``fan_out`` copies of the same rule, the weight steps leaving it as potentiation/depression
pulses for the crossbar (bshw/crossbar.py).
"""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw.lfsr import _check_int


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


def weight_bits(wmin: int, wmax: int) -> int:
    """Two's complement width holding ``[wmin, wmax]``."""
    return max((-wmin - 1).bit_length(), wmax.bit_length()) + 1


def step_weight(v, wmin: int, wmax: int):
    """``clamp(v, wmin, wmax)``: a weight stepped by a pulse stays inside the device range (§9)."""
    return Mux(v > wmax, wmax, Mux(v < wmin, wmin, v))


class CounterBank(wiring.Component):
    """A layer's gradient counters, one row of ``fan_out`` per crossbar row, updated row-serially (§9).

    The counters are stored as ``fan_in`` words of ``fan_out * cb`` bits (column j in bits
    ``[j*cb, (j+1)*cb)``); the row at ``row`` is read combinationally and written back at the clock
    edge by ``fan_out`` copies of :func:`counter_next`.

    Parameters
    ----------
    fan_in, fan_out : int
        Rows (inputs of the layer) and columns (neurons), each >= 1.
    th, counter_bits : int
        Carry threshold and counter width (§9).
    init : list of list of int or None
        Initial counters ``[fan_in][fan_out]`` (None: all zero).

    Attributes
    ----------
    row : In(range(fan_in))
    x : In(1)
        ``x^{l-1}_row``, the input of this row in the sample just run.
    dy_en, dy_neg : In(fan_out)
        The layer's ternary errors (§7 wire code).
    acc, carry : In(1)
        Accumulate ``x * dy`` into the row / carry the row (§9).
    we : In(1), wdata : In(fan_out * cb)
        Host write of the row (priority over acc/carry).
    rdata : Out(fan_out * cb)
        The row's counters now.
    pot, dep : Out(fan_out)
        Potentiation (+1) / depression (-1) pulses of a carry of this row (combinational, only with ``carry``).
    """

    def __init__(self, fan_in: int, fan_out: int, th: int, counter_bits: int, init=None):
        self.fan_in = _check_int("fan_in", fan_in, 1)
        self.fan_out = _check_int("fan_out", fan_out, 1)
        self.cmin, self.cmax = check_counter(th, counter_bits)
        self.th, self.counter_bits = th, counter_bits
        self.init = _pack_rows(init, fan_in, fan_out, counter_bits, self.cmin, self.cmax, "counter")
        w = fan_out * counter_bits
        super().__init__({"row": In(range(fan_in)), "x": In(1), "dy_en": In(fan_out), "dy_neg": In(fan_out),
                          "acc": In(1), "carry": In(1), "we": In(1), "wdata": In(w),
                          "rdata": Out(w), "pot": Out(fan_out), "dep": Out(fan_out)})

    def elaborate(self, platform):
        m = Module()
        cb = self.counter_bits
        m.submodules.store = store = Memory(shape=unsigned(self.fan_out * cb), depth=self.fan_in, init=self.init)
        rd, wr = store.read_port(domain="comb"), store.write_port()
        m.d.comb += [rd.addr.eq(self.row), wr.addr.eq(self.row), self.rdata.eq(rd.data)]
        nxt, pot, dep = [], [], []
        for j in range(self.fan_out):
            c = rd.data[j * cb:(j + 1) * cb].as_signed()
            c_next, step = counter_next(m, c, self.x & self.dy_en[j], self.dy_neg[j], self.acc, self.carry,
                                        self.th, cb, name=f"c{j}")
            nxt.append(c_next)
            pot.append(self.carry & (step == 1))
            dep.append(self.carry & (step == -1))
        m.d.comb += [self.pot.eq(Cat(*pot)), self.dep.eq(Cat(*dep)),
                     wr.en.eq(self.we | self.acc | self.carry),
                     wr.data.eq(Mux(self.we, self.wdata, Cat(*nxt)))]
        return m


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
