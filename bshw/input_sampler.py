"""Stochastic sampler of one input pixel (docs/arithmetic.md §3, §5).

Each input pixel has its own I16 LFSR. A draw leaps it 16 steps; the whole new state r (1..65535)
is reduced mod 255 with the byte-sum / end-around-carry circuit of §5 and compared with the pixel:
``x = 1`` iff ``(r mod 255) < pixel``, so ``P(x = 1) = pixel / 255`` over the LFSR period.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from bshw.core import I16, check_int, check_lanes, sample_words
from bshw.lfsr import Lfsr, leap_network


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
    """Every input pixel's sampler, its I16 states in synchronous memory, walked ``lanes`` pixels per
    clock (§5, §15 "Input samplers").

    The ``n`` states sit in one ``lib.memory.Memory`` of ``ceil(n / lanes)`` words, word ``w`` holding
    streams ``w lanes .. w lanes + lanes - 1`` (``ArrayLayout(16, lanes)``; synthesis maps it to
    block RAM). A draw walks the words in order through a two-stage pipeline: stage 1 addresses word
    ``w``; stage 2 leaps its ``lanes`` states 16 steps (the single LFSR's XOR chain on ``lanes``-bit
    planes, :func:`bshw.lfsr.leap_network`), compares each with its pixel (§5) and writes the states
    back, while the next word is read. The drawn bits shift into ``x`` ``lanes`` at a time. The walk's
    area is ``lanes`` samplers and one word of memory instead of ``n`` of each; what it costs is
    ``ceil(n / lanes) - 1`` clocks per draw over a bank that draws every pixel in one clock
    (:func:`bshw.core.op_cycles`). Lane ``j`` is exactly an :class:`InputSampler` with reset state
    ``inits[j]``.

    Parameters
    ----------
    inits : sequence of int
        Reset state of each pixel's I16 LFSR (the trace header's ``lfsr_in``, §11).
    lanes : int
        Streams per memory word and samplers in stage 2 (a power of two, 1-256).

    Attributes
    ----------
    pixels : In(ArrayLayout(8, n))
        The sample's pixels, held from ``draw`` to the end of the walk.
    draw : In(1)
        One clock, while not ``busy``: every stream draws once, word by word (stage 1 of word 0 is
        this clock). A ``load`` in the same clock is ignored.
    busy, last : Out(1)
        A walk's stage 2 is running; it is at its last word (``x`` is complete after this clock).
    load, load_sel, load_value : In(1), In(range(n)), In(16)
        Load one stream's state (the host port, while not ``busy``; ``x`` is not updated).
    rd_sel : In(range(n)), rd_state : Out(16)
        Read one stream's state: ``rd_state`` is the state of the stream ``rd_sel`` named on the
        clock before (a synchronous read of the memory), while not ``busy``.
    x : Out(n)
        The binary inputs of the last draw, complete from the clock after ``last``.
    """

    def __init__(self, inits, lanes: int = 16):
        inits = list(inits)
        if not inits:
            raise ValueError("a bank needs at least one lane")
        self.inits = [check_int("init", s, 1, (1 << 16) - 1) for s in inits]
        self.n = n = len(inits)
        self.lanes = check_lanes(lanes, "lanes")
        self.words = sample_words(n, self.lanes)
        super().__init__({"pixels": In(data.ArrayLayout(8, n)), "draw": In(1), "busy": Out(1), "last": Out(1),
                          "load": In(1), "load_sel": In(range(max(n, 2))), "load_value": In(16),
                          "rd_sel": In(range(max(n, 2))), "rd_state": Out(16), "x": Out(n)})

    def elaborate(self, platform):
        m = Module()
        n, G, W = self.n, self.lanes, self.words
        shift = G.bit_length() - 1  # stream s: word s >> shift, lane s & (G - 1)
        # padding lanes of the last word hold state 1 and draw like the others; their bits are dropped
        padded = self.inits + [1] * (W * G - n)
        # at least two words: a one-word memory has a zero-width address, which Verilog cannot declare
        mem = Memory(shape=data.ArrayLayout(16, G), depth=max(W, 2),
                     init=[padded[w * G:(w + 1) * G] for w in range(W)])
        m.submodules.states = mem
        rd, wr = mem.read_port(), mem.write_port(granularity=1)
        wr_range = range(max(W, 2))

        def word_of(sel):
            return (sel >> shift) if W > 1 else Const(0, 1)

        # -- stage 1: the word to read (the walk's next word, or the host's stream) --------------------
        s2_valid, s2_word = Signal(), Signal(wr_range)
        issue, next_word = Signal(), Signal(wr_range)
        m.d.comb += [issue.eq(self.draw | (s2_valid & (s2_word != W - 1))),
                     next_word.eq(Mux(self.draw, 0, s2_word + 1))]
        m.d.comb += rd.addr.eq(Mux(issue, next_word, word_of(self.rd_sel)))
        m.d.sync += s2_valid.eq(issue)
        with m.If(issue):
            m.d.sync += s2_word.eq(next_word)
        m.d.comb += [self.busy.eq(s2_valid), self.last.eq(s2_valid & (s2_word == W - 1))]

        # -- stage 2: leap, compare and write back one word ------------------------------------------
        planes = [Cat(*[rd.data[j][i] for j in range(G)]) for i in range(I16.width)]
        nxt = leap_network(m, planes, I16.taps, I16.width, "st_fb")  # §3, 16 steps on lanes-bit planes
        pix = Cat(self.pixels.as_value(), Const(0, 8 * (W * G - n)))
        pix_word = Signal(8 * G)
        m.d.comb += pix_word.eq(pix.word_select(s2_word, 8 * G) if W > 1 else pix)
        # §3: the I16 draw's word is the whole leapt state; §5's arithmetic per lane, where synthesis
        # maps it onto carry chains
        fire = Cat(*[sampled_input(m, Cat(*[p[j] for p in nxt]), pix_word[8 * j:8 * j + 8], f"_{j}")
                     for j in range(G)])
        xs = Signal(W * G)  # the drawn bits shift in from the top, so word 0 ends at the bottom
        with m.If(s2_valid):
            m.d.sync += xs.eq(Cat(xs[G:], fire))
        m.d.comb += self.x.eq(xs[:n])
        lane_of_load = self.load_sel[:shift] if shift else Const(0, 1)
        with m.If(s2_valid):
            m.d.comb += [wr.addr.eq(s2_word), wr.en.eq(Const((1 << G) - 1, G)),
                         wr.data.eq(Cat(*[Cat(*[p[j] for p in nxt]) for j in range(G)]))]
        with m.Elif(self.load & ~self.draw):
            m.d.comb += [wr.addr.eq(word_of(self.load_sel)), wr.en.eq(Const(1, G) << lane_of_load),
                         wr.data.eq(self.load_value.replicate(G))]
        # the host read: the lane of the word read on the clock before
        rd_lane = Signal(range(max(G, 2)))
        m.d.sync += rd_lane.eq(self.rd_sel[:shift] if shift else 0)
        m.d.comb += self.rd_state.eq(rd.data[rd_lane] if G > 1 else rd.data[0])
        return m
