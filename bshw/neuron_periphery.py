"""One hidden neuron's digital periphery, all of it (docs/arithmetic.md §3, §4, §6, §7).

:class:`NeuronPeriphery` wires the neuron's own N32 LFSR (§3, leap = the noise bits W), the
stochastic comparator (§4, Eq. 3), the X/A/B flip-flops with the sampled derivative (§6, Eq. 4) and
the sign/tie/error driver (§7) into one block. It is the unit the synthesis driver
(``bshw synth``, target ``neuron``) measures and the energy estimator charges per neuron.

Dataflow, one training sample (§6, §8): the crossbar column presents ``y``; ``draw`` is high for
``1 + 2k`` clocks (X, A1, B1, ..., Ak, Bk: each clock leaps the LFSR, the comparator fires on the
fresh word and the flip-flop of that draw latches it). Later the backward pass presents ``dx`` and
the layer above's ``en`` wires; ``en``/``neg`` is the ternary error ``dy = dz * d`` on the two-wire
code of §7.
"""

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from bshw import bitslice as bs
from bshw.core import N32, check_deriv_k, check_int, check_tie
from bshw.derivative_sampler import DerivativeSampler
from bshw.error_driver import ErrorDriver, error_planes
from bshw.lfsr import Lfsr, lfsr_planes
from bshw.neuron import ComparatorNeuron, check_noise_words, fires


class NeuronPeriphery(wiring.Component):
    """LFSR + comparator + derivative flip-flops + error driver of one hidden neuron (§3-§7).

    Parameters
    ----------
    y_width : int
        Signed width of the membrane potential y (§2: 14 for layer 1 of 64-32-10).
    dx_width : int
        Signed width of the back-propagated sum dx (§2: 12 for layer 1 into 2).
    k : int
        Derivative pairs, 1, 2 or 4 (§6); the neuron draws ``1 + 2k`` times per sample.
    tie : {"gated", "zero", "plus"}
        Tie rule of ``sign(dx)`` where dx == 0 (§7).
    noise_words : tuple of int
        Noise word widths, low bits first (§4; default (7, 7, 5), W = 19 bits per draw).
    n_upper : int
        Error lines of the layer above (their ``en`` wires feed the `gated` OR, §7).
    init : int
        Reset state of the N32 LFSR (the trace header's ``lfsr`` entry, §3, §11), nonzero.

    Attributes
    ----------
    y : In(signed(y_width))
        Membrane potential, held for the sample's ``1 + 2k`` draws.
    draw : In(1)
        This clock is a draw: leap the LFSR by W steps and latch the comparator into the draw's
        flip-flop (X, A1, B1, ... in order, §6).
    restart : In(1)
        The next draw is X again (aborts a partial sample; priority over ``draw``'s index advance).
    dx : In(signed(dx_width))
    upper_en : In(n_upper)
        The ``en`` wires of the layer above's dy (§7, `gated` rule).
    load, load_value : In(1), In(32)
        Load the LFSR state (priority over ``draw``).
    x : Out(1)
        Forward output of the last X draw (Eq. 3).
    a, b : Out(k)
        ``A_m`` is bit m-1 of ``a``, ``B_m`` bit m-1 of ``b``.
    d : Out(1)
        Sampled derivative ``OR_m (A_m AND NOT B_m)`` (Eq. 4).
    en, neg : Out(1)
        ``dy = dz * d`` on the wire code of §7 (combinational from ``dx``, ``upper_en`` and ``d``).
    index : Out(range(1 + 2k))
        The next draw's number (0 = X, 2m-1 = A_m, 2m = B_m).
    state : Out(32)
        The LFSR state.
    """

    def __init__(self, y_width: int = 14, dx_width: int = 12, k: int = 4, tie: str = "gated",
                 noise_words=(7, 7, 5), n_upper: int = 10, init: int = 1):
        # Everything the parts would refuse is checked before any part exists: an Amaranth
        # Elaboratable whose constructor fails, or that is built and then dropped, warns "created but
        # never used". The rules are the parts' own (bshw/neuron.py, derivative_sampler.py,
        # error_driver.py, lfsr.py).
        check_int("y_width", y_width, 2, 64)
        words = check_noise_words(noise_words)
        check_int("dx_width", dx_width, 2, 64)
        check_deriv_k(k, "k")
        check_tie(tie)
        check_int("n_upper", n_upper, 1)
        check_int("init", init, 1, (1 << 32) - 1)
        self.comparator = ComparatorNeuron(y_width, words)
        self.lfsr = Lfsr.n32(self.comparator.bits, init)  # §3: leap = W bits per draw
        self.sampler = DerivativeSampler(k)
        self.driver = ErrorDriver(dx_width, n_upper, tie)
        self.y_width, self.dx_width, self.k, self.tie = y_width, dx_width, k, tie
        self.noise_words, self.n_upper, self.init = self.comparator.noise_words, n_upper, init
        sig = {
            "y": In(signed(y_width)), "draw": In(1), "restart": In(1),
            "dx": In(signed(dx_width)), "upper_en": In(n_upper),
            "load": In(1), "load_value": In(self.lfsr.width),
            "x": Out(1), "a": Out(k), "b": Out(k), "d": Out(1), "en": Out(1), "neg": Out(1),
            "dz_en": Out(1), "dz_neg": Out(1),
            "index": Out(range(1 + 2 * k)), "state": Out(self.lfsr.width, init=init),
        }
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        lfsr, cmp_, smp, drv = self.lfsr, self.comparator, self.sampler, self.driver
        m.submodules.lfsr, m.submodules.comparator = lfsr, cmp_
        m.submodules.sampler, m.submodules.driver = smp, drv
        m.d.comb += [
            # §3: the neuron's own stream advances only on its draws
            lfsr.draw.eq(self.draw), lfsr.load.eq(self.load), lfsr.load_value.eq(self.load_value),
            self.state.eq(lfsr.state),
            # §4, Eq. 3: fire iff y + S > T on the draw's fresh word
            cmp_.y.eq(self.y), cmp_.word.eq(lfsr.word),
            # §6: X, A1, B1, ... flip-flops and d = OR (A AND NOT B)
            smp.fire.eq(cmp_.fire), smp.draw.eq(self.draw), smp.restart.eq(self.restart),
            self.x.eq(smp.x), self.a.eq(smp.a), self.b.eq(smp.b), self.d.eq(smp.d), self.index.eq(smp.index),
            # §7: dz = sign(dx) with the tie rule, dy = dz * d on (en, neg)
            drv.dx.eq(self.dx), drv.upper_en.eq(self.upper_en), drv.d.eq(smp.d),
            self.en.eq(drv.en), self.neg.eq(drv.neg), self.dz_en.eq(drv.dz_en), self.dz_neg.eq(drv.dz_neg),
        ]
        return m


