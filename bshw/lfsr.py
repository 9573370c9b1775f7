"""Leap-ahead Fibonacci LFSR in Amaranth (docs/arithmetic.md §3).

One clock with ``draw`` high is one *draw*: the state advances by ``leap`` single steps at once
(the one-step function unrolled ``leap`` times, a fixed XOR network) and the draw's word is the low
``leap`` bits of the leapt state (bit 0 the newest). Without ``draw`` the state holds (§3: "an LFSR
advances only when its stream draws").
"""

from amaranth.hdl import Cat, Const, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.core import I16, N32
from bshw.core import check_int as _check_int


def _xor(values):
    out = Const(0, 1)
    for v in values:
        out = out ^ v
    return out


class Lfsr(wiring.Component):
    """Shift-left Fibonacci LFSR with leap-ahead draws (§3).

    Parameters
    ----------
    width : int
        State width in bits (>= 2).
    taps : tuple of int
        State bit positions XOR-ed into the new bit 0 (each in ``[0, width)``).
    leap : int
        Steps per draw, ``1 <= leap <= width``: 19 for the default N32 noise stream, 16 for I16.
    init : int
        Reset state, ``1 <= init < 2^width`` (the trace header's initial state; never 0).
    seed_port : bool
        Take the reset state from the ``seed`` input instead of ``init``: one emitted module then
        serves every stream (the network's leaves, bshw/leaves.py), each instance tied to its seed.

    Attributes
    ----------
    draw : In(1)
        High for one clock: leap ``leap`` steps at the clock edge.
    load : In(1)
        High for one clock: the state becomes ``load_value`` (has priority over ``draw``).
    load_value : In(width)
    seed : In(width)
        With ``seed_port``: the state loaded while the domain's reset is high.
    state : Out(width)
        The current state.
    word : Out(leap)
        Combinational: the word of a draw taken this clock, ``leap(state)[leap-1:0]``.
    """

    def __init__(self, width: int, taps, leap: int, init: int = 1, *, seed_port: bool = False):
        self.width = _check_int("width", width, 2)
        taps = tuple(taps)
        if not taps:
            raise ValueError("taps must name at least one bit")
        for t in taps:
            _check_int("tap", t, 0, width - 1)
        self.taps = taps
        self.leap = _check_int("leap", leap, 1, width)
        self.init = _check_int("init", init, 1, (1 << width) - 1)
        self.seed_port = bool(seed_port)
        sig = {"draw": In(1), "load": In(1), "load_value": In(width), "state": Out(width, init=init),
               "word": Out(leap)}
        if self.seed_port:
            sig["seed"] = In(width)
        super().__init__(sig)

    @classmethod
    def n32(cls, leap: int = 19, init: int = 1, *, seed_port: bool = False) -> "Lfsr":
        """The neuron-noise LFSR N32 (taps 31, 21, 1, 0); ``leap`` = the noise bits W (§4)."""
        return cls(N32.width, N32.taps, leap, init, seed_port=seed_port)

    @classmethod
    def i16(cls, init: int = 1, *, seed_port: bool = False) -> "Lfsr":
        """The input-sampling LFSR I16 (taps 15, 14, 12, 3), 16-step leap (§5)."""
        return cls(I16.width, I16.taps, I16.width, init, seed_port=seed_port)

    def elaborate(self, platform):
        m = Module()
        # with a seed port the register is reset-less and loads `seed` during reset instead
        state = Signal(self.width, init=self.init, reset_less=self.seed_port, name="st")
        m.d.comb += self.state.eq(state)
        bits = [state[i] for i in range(self.width)]  # bits[i]: state bit i
        for n in range(self.leap):  # §3: the one-step function unrolled `leap` times
            fb = Signal(name=f"fb{n}")  # a named net per new bit keeps the XOR network linear in size
            m.d.comb += fb.eq(_xor(bits[t] for t in self.taps))
            bits = [fb] + bits[:-1]
        nxt = Cat(*bits)
        m.d.comb += self.word.eq(nxt[: self.leap])
        with m.If(self.load):
            m.d.sync += state.eq(self.load_value)
        with m.Elif(self.draw):
            m.d.sync += state.eq(nxt)
        if self.seed_port:  # later assignment wins: reset loads the seed
            with m.If(ResetSignal()):
                m.d.sync += state.eq(self.seed)
        return m
