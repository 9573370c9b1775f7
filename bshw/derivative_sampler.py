"""Flip-flops of a hidden neuron's draws and the sampled derivative (docs/arithmetic.md §6, Eq. 4)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.lfsr import _check_int


class DerivativeSampler(wiring.Component):
    """Latches the ``1 + 2k`` comparator outputs of one sample in the order X, A1, B1, ..., Ak, Bk (§6)
    and forms ``d = OR_m (A_m AND NOT B_m)`` (Eq. 4 and its k-fold OR).

    Parameters
    ----------
    k : int
        Derivative pairs, one of 1, 2, 4 (§6, §12).

    Attributes
    ----------
    fire : In(1)
        The comparator output of this clock's draw.
    draw : In(1)
        This clock is a draw: latch ``fire`` into the flip-flop of draw ``index`` and advance the index
        (it wraps to 0 after B_k, the next sample).
    restart : In(1)
        Force the index back to 0 (the next draw is X); has priority over ``draw``'s advance.
    index : Out(range(1 + 2k))
        Draw number of the next draw (0 = X, 2m-1 = A_m, 2m = B_m).
    x : Out(1)
    a, b : Out(k)
        ``A_m`` is bit m-1 of ``a``, ``B_m`` bit m-1 of ``b``.
    d : Out(1)
        Combinational sampled derivative.
    """

    def __init__(self, k: int = 4):
        _check_int("k", k, 1)
        if k not in (1, 2, 4):
            raise ValueError(f"k must be 1, 2 or 4, got {k!r}")
        self.k = k
        super().__init__({"fire": In(1), "draw": In(1), "restart": In(1), "index": Out(range(1 + 2 * k)),
                          "x": Out(1), "a": Out(k), "b": Out(k), "d": Out(1)})

    def elaborate(self, platform):
        m = Module()
        k = self.k
        with m.If(self.draw):
            with m.Switch(self.index):
                with m.Case(0):
                    m.d.sync += self.x.eq(self.fire)
                for j in range(k):
                    with m.Case(2 * j + 1):
                        m.d.sync += self.a[j].eq(self.fire)
                    with m.Case(2 * j + 2):
                        m.d.sync += self.b[j].eq(self.fire)
            m.d.sync += self.index.eq(0)
            with m.If(self.index != 2 * k):
                m.d.sync += self.index.eq(self.index + 1)
        with m.If(self.restart):
            m.d.sync += self.index.eq(0)
        m.d.comb += self.d.eq((self.a & ~self.b).any())  # Eq. 4: NOT/AND per pair, OR over pairs
        return m