class OutputNeuron(wiring.Component):
    """One ``onchip`` output neuron (§7): its N32 LFSR, the comparator and the X flip-flop.

    The output layer draws once per training sample (X); its error ``dy = x - t`` is formed from the
    X flip-flop and the target in the periphery top (bshw/periphery.py). Ports as :class:`NeuronPeriphery`:
    ``y``, ``draw``, ``load``/``load_value``, ``x`` and ``state``.
    """

    def __init__(self, y_width: int = 13, noise_words=(7, 7, 5), init: int = 1):
        self.comparator = ComparatorNeuron(y_width, tuple(noise_words))
        self.lfsr = Lfsr.n32(self.comparator.bits, init)
        self.y_width, self.noise_words = y_width, self.comparator.noise_words
        sig = {"y": In(signed(y_width)), "draw": In(1), "load": In(1), "load_value": In(self.lfsr.width),
               "x": Out(1), "state": Out(self.lfsr.width, init=init)}
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        lfsr, cmp_ = self.lfsr, self.comparator
        m.submodules.lfsr, m.submodules.comparator = lfsr, cmp_
        m.d.comb += [lfsr.draw.eq(self.draw), lfsr.load.eq(self.load), lfsr.load_value.eq(self.load_value),
                     self.state.eq(lfsr.state), cmp_.y.eq(self.y), cmp_.word.eq(lfsr.word)]
        with m.If(self.draw):  # §7 onchip: one draw (X) per sample
            m.d.sync += self.x.eq(cmp_.fire)
        return m


