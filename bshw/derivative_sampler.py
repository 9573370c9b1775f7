"""Flip-flops of a hidden neuron's draws and the sampled derivative (docs/arithmetic.md §6, Eq. 4)."""

from amaranth.hdl import Module, Value
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bshw.core import check_deriv_k, check_int


class DerivativeSampler(wiring.Component):
    """Latches the ``1 + 2k`` comparator outputs of one sample in the order X, A1, B1, ..., Ak, Bk (§6)
    and forms ``d = OR_m (A_m AND NOT B_m)`` (Eq. 4 and its k-fold OR).

    Parameters
    ----------
    k : int
        Derivative pairs, one of 1, 2, 4 (§6, §12).
    lanes : int
        Neurons handled at once (a layer's bank: they draw together, so one index serves all); 1 for
        a single neuron.

    Attributes
    ----------
    fire : In(lanes)
        The comparator output of this clock's draw.
    draw : In(1)
        This clock is a draw: latch ``fire`` into the flip-flop of draw ``index`` and advance the index
        (it wraps to 0 after B_k, the next sample).
    restart : In(1)
        Force the index back to 0 (the next draw is X); has priority over ``draw``'s advance.
    index : Out(range(1 + 2k))
        Draw number of the next draw (0 = X, 2m-1 = A_m, 2m = B_m).
    x : Out(lanes)
    a, b : Out(k), or Out(ArrayLayout(lanes, k))
        ``A_m`` is bit m-1 of ``a`` (``B_m`` of ``b``); with lanes, element m-1 holds every lane's A_m.
    d : Out(lanes)
        Combinational sampled derivative.
    """

    def __init__(self, k: int = 4, lanes: int = 1):
        check_deriv_k(k, "k")
        self.k = k
        self.lanes = n = check_int("lanes", lanes, 1)
        pairs = Out(k) if n == 1 else Out(data.ArrayLayout(n, k))
        super().__init__({"fire": In(n), "draw": In(1), "restart": In(1), "index": Out(range(1 + 2 * k)),
                          "x": Out(n), "a": pairs, "b": pairs, "d": Out(n)})

    def planes(self, port) -> list:
        """``[A_1, ..., A_k]`` (or B) of ``a`` (or ``b``), each ``lanes`` bits."""
        v, n = Value.cast(port), self.lanes
        return [v[j * n:(j + 1) * n] for j in range(self.k)]

    def elaborate(self, platform):
        m = Module()
        k = self.k
        a, b = self.planes(self.a), self.planes(self.b)
        with m.If(self.draw):  # every lane draws together: one index for the bank
            with m.Switch(self.index):
                with m.Case(0):
                    m.d.sync += self.x.eq(self.fire)
                for j in range(k):
                    with m.Case(2 * j + 1):
                        m.d.sync += a[j].eq(self.fire)
                    with m.Case(2 * j + 2):
                        m.d.sync += b[j].eq(self.fire)
            m.d.sync += self.index.eq(0)
            with m.If(self.index != 2 * k):
                m.d.sync += self.index.eq(self.index + 1)
        with m.If(self.restart):
            m.d.sync += self.index.eq(0)
        m.d.comb += self.d.eq(sampled_derivative(a, b))
        return m


def sampled_derivative(a: list, b: list):
    """Eq. 4 per lane: NOT/AND per pair, OR over the pairs (``a``, ``b``: the A and B planes)."""
    d = a[0] & ~b[0]
    for aj, bj in zip(a[1:], b[1:]):
        d = d | (aj & ~bj)
    return d
