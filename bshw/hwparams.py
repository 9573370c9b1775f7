"""The resolved hardware parameters of one network, typed and validated once (docs/arithmetic.md §12).

:class:`HwParams` is what every implementation of the chip takes: the exact golden mode
(bshw/golden/exact/), the RTL generator and its periphery top (bshw/periphery.py), the benches
(bshw/sim/) and the energy estimator. It is the trace header's ``params`` (§11) as a frozen record:
``HwParams.from_dict(header["params"])`` reads it, :meth:`HwParams.as_dict` writes it, key for key.

It is dependency-free like :mod:`bshw.core` (no torch, numpy or Amaranth): the HDL takes it without
importing the golden model. Deriving it from a training configuration (auto noise words, ``th``, the
counter width, the device constants) is the golden side's job:
:meth:`bshw.golden.exact.params.ExactParams.resolve`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType

from bshw.core import (
    OUTPUTS,
    check_choice,
    check_counter,
    check_deriv_k,
    check_int,
    check_noise_words,
    check_tie,
)

# The trace header's key order (§11); ``noise_bits``, ``smax`` and ``T`` follow from ``noise_words``.
HEADER_KEYS = ("noise_words", "noise_bits", "smax", "T", "deriv_k", "tie", "output", "th", "counter_bits",
               "weight_bits", "wmin", "wmax", "scale", "a")


@dataclass(frozen=True, eq=True)
class HwParams:
    """The numbers of one network's hardware (§12), each checked when the record is made.

    Parameters
    ----------
    noise_words : tuple of int
        Widths of the uniform LFSR words summed into a neuron's noise, low bits of the draw first
        (§4): 1-4 words of 1-16 bits, at most 32 bits in all.
    deriv_k : int
        Derivative pairs OR-ed together per hidden neuron and sample (§6): 1, 2 or 4.
    tie : {"gated", "zero", "plus"}
        The rule for a back-propagated sum ``dx == 0`` (§7).
    th : int
        Carry threshold of every counter (§9), ``1 <= th <= 2^(counter_bits-1) - 1``.
    counter_bits : int
        Signed width of every gradient counter (§9), 2-32.
    wmin, wmax : int
        The weight levels' limits (§9 clamp), ``wmin < 0 < wmax``.
    output : {"onchip", "host"}
        The output layer's form (§7); the RTL implements ``onchip``.
    weight_bits : int or None
        Bits of a weight level (§2): the levels ``[wmin, wmax]`` lie in a signed ``weight_bits``
        word. None: the least that holds them.
    scale : float or None
        Weight of one level in the float model (§10, ``s``): the golden model's initial draw and the
        report use it; no hardware register holds it, so an HDL-only user may leave it None.
    a : float or None
        The logistic's gain (§4) that the noise words approximate; analysis only, like ``scale``.
    device : dict or None
        The resolved memristor device constants of §16 (``DeviceModel.resolve``); None: the ideal
        device (integer levels, §9), which adds no key to :meth:`as_dict`.

    Raises
    ------
    TypeError, ValueError
        One line naming the field, from the checks of :mod:`bshw.core` that the HDL components use too.
    """

    noise_words: tuple
    deriv_k: int
    tie: str
    th: int
    counter_bits: int
    wmin: int
    wmax: int
    output: str = "onchip"
    weight_bits: int | None = None
    scale: float | None = None
    a: float | None = None
    device: object = None

    def __post_init__(self):
        object.__setattr__(self, "noise_words", check_noise_words(self.noise_words))
        check_deriv_k(self.deriv_k)
        check_tie(self.tie)
        check_choice("output", self.output, OUTPUTS)
        check_counter(self.th, self.counter_bits)
        check_int("wmin", self.wmin, -(1 << 31), -1)
        check_int("wmax", self.wmax, 1, (1 << 31) - 1)
        if self.weight_bits is None:  # §2: two's complement width of [wmin, wmax]
            object.__setattr__(self, "weight_bits", max((-self.wmin - 1).bit_length(), self.wmax.bit_length()) + 1)
        b = check_int("weight_bits", self.weight_bits, 2, 32)
        if self.wmin < -(1 << (b - 1)) or self.wmax > (1 << (b - 1)) - 1:
            raise ValueError(f"weight levels [{self.wmin}, {self.wmax}] do not fit weight_bits = {b}")
        for name in ("scale", "a"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise ValueError(f"{name} must be a positive number or None, got {v!r}")
        if self.device is not None:
            if not isinstance(self.device, dict):
                raise TypeError(f"device must be a dict of resolved §16 constants or None, got {self.device!r}")
            object.__setattr__(self, "device", MappingProxyType(dict(self.device)))

    __hash__ = None  # the device constants are a mapping

    # -- derived (§4, §9) --------------------------------------------------------------------------
    @property
    def noise_bits(self) -> int:
        """W: fresh LFSR bits per noise draw (§4)."""
        return sum(self.noise_words)

    @property
    def smax(self) -> int:
        """The largest noise sum ``sum(2^w - 1)`` (§4)."""
        return sum((1 << w) - 1 for w in self.noise_words)

    @property
    def T(self) -> int:
        """The comparator's offset ``floor(Smax / 2)`` (§4)."""
        return self.smax // 2

    @property
    def cmin(self) -> int:
        return -(1 << (self.counter_bits - 1))

    @property
    def cmax(self) -> int:
        return (1 << (self.counter_bits - 1)) - 1

    # -- the trace header's form (§11) -------------------------------------------------------------
    def as_dict(self) -> dict:
        """The trace header's ``params`` (JSON types, §11 key order; ``device`` only with a device)."""
        d = {k: getattr(self, k) for k in HEADER_KEYS}
        d["noise_words"] = list(self.noise_words)
        if self.device is not None:
            d["device"] = dict(self.device)
        return d

    @classmethod
    def from_dict(cls, d, where: str = "params") -> "HwParams":
        """The record of a trace header's / description's ``params``; a missing, unknown or bad key,
        or a derived value (``noise_bits``, ``smax``, ``T``) that disagrees, raises ValueError naming
        ``where.key``."""
        if isinstance(d, HwParams):
            return d
        if not isinstance(d, dict):
            raise ValueError(f"{where} is a {type(d).__name__}, expected a table of hardware parameters")
        own = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(own) - set(HEADER_KEYS))
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: unknown hardware parameter")
        missing = [k for k in ("noise_words", "deriv_k", "tie", "th", "counter_bits", "wmin", "wmax") if k not in d]
        if missing:
            raise ValueError(f"{where}.{missing[0]} is missing")
        try:
            p = cls(**{k: d[k] for k in own if k in d})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None
        for k in ("noise_bits", "smax", "T"):
            if k in d and d[k] != getattr(p, k):
                raise ValueError(f"{where}.{k} = {d[k]!r} disagrees with noise_words "
                                 f"{list(p.noise_words)} (expected {getattr(p, k)})")
        return p
