"""Stochastic sampler of one input pixel (docs/arithmetic.md §3, §5).

Each input pixel has its own I16 LFSR. A draw leaps it 16 steps; the whole new state r (1..65535)
is reduced mod 255 with the byte-sum / end-around-carry circuit of §5 and compared with the pixel:
``x = 1`` iff ``(r mod 255) < pixel``, so ``P(x = 1) = pixel / 255`` over the LFSR period.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.lfsr import Lfsr, _check_int


class InputSampler(wiring.Component):
    """I16 LFSR + mod-255 reduction + compare, with a registered output (§5).

    Parameters
    ----------
    init : int
        Reset state of the I16 LFSR, ``1 <= init < 2^16`` (the trace header's ``lfsr_in`` entry, §11).
    seed_port : bool
        Take the reset state from the ``seed`` input instead (one module for every pixel).

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

    def __init__(self, init: int = 1, *, seed_port: bool = False):
        self.init = _check_int("init", init, 1, (1 << 16) - 1)
        self.seed_port = bool(seed_port)
        sig = {"pixel": In(8), "draw": In(1), "load": In(1), "load_value": In(16), "x": Out(1), "r": Out(16, init=init)}
        if seed_port:
            sig["seed"] = In(16)
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = Lfsr.i16(self.init, seed_port=self.seed_port)
        if self.seed_port:
            m.d.comb += lfsr.seed.eq(self.seed)
        m.d.comb += [lfsr.draw.eq(self.draw), lfsr.load.eq(self.load), lfsr.load_value.eq(self.load_value),
                     self.r.eq(lfsr.state)]
        r = lfsr.word  # §3: the I16 draw's word is the whole leapt state
        # §5: r mod 255 with 256 = 1 (mod 255): byte sum, end-around carry, 255 -> 0
        t = Signal(9)
        t2 = Signal(8)
        u = Signal(8)
        m.d.comb += [t.eq(r[8:16] + r[0:8]), t2.eq(t[0:8] + t[8]), u.eq(Mux(t2 == 255, 0, t2))]
        with m.If(self.draw & ~self.load):
            m.d.sync += self.x.eq(u < self.pixel)
        return m