class NeuronBank(wiring.Component):
    """Every hidden neuron of one layer at once (§3-§7, §15 "Banks"): lane ``j`` is exactly a
    :class:`NeuronPeriphery` with LFSR reset state ``inits[j]``. The neurons of a layer draw,
    restart and are read together, so the bank runs bit-sliced (bshw/bitslice.py) with one draw
    index for the layer: the N32 state planes (:func:`bshw.lfsr.lfsr_planes`), the comparator's
    noise sum and Eq. 3 on planes (the functions :class:`ComparatorNeuron` uses), the X/A/B
    flip-flops (:class:`DerivativeSampler` with ``lanes``) and the error driver (:func:`error_planes`,
    as :class:`ErrorDriver`), all in one module.

    Parameters
    ----------
    y_width, dx_width, k, tie, noise_words, n_upper :
        As :class:`NeuronPeriphery`.
    inits : sequence of int
        Reset state of each neuron's N32 LFSR (the trace header's ``lfsr`` entries of the layer).

    Attributes
    ----------
    y : In(ArrayLayout(signed(y_width), n)), dx : In(ArrayLayout(signed(dx_width), n))
    draw, restart : In(1)
    upper_en : In(n_upper)
    load, load_sel, load_value : In(1), In(range(n)), In(32)
        Load one neuron's LFSR state (the host port).
    rd_sel : In(range(n)), rd_state : Out(32)
    x, d, en, neg, dz_en, dz_neg : Out(n)
    a, b : Out(ArrayLayout(n, k))
        Element m-1 holds every neuron's ``A_m`` (``B_m``).
    index : Out(range(1 + 2k))
    """

    def __init__(self, y_width: int, dx_width: int, k: int, tie: str, noise_words, n_upper: int, inits):
        inits = list(inits)
        n = len(inits)
        self.n = check_int("neurons", n, 1)
        self.inits = [check_int("init", s, 1, (1 << 32) - 1) for s in inits]
        check_int("y_width", y_width, 2, 64)
        check_int("dx_width", dx_width, 2, 64)
        check_int("n_upper", n_upper, 1)
        check_tie(tie)
        self.noise_words = check_noise_words(noise_words)
        self.sampler = DerivativeSampler(k, lanes=n)
        self.y_width, self.dx_width, self.k, self.tie, self.n_upper = y_width, dx_width, k, tie, n_upper
        pairs = Out(data.ArrayLayout(n, k))
        super().__init__({
            "y": In(data.ArrayLayout(signed(y_width), n)), "draw": In(1), "restart": In(1),
            "dx": In(data.ArrayLayout(signed(dx_width), n)), "upper_en": In(n_upper),
            "load": In(1), "load_sel": In(range(max(n, 2))), "load_value": In(32),
            "rd_sel": In(range(max(n, 2))), "rd_state": Out(32),
            "x": Out(n), "a": pairs, "b": pairs, "d": Out(n), "en": Out(n), "neg": Out(n),
            "dz_en": Out(n), "dz_neg": Out(n), "index": Out(range(1 + 2 * k)),
        })

    def elaborate(self, platform):
        m = Module()
        n, smp = self.n, self.sampler
        fire = neuron_fires(m, self, n)
        m.submodules.sampler = smp
        m.d.comb += [smp.fire.eq(fire), smp.draw.eq(self.draw), smp.restart.eq(self.restart),
                     self.x.eq(smp.x), self.a.eq(smp.a), self.b.eq(smp.b), self.d.eq(smp.d), self.index.eq(smp.index)]
        dz_en, dz_neg, en, neg = error_planes(m, bs.planes_of(self.dx, n, self.dx_width, m, "dx_bit"),
                                              self.upper_en, self.d, self.tie, n)
        m.d.comb += [self.dz_en.eq(dz_en), self.dz_neg.eq(dz_neg), self.en.eq(en), self.neg.eq(neg)]
        return m


def neuron_fires(m, bank, n: int):
    """The LFSR planes and the comparator of a bank (§3, §4): returns the planes' ``fire`` for a draw
    taken this clock, and drives ``bank.rd_state``."""
    bits = sum(bank.noise_words)
    smax = sum((1 << w) - 1 for w in bank.noise_words)
    word, rd_state = lfsr_planes(m, N32.width, N32.taps, bits, bank.inits, draw=bank.draw, load=bank.load,
                                 load_sel=bank.load_sel, load_value=bank.load_value, rd_sel=bank.rd_sel)
    m.d.comb += bank.rd_state.eq(rd_state)
    # §4, Eq. 3 per neuron, where synthesis maps the sum and the compare onto carry chains
    out = []
    for j in range(n):
        lane = Signal(bits, name=f"word_{j}")
        m.d.comb += lane.eq(Cat(*[p[j] for p in word]))
        out.append(fires(lane, bank.y[j], bank.noise_words, smax // 2))
    return Cat(*out)


class OutputNeuronBank(wiring.Component):
    """Every ``onchip`` output neuron at once (§7, §15 "Banks"): lane ``j`` is exactly an
    :class:`OutputNeuron` with LFSR reset state ``inits[j]`` (bit-sliced, as :class:`NeuronBank`).

    Attributes
    ----------
    y : In(ArrayLayout(signed(y_width), n))
    draw : In(1)
    load, load_sel, load_value, rd_sel, rd_state :
        As :class:`NeuronBank`.
    x : Out(n)
    """

    def __init__(self, y_width: int, noise_words, inits):
        inits = list(inits)
        n = len(inits)
        self.n = check_int("neurons", n, 1)
        self.inits = [check_int("init", s, 1, (1 << 32) - 1) for s in inits]
        self.y_width = check_int("y_width", y_width, 2, 64)
        self.noise_words = check_noise_words(noise_words)
        super().__init__({"y": In(data.ArrayLayout(signed(y_width), n)), "draw": In(1), "load": In(1),
                          "load_sel": In(range(max(n, 2))), "load_value": In(32),
                          "rd_sel": In(range(max(n, 2))), "rd_state": Out(32), "x": Out(n)})

    def elaborate(self, platform):
        m = Module()
        fire = neuron_fires(m, self, self.n)
        with m.If(self.draw):  # §7 onchip: one draw (X) per sample
            m.d.sync += self.x.eq(fire)
        return m
