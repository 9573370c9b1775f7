"""The dependency-free core shared by the HDL, the golden model and the benches: parameter checks
and the clock formula of the periphery's operations (docs/arithmetic.md §15).

Nothing here imports torch, numpy or Amaranth, so every layer above may use it: the golden model
(bshw/golden/exact/lfsr.py) and the HDL (bshw/lfsr.py) take the LFSR definitions of §3 from here.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LfsrSpec:
    """A shift-left Fibonacci LFSR: ``new = parity(state & tapmask)``, ``state = state << 1 | new``."""

    width: int
    taps: tuple  # state bit positions XOR-ed into the new bit

    @property
    def tapmask(self) -> int:
        return sum(1 << t for t in self.taps)

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


N32 = LfsrSpec(32, (31, 21, 1, 0))  # x^32 + x^22 + x^2 + x + 1, neuron noise
I16 = LfsrSpec(16, (15, 14, 12, 3))  # x^16 + x^15 + x^13 + x^4 + 1, input sampling


def check_int(name, value, lo, hi=None):
    """``value`` if it is an int (not a bool) in ``[lo, hi]``; else TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return value


def op_cycles(op: str, sizes, k: int, read_latency: int = 1, acc_rows=None) -> int:
    """Clocks of one operation, from the ``start`` clock to the ``done`` clock inclusive (§15).

    ``acc_rows``: for ``train``, the rows each layer's accumulate walks (``popcount(x^{l-1})``, or 0
    when the layer's error is all zero), one entry per layer.
    """
    L, lat = len(sizes) - 1, read_latency
    if op == "train":
        draws = [1 + 2 * k] * (L - 1) + [1]
        walk = max((n + 2 if n else 1) for n in acc_rows)
        return 2 + sum(lat + d for d in draws) + (L - 1) * lat + 1 + walk + 1
    if op == "infer":
        return 2 + (L - 1) * (lat + 1) + lat + 1
    if op == "binary":
        return 1 + L * lat + 1
    if op == "carry":
        return max(sizes[:-1]) + 4
    raise ValueError(f"unknown operation {op!r}")
