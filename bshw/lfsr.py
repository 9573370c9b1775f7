"""Leap-ahead Fibonacci LFSR in Amaranth (docs/arithmetic.md §3).

One clock with ``draw`` high is one *draw*: the state advances by ``leap`` single steps at once
(the one-step function unrolled ``leap`` times, a fixed XOR network) and the draw's word is the low
``leap`` bits of the leapt state (bit 0 the newest). Without ``draw`` the state holds (§3: "an LFSR
advances only when its stream draws").
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.core import I16, N32, check_int


def check_spec(width, taps, leap) -> tuple:
    """``(width, taps, leap)`` of an LFSR (§3), checked: width >= 2, taps in range, 1 <= leap <= width."""
    width = check_int("width", width, 2)
    taps = tuple(taps)
    if not taps:
        raise ValueError("taps must name at least one bit")
    for t in taps:
        check_int("tap", t, 0, width - 1)
    return width, taps, check_int("leap", leap, 1, width)


def xor_all(values):
    """XOR of a non-empty sequence of equally wide values."""
    values = list(values)
    out = values[0]
    for v in values[1:]:
        out = out ^ v
    return out


def leap_network(m: Module, bits: list, taps, leap: int, name: str = "fb") -> list:
    """The state after ``leap`` single steps (§3), as a list of bits (bit 0 first).

    ``bits[i]`` is state bit i: one bit of one LFSR, or an n-bit plane of a bank of n LFSRs (one step
    is the same XOR for every lane). Each new bit gets a named net, which keeps the XOR network
    linear in size when unrolled.
    """
    bits = list(bits)
    for n in range(leap):  # §3: the one-step function unrolled `leap` times
        fb = Signal(len(bits[0]), name=f"{name}{n}")
        m.d.comb += fb.eq(xor_all(bits[t] for t in taps))
        bits = [fb] + bits[:-1]
    return bits


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

    Attributes
    ----------
    draw : In(1)
        High for one clock: leap ``leap`` steps at the clock edge.
    load : In(1)
        High for one clock: the state becomes ``load_value`` (has priority over ``draw``).
    load_value : In(width)
    state : Out(width)
        The current state.
    word : Out(leap)
        Combinational: the word of a draw taken this clock, ``leap(state)[leap-1:0]``.
    """

    def __init__(self, width: int, taps, leap: int, init: int = 1):
        self.width, self.taps, self.leap = check_spec(width, taps, leap)
        self.init = check_int("init", init, 1, (1 << width) - 1)
        sig = {"draw": In(1), "load": In(1), "load_value": In(width), "state": Out(width, init=init),
               "word": Out(leap)}
        super().__init__(sig)

    @classmethod
    def n32(cls, leap: int = 19, init: int = 1) -> "Lfsr":
        """The neuron-noise LFSR N32 (taps 31, 21, 1, 0); ``leap`` = the noise bits W (§4)."""
        return cls(N32.width, N32.taps, leap, init)

    @classmethod
    def i16(cls, init: int = 1) -> "Lfsr":
        """The input-sampling LFSR I16 (taps 15, 14, 12, 3), 16-step leap (§5)."""
        return cls(I16.width, I16.taps, I16.width, init)

    def elaborate(self, platform):
        m = Module()
        state = Signal(self.width, init=self.init, name="st")
        m.d.comb += self.state.eq(state)
        bits = leap_network(m, [state[i] for i in range(self.width)], self.taps, self.leap)
        nxt = Cat(*bits)
        m.d.comb += self.word.eq(nxt[: self.leap])
        with m.If(self.load):
            m.d.sync += state.eq(self.load_value)
        with m.Elif(self.draw):
            m.d.sync += state.eq(nxt)
        return m


def lfsr_planes(m: Module, width: int, taps, leap: int, inits, *, draw, load, load_sel, load_value, rd_sel,
                name: str = "st"):
    """Build a bank of LFSRs that always draw together (§3, §15 "Banks") in module ``m``: lane ``j``
    is exactly an :class:`Lfsr` with reset state ``inits[j]``, its state held as ``width`` planes of
    ``len(inits)`` bits (plane i: bit i of every lane), the leap :func:`leap_network` on planes. Returns ``(word, rd_state)``: the ``leap`` planes of the word of a draw taken
    this clock and the state of lane ``rd_sel``."""
    n = len(inits)
    planes = [Signal(n, init=sum(((s >> i) & 1) << j for j, s in enumerate(inits)), name=f"{name}{i}")
              for i in range(width)]
    nxt = leap_network(m, planes, taps, leap, f"{name}_fb")  # §3, the same XOR chain as one LFSR's
    # the host port as shifts and masks: a dynamic bit index on the left of an assignment would be
    # lowered to a case over every lane of every plane
    lane = Signal(n, name=f"{name}_lane")
    m.d.comb += lane.eq(Const(1, n) << load_sel)
    with m.If(load):
        for i, p in enumerate(planes):
            m.d.sync += p.eq((p & ~lane) | Mux(load_value[i], lane, 0))
    with m.Elif(draw):
        m.d.sync += [p.eq(v) for p, v in zip(planes, nxt)]
    return nxt[:leap], Cat(*[(p >> rd_sel)[0] for p in planes])
