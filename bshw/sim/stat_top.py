"""Statistics wrapper: one hidden neuron (N32 LFSR, comparator, derivative sampler) that runs many
draws by itself and counts its firings and sampled derivatives in hardware (docs/arithmetic.md
§3, §4, §6).

A bench sets ``y`` and ``samples``, pulses ``start`` and reads the counters when ``busy`` falls,
so the simulator runs free (no Python per cycle) and the comparison is per transaction: the
counts against the golden model's draws from the same LFSR start state (exact), and the rates
against the enumerated firing curve and ``1 - (1 - p(1 - p))^k`` (statistical).
"""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.core import check_int
from bshw.derivative_sampler import DerivativeSampler
from bshw.lfsr import Lfsr
from bshw.neuron import ComparatorNeuron


class NeuronStatTop(wiring.Component):
    """Runs ``samples`` samples of ``1 + 2k`` draws each (one draw a clock, the same ``y``) and counts.

    Parameters
    ----------
    y_width : int
        Signed width of y (§2; 14 for layer 1 of the default net).
    noise_words : tuple of int
        Noise word widths (§4, default (7, 7, 5)); the LFSR leaps their sum W per draw.
    k : int
        Derivative pairs (1, 2, 4: §6), or 0 for plain draws without the sampler (firing curve).
    count_bits : int
        Width of ``samples`` and the counters (<= 32).

    Attributes
    ----------
    y : In(signed(y_width))
        Held by the bench during a run.
    samples : In(count_bits)
        Samples of the next run (read at ``start``).
    start : In(1)
        One clock: clear the counters and start (the sampler restarts at draw X).
    load, load_value : In(1), In(32)
        Load the LFSR state (§3 stream start, ``seed_state``), as ``Lfsr.load``.
    busy : Out(1)
        High from the clock after ``start`` until the last count is in.
    fires : Out(count_bits)
        Firings over all ``samples * (1 + 2k)`` draws.
    dcount : Out(count_bits)
        Samples with ``d = 1`` (0 when ``k = 0``).
    state : Out(32)
        The LFSR state.
    """

    def __init__(self, y_width: int = 14, noise_words=(7, 7, 5), k: int = 4, count_bits: int = 32):
        self.y_width = check_int("y_width", y_width, 2, 64)
        self.k = check_int("k", k, 0)
        if k not in (0, 1, 2, 4):
            raise ValueError(f"k must be 0, 1, 2 or 4, got {k!r}")
        self.count_bits = check_int("count_bits", count_bits, 1, 32)
        self.noise_words = tuple(noise_words)
        self.neuron = ComparatorNeuron(y_width, self.noise_words)  # validates noise_words
        self.lfsr = Lfsr.n32(self.neuron.bits)
        super().__init__({
            "y": In(signed(y_width)), "samples": In(count_bits), "start": In(1),
            "load": In(1), "load_value": In(32),
            "busy": Out(1), "fires": Out(count_bits), "dcount": Out(count_bits), "state": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = self.lfsr
        m.submodules.neuron = nrn = self.neuron
        run = Signal()  # drawing this clock
        pending = Signal()  # the sampler latched B_k last clock: d is that sample's
        left = Signal(self.count_bits)  # samples not finished
        m.d.comb += [
            nrn.y.eq(self.y), nrn.word.eq(lfsr.word),
            lfsr.draw.eq(run), lfsr.load.eq(self.load), lfsr.load_value.eq(self.load_value),
            self.state.eq(lfsr.state), self.busy.eq(run | pending),
        ]
        with m.If(run):
            m.d.sync += self.fires.eq(self.fires + nrn.fire)
        if self.k:
            m.submodules.sampler = smp = DerivativeSampler(self.k)
            m.d.comb += [smp.fire.eq(nrn.fire), smp.draw.eq(run), smp.restart.eq(self.start)]
            last = smp.index == 2 * self.k  # this draw is B_k, the sample's last (§6)
            m.d.sync += pending.eq(run & last)
            with m.If(pending):
                m.d.sync += self.dcount.eq(self.dcount + smp.d)
        else:
            last = 1
        with m.If(run & last):
            m.d.sync += left.eq(left - 1)
            with m.If(left == 1):
                m.d.sync += run.eq(0)
        with m.If(self.start):  # last, so it has priority over the run's updates
            m.d.sync += [self.fires.eq(0), self.dcount.eq(0), left.eq(self.samples),
                         run.eq(self.samples != 0), pending.eq(0)]
        return m
