"""Stochastic sampler of one input pixel (docs/arithmetic.md §3, §5).

Each input pixel has its own I16 LFSR. A draw leaps it 16 steps; the whole new state r (1..65535)
is reduced mod 255 with the byte-sum / end-around-carry circuit of §5 and compared with the pixel:
``x = 1`` iff ``(r mod 255) < pixel``, so ``P(x = 1) = pixel / 255`` over the LFSR period.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bshw.core import I16, check_int
from bshw.lfsr import Lfsr, lfsr_planes


def sampled_input(m, r, pixel, suffix: str = ""):
    """§5: ``x = (r mod 255) < pixel`` for a 16-bit draw ``r`` and an 8-bit ``pixel``. ``r mod 255``
    uses 256 = 1 (mod 255): the byte sum, its end-around carry, then 255 -> 0."""
    t, t2, u = Signal(9, name=f"t{suffix}"), Signal(8, name=f"t2{suffix}"), Signal(8, name=f"u{suffix}")
    m.d.comb += [t.eq(r[8:16] + r[0:8]), t2.eq(t[0:8] + t[8]),  # t <= 510: no second carry
                 u.eq(Mux(t2 == 255, 0, t2))]
    return u < pixel


class InputSampler(wiring.Component):
    """I16 LFSR + mod-255 reduction + compare, with a registered output (§5).

    Parameters
    ----------
    init : int
        Reset state of the I16 LFSR, ``1 <= init < 2^16`` (the trace header's ``lfsr_in`` entry, §11).

    Attributes
    ----------
    pixel : In(8)
        The pixel value p (uint8), held during the draw.
    draw : In(1)
        High for one clock: leap the LFSR 16 steps and latch ``x`` for the new state.
    load, load_value : In(1), In(16)
        Load the LFSR state (priority over ``draw``; ``x`` is not updated).
    x : Out(1)
        Registered binary input of the last draw.
    r : Out(16)
        The LFSR state: after a draw, the draw's r (§5, the trace's ``"r"``).
    """

    def __init__(self, init: int = 1):
        self.init = check_int("init", init, 1, (1 << 16) - 1)
        sig = {"pixel": In(8), "draw": In(1), "load": In(1), "load_value": In(16), "x": Out(1), "r": Out(16, init=init)}
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = Lfsr.i16(self.init)
        m.d.comb += [lfsr.draw.eq(self.draw), lfsr.load.eq(self.load), lfsr.load_value.eq(self.load_value),
                     self.r.eq(lfsr.state)]
        r = lfsr.word  # §3: the I16 draw's word is the whole leapt state
        fire = sampled_input(m, r, self.pixel)
        with m.If(self.draw & ~self.load):
            m.d.sync += self.x.eq(fire)
        return m


class InputSamplerBank(wiring.Component):
    """Every input pixel's sampler at once (§5, §15 "Banks"). Lane ``j`` is exactly an
    :class:`InputSampler` with reset state ``inits[j]``. The I16 states are 16 bit planes
    (:func:`bshw.lfsr.lfsr_planes`, bshw/bitslice.py); the mod-255 compare is per pixel.

    Parameters
    ----------
    inits : sequence of int
        Reset state of each pixel's I16 LFSR (the trace header's ``lfsr_in``, §11).

    Attributes
    ----------
    pixels : In(ArrayLayout(8, n))
        The sample's pixels, held during the draw.
    draw : In(1)
        Every stream draws once; ``x`` latches the new bits.
    load, load_sel, load_value : In(1), In(range(n)), In(16)
        Load one stream's state (the host port; ``x`` is not updated).
    rd_sel : In(range(n)), rd_state : Out(16)
        Read one stream's state.
    x : Out(n)
        Registered binary inputs of the last draw.
    """

    def __init__(self, inits):
        inits = list(inits)
        if not inits:
            raise ValueError("a bank needs at least one lane")
        self.inits = [check_int("init", s, 1, (1 << 16) - 1) for s in inits]
        self.n = n = len(inits)
        super().__init__({"pixels": In(data.ArrayLayout(8, n)), "draw": In(1), "load": In(1),
                          "load_sel": In(range(max(n, 2))), "load_value": In(16),
                          "rd_sel": In(range(max(n, 2))), "rd_state": Out(16), "x": Out(n)})

    def elaborate(self, platform):
        m = Module()
        n = self.n
        word, rd_state = lfsr_planes(m, I16.width, I16.taps, I16.width, self.inits, draw=self.draw, load=self.load,
                                     load_sel=self.load_sel, load_value=self.load_value, rd_sel=self.rd_sel)
        m.d.comb += self.rd_state.eq(rd_state)
        # §3: the I16 draw's word is the whole leapt state; §5's arithmetic per pixel, where synthesis
        # maps it onto carry chains
        fire = Cat(*[sampled_input(m, Cat(*[p[j] for p in word]), self.pixels[j], f"_{j}") for j in range(n)])
        with m.If(self.draw & ~self.load):
            m.d.sync += self.x.eq(fire)
        return m
