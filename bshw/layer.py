"""The digital periphery of one layer (docs/arithmetic.md §4-§9): everything of a layer that is not
the crossbar.

Per neuron (column): its N32 noise LFSR (§3), the comparator (§4, Eq. 3) and, in a hidden layer, the
flip-flops X, A_1, B_1, ..., A_k, B_k with the NOT/AND/OR derivative (§6, Eq. 4) and the sign/ternary
error driver on its row of the layer above (§7); in the output layer (``onchip``, §7) the X flip-flop
and ``dy = x - t``. Per synapse: the gradient counter with periodic carry (§9), stored row by row
(bshw/periodic_carry.py ``CounterBank``). This is what ``bshw synth`` counts; the crossbar
(bshw/crossbar.py) is a behavioral model beside it.
"""

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.crossbar import dx_width, y_width
from bshw.error_driver import TIE_RULES
from bshw.lfsr import Lfsr, _check_int
from bshw.neuron import ComparatorNeuron
from bshw.neuron_periphery import NeuronPeriphery
from bshw.periodic_carry import CounterBank, weight_bits


class LayerPeriphery(wiring.Component):
    """Neurons and counters of one ``fan_in`` x ``fan_out`` layer (§4-§9).

    Parameters
    ----------
    fan_in, fan_out : int
        Inputs (crossbar rows) and neurons (columns), each >= 1.
    hidden : bool
        A hidden layer (X/A/B draws, derivative, error driver); else the ``onchip`` output layer.
    n_upper : int
        Neurons of the layer above (hidden layers: their ``en`` lines feed the `gated` tie rule; its
        fan-out sets the dx width, §2).
    k : int
        Derivative pairs (1, 2, 4), §6.
    noise_words : tuple of int
        Noise word widths (§4); the LFSR leaps their sum per draw.
    tie : {"gated", "zero", "plus"}
        Tie rule of the sign comparator (§7).
    th, counter_bits : int
        Carry threshold and counter width (§9).
    wmin, wmax : int
        Weight range of the crossbar (sets the y and dx widths, §2).
    lfsr_init : list of int or None
        Reset state of each neuron's N32 LFSR (the trace header's ``init.lfsr``); None: all 1.
    counter_init : list of list of int or None
        Initial counters ``[fan_in][fan_out]``.

    Attributes
    ----------
    y : In(fan_out * yw)
        The crossbar's column sums (signed ``yw``-bit fields).
    draw : In(1)
        Every neuron of the layer draws this clock (LFSR leap, comparator, flip-flop of the draw index).
    restart : In(1)
        The next draw is X (start of a sample or an inference pass).
    x : Out(fan_out)
        The X flip-flops: the layer's binary outputs.
    a, b : Out(k * fan_out)
        Hidden layers: ``A_m`` of neuron j at bit ``(m-1) * fan_out + j`` (``B`` likewise).
    d : Out(fan_out)
        Hidden layers: the sampled derivatives.
    dx : In(fan_out * dxw)
        Hidden layers: the backward sums on this layer's rows of the crossbar above.
    upper_en : In(n_upper)
        Hidden layers: the ``en`` lines of the layer above's error.
    target : In(fan_out)
        Output layer: the one-hot target.
    dz_en, dz_neg : Out(fan_out)
        Hidden layers: ``dz = sign(dx)`` with the tie rule, §7 wire code.
    dy_en, dy_neg : Out(fan_out)
        The layer's ternary error ``dy`` (§7 wire code).
    row, x_row, acc, carry, c_we, c_wdata, c_rdata, pot, dep
        The counter bank's ports (:class:`bshw.periodic_carry.CounterBank`).
    lfsr_we : In(fan_out), lfsr_wdata : In(32), lfsr_state : Out(fan_out * 32)
        Host access to the neurons' LFSR states (load one-hot; read all).
    """

    def __init__(self, fan_in: int, fan_out: int, *, hidden: bool = True, n_upper: int = 10, k: int = 4,
                 noise_words=(7, 7, 5), tie: str = "gated", th: int = 8, counter_bits: int = 8,
                 wmin: int = -128, wmax: int = 127, lfsr_init=None, counter_init=None):
        self.fan_in = _check_int("fan_in", fan_in, 1)
        self.fan_out = _check_int("fan_out", fan_out, 1)
        self.hidden = bool(hidden)
        self.n_upper = _check_int("n_upper", n_upper, 1)
        if tie not in TIE_RULES:
            raise ValueError(f"tie rule {tie!r}: choose one of {', '.join(TIE_RULES)}")
        self.k, self.tie, self.noise_words = k, tie, tuple(noise_words)
        self.wbits = b = weight_bits(wmin, wmax)
        self.yw, self.dxw = y_width(fan_in, b), dx_width(n_upper, b)
        # build the children now so that bad parameters fail here, at construction (§12)
        init = [1] * fan_out if lfsr_init is None else list(lfsr_init)
        if len(init) != fan_out:
            raise ValueError(f"lfsr_init needs {fan_out} states, got {len(init)}")
        if hidden:  # §3-§7: LFSR, comparator, X/A/B flip-flops, error driver (bshw/neuron_periphery.py)
            self.neurons = [NeuronPeriphery(self.yw, self.dxw, k, tie, self.noise_words, n_upper, s) for s in init]
        else:  # §7 onchip output neuron: LFSR and comparator; the X flip-flop is in elaborate
            self.comparators = [ComparatorNeuron(self.yw, self.noise_words) for _ in range(fan_out)]
            self.lfsrs = [Lfsr.n32(self.comparators[0].bits, s) for s in init]
        self.bank = CounterBank(fan_in, fan_out, th, counter_bits, counter_init)
        n, cw = fan_out, fan_out * counter_bits
        sig = {"y": In(n * self.yw), "draw": In(1), "restart": In(1), "x": Out(n),
               "dy_en": Out(n), "dy_neg": Out(n),
               "row": In(range(fan_in)), "x_row": In(1), "acc": In(1), "carry": In(1),
               "c_we": In(1), "c_wdata": In(cw), "c_rdata": Out(cw), "pot": Out(n), "dep": Out(n),
               "lfsr_we": In(n), "lfsr_wdata": In(32), "lfsr_state": Out(n * 32)}
        if hidden:
            sig.update(a=Out(k * n), b=Out(k * n), d=Out(n), dx=In(n * self.dxw), upper_en=In(n_upper),
                       dz_en=Out(n), dz_neg=Out(n))
        else:
            sig.update(target=In(n))
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        n, k = self.fan_out, self.k
        y = [self.y[j * self.yw:(j + 1) * self.yw].as_signed() for j in range(n)]
        if self.hidden:
            cols = {key: [] for key in ("x", "d", "dz_en", "dz_neg", "dy_en", "dy_neg")}
            for j, nrn in enumerate(self.neurons):
                m.submodules[f"neuron{j}"] = nrn
                m.d.comb += [nrn.y.eq(y[j]), nrn.draw.eq(self.draw), nrn.restart.eq(self.restart),
                             nrn.dx.eq(self.dx[j * self.dxw:(j + 1) * self.dxw].as_signed()),
                             nrn.upper_en.eq(self.upper_en), nrn.load.eq(self.lfsr_we[j]),
                             nrn.load_value.eq(self.lfsr_wdata), self.lfsr_state[32 * j:32 * (j + 1)].eq(nrn.state)]
                m.d.comb += [self.a[mm * n + j].eq(nrn.a[mm]) for mm in range(k)]
                m.d.comb += [self.b[mm * n + j].eq(nrn.b[mm]) for mm in range(k)]
                for key, sig in (("x", nrn.x), ("d", nrn.d), ("dz_en", nrn.driver.dz_en),
                                 ("dz_neg", nrn.driver.dz_neg), ("dy_en", nrn.en), ("dy_neg", nrn.neg)):
                    cols[key].append(sig)
            m.d.comb += [getattr(self, key).eq(Cat(*v)) for key, v in cols.items()]
        else:  # §7 onchip output: one draw (X) into the flip-flop, dy = x - t
            fires = []
            for j in range(n):
                lfsr, cmp_ = self.lfsrs[j], self.comparators[j]
                m.submodules[f"lfsr{j}"], m.submodules[f"cmp{j}"] = lfsr, cmp_
                m.d.comb += [lfsr.draw.eq(self.draw), lfsr.load.eq(self.lfsr_we[j]),
                             lfsr.load_value.eq(self.lfsr_wdata), self.lfsr_state[32 * j:32 * (j + 1)].eq(lfsr.state),
                             cmp_.y.eq(y[j]), cmp_.word.eq(lfsr.word)]
                fires.append(cmp_.fire)
            with m.If(self.draw):
                m.d.sync += self.x.eq(Cat(*fires))
            m.d.comb += [self.dy_en.eq(self.x ^ self.target), self.dy_neg.eq(self.target & ~self.x)]
        bank = self.bank
        m.submodules.counters = bank
        m.d.comb += [bank.row.eq(self.row), bank.x.eq(self.x_row), bank.dy_en.eq(self.dy_en),
                     bank.dy_neg.eq(self.dy_neg), bank.acc.eq(self.acc), bank.carry.eq(self.carry),
                     bank.we.eq(self.c_we), bank.wdata.eq(self.c_wdata), self.c_rdata.eq(bank.rdata),
                     self.pot.eq(bank.pot), self.dep.eq(bank.dep)]
        return m
