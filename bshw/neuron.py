"""Stochastic comparator neuron (docs/arithmetic.md §4, Eq. 3).

The W-bit noise draw is split low bits first into words u_1..u_m (§4); ``S = sum u_k`` and the
neuron fires iff ``y + S > T`` with ``T = floor(Smax / 2)``, i.e. ``y + n > 0``, ``n = S - T``.
"""

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw.core import check_int, check_noise_words  # noqa: F401  (§4's rule, one definition)


def noise_sum(word, noise_words):
    """§4: ``S = sum u_k``, the words split from the draw's ``word`` low bits first."""
    total, off = 0, 0
    for w in noise_words:
        total = total + word[off:off + w]
        off += w
    return total


def fires(word, y, noise_words, T: int):
    """Eq. 3: ``y + S > T`` for one neuron's draw ``word``."""
    return y + noise_sum(word, noise_words) > T


class ComparatorNeuron(wiring.Component):
    """Combinational comparator ``fire = (y + S > T)`` (§4) of one neuron (:func:`fires`, which the
    neuron banks of bshw/neuron_periphery.py apply per lane).

    Parameters
    ----------
    y_width : int
        Signed width of the membrane potential y (2..64; 14 for the default layer 1, §2).
    noise_words : tuple of int
        Noise word widths, low bits first (1-4 words of 1-16 bits, sum <= 32; default (7, 7, 5)).

    Attributes
    ----------
    y : In(signed(y_width))
    word : In(W)
        The draw's W-bit word from the neuron's N32 LFSR (``Lfsr.word``).
    s : Out(unsigned)
        The noise sum S.
    fire : Out(1)
    """

    def __init__(self, y_width: int, noise_words=(7, 7, 5)):
        self.y_width = check_int("y_width", y_width, 2, 64)
        words = check_noise_words(noise_words)
        self.noise_words = words
        self.bits = sum(words)
        self.smax = sum((1 << w) - 1 for w in words)
        self.T = self.smax // 2
        super().__init__({"y": In(signed(y_width)), "word": In(self.bits),
                          "s": Out(self.smax.bit_length()), "fire": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.s.eq(noise_sum(self.word, self.noise_words)),  # §4: u_1 = word[w1-1:0], ...
                     self.fire.eq(fires(self.word, self.y, self.noise_words, self.T))]  # Eq. 3
        return m
