"""Sign of the back-propagated sum, its tie rule and the ternary error driver (docs/arithmetic.md §7)."""

from amaranth.hdl import Const, Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bshw import bitslice as bs
from bshw.core import TIE_RULES, check_int, check_tie  # noqa: F401  (§7's tie rules, one definition)


class ErrorDriver(wiring.Component):
    """``dz = sign(dx)`` with the tie rule, then ``dy = dz * d`` on the two-wire code ``(en, neg)`` (§7).

    Parameters
    ----------
    dx_width : int
        Signed width of dx (2..64; 12 for the default layer 1 into 2, §2).
    n_upper : int
        Number of error lines of the layer above (their ``en`` wires feed the `gated` OR), >= 1.
    tie : {"gated", "zero", "plus"}
        Value of dz where dx == 0: gated -> +1 if any upper line is driven else 0; zero -> 0; plus -> +1.

    Attributes
    ----------
    dx : In(signed(dx_width))
    upper_en : In(n_upper)
        The ``en`` wires of the layer above's dy (only the `gated` rule reads them).
    d : In(1)
        The neuron's sampled derivative (§6).
    dz_en, dz_neg : Out(1)
        dz on the wire code (``en = 0`` only for the gated/zero zero).
    en, neg : Out(1)
        dy = dz * d: ``en = d AND dz != 0``, ``neg = en AND dz < 0``; ``en = 0, neg = 1`` never occurs.
    """

    def __init__(self, dx_width: int, n_upper: int = 10, tie: str = "gated"):
        self.dx_width = check_int("dx_width", dx_width, 2, 64)
        self.n_upper = check_int("n_upper", n_upper, 1)
        self.tie = check_tie(tie)
        super().__init__({"dx": In(signed(dx_width)), "upper_en": In(n_upper), "d": In(1),
                          "dz_en": Out(1), "dz_neg": Out(1), "en": Out(1), "neg": Out(1)})

    def elaborate(self, platform):
        m = Module()
        # one neuron: its planes are single bits (the neuron banks call error_planes on n-bit planes)
        outs = error_planes(m, [self.dx[i] for i in range(self.dx_width)], self.upper_en, self.d, self.tie, 1)
        m.d.comb += [p.eq(v) for p, v in zip((self.dz_en, self.dz_neg, self.en, self.neg), outs)]
        return m


def error_planes(m, dx: list, upper_en, d, tie: str, n: int) -> tuple:
    """§7 on planes: ``(dz_en, dz_neg, en, neg)`` of ``dz = sign(dx)`` with the tie rule and
    ``dy = dz * d`` (``dx``: the planes of the signed dx, ``d``: the sampled derivatives)."""
    nonzero = bs.any_set(dx)
    # §7 tie rules: where dx == 0, gated drives +1 iff the layer above drives some error (one OR)
    tie_en = {"zero": Const(0, n), "plus": Const((1 << n) - 1, n), "gated": upper_en.any().replicate(n)}[tie]
    dz_en = bs.net(m, nonzero | tie_en, "dz_en_bits")
    dz_neg = dx[-1]  # the sign bit: the comparator dx >= 0 gives +1
    en = bs.net(m, dz_en & d, "en_bits")
    return dz_en, dz_neg, en, en & dz_neg
