"""Neuron noise words and input sampling (docs/arithmetic.md §4, §5).

A neuron's noise is the sum S of a few uniform LFSR words (Irwin-Hall-like); it fires iff
``y + S > T`` with ``T = Smax // 2``. The exact firing curve is enumerated here (float, analysis
only: the training path uses integers).
"""

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class NoiseSpec:
    """Word widths ``(w_1, ..., w_m)``, low bits of the draw first."""

    words: tuple

    @property
    def bits(self) -> int:  # W: fresh LFSR bits per draw
        return sum(self.words)

    @property
    def smax(self) -> int:
        return sum((1 << w) - 1 for w in self.words)

    @property
    def T(self) -> int:
        return self.smax // 2

    @property
    def coef(self) -> list:
        """Weight of draw bit q in S: ``2^(q - offset of its word)``."""
        return [1 << q for w in self.words for q in range(w)]

    def split(self, word: int) -> list:
        """The words ``u_1..u_m`` of a W-bit draw (reference form)."""
        out, off = [], 0
        for w in self.words:
            out.append((word >> off) & ((1 << w) - 1))
            off += w
        return out


def pmf(words) -> np.ndarray:
    """Exact distribution of S: ``P(S = s)`` for s = 0..Smax."""
    p = np.array([1.0])
    for w in words:
        p = np.convolve(p, np.full(1 << w, 1.0 / (1 << w)))
    return p


def fire_prob(words, y) -> np.ndarray:
    """``P(y + S > T)`` for integer ``y`` (array), S uniform words: the firing curve."""
    p = pmf(words)
    spec = NoiseSpec(tuple(words))
    ge = np.concatenate([np.cumsum(p[::-1])[::-1], [0.0]])  # ge[m] = P(S >= m)
    m = np.clip(spec.T - np.asarray(y) + 1, 0, spec.smax + 1)
    return ge[m]


def worst_deviation(words, a_s: float) -> tuple:
    """``max_y |P(fire | y) - sigma(a_s * y)|`` over all integers y and the y where it occurs."""
    smax = NoiseSpec(tuple(words)).smax
    y = np.arange(-smax - 2, smax + 3)  # beyond, P is 0 or 1 and the logistic only moves closer
    dev = np.abs(fire_prob(words, y) - 0.5 * (1 + np.tanh(0.5 * a_s * y)))
    i = int(dev.argmax())
    return float(dev[i]), int(y[i])


@lru_cache(maxsize=32)
def auto_words(a_s: float, n_words: int = 3, max_width: int = 12) -> tuple:
    """The ``n_words`` widths (1..max_width) whose firing curve is closest to ``sigma(a_s y)``
    (worst case; ties: fewest bits), widest word first as in §4."""
    best = None
    for ws in itertools.combinations_with_replacement(range(1, max_width + 1), n_words):
        if sum(ws) > 32 or ((1 << max(ws)) - 1) * n_words < 0.5 / a_s:
            continue
        key = (round(worst_deviation(ws, a_s)[0], 12), sum(ws))
        if best is None or key < best[0]:
            best = (key, tuple(sorted(ws, reverse=True)))
    return best[1]


def mod255(r: torch.Tensor) -> torch.Tensor:
    """``r mod 255`` the way the hardware does it (§5): byte sum, end-around carry, 255 -> 0."""
    t = (r >> 8) + (r & 0xFF)
    t2 = (t & 0xFF) + (t >> 8)
    return torch.where(t2 == 255, torch.zeros_like(t2), t2)


_MOD255: dict = {}


def mod255_table(device) -> torch.Tensor:
    """:func:`mod255` of every 16-bit ``r`` (uint8 [65536]; the same function, tabulated)."""
    key = str(device)
    if key not in _MOD255:
        _MOD255[key] = mod255(torch.arange(1 << 16, dtype=torch.int32)).to(torch.uint8).to(device)
    return _MOD255[key]


def sample_inputs(pixels: torch.Tensor, r: torch.Tensor, dtype=torch.int64) -> torch.Tensor:
    """Input layer (§5): ``x = 1`` iff ``(r mod 255) < pixel``, so ``P(x = 1) = pixel / 255``.

    ``r``: 16-bit I16 draws (any integer dtype); ``dtype`` of the 0/1 result (bool on the training
    path). ``r mod 255`` is looked up in :func:`mod255_table`."""
    m = mod255_table(r.device).index_select(0, r.reshape(-1).to(torch.int32)).view(r.shape)
    x = m < pixels
    return x if dtype == torch.bool else x.to(dtype)


@lru_cache(maxsize=4)
def mod255_cycle(spec, leap: int) -> np.ndarray:
    """:func:`mod255` of every draw word along a short LFSR's cycle (uint8, aligned with
    ``lfsr.short_cycle(spec)[0]``; a word is the state's low ``leap`` bits)."""
    from bshw.golden.exact.lfsr import short_cycle

    seq = short_cycle(spec)[0] & ((1 << leap) - 1)
    return mod255(torch.from_numpy(seq)).numpy().astype(np.uint8)


def sample_inputs_cycle(pixels: np.ndarray, draws: np.ndarray, table: np.ndarray) -> np.ndarray:
    """:func:`sample_inputs` for draws given as cycle indices (``ahead[m] + p0[i]`` of ``LfsrBank.cycle_start``): ``x = 1``
    iff ``(r mod 255) < pixel`` with ``r mod 255`` read straight from :func:`mod255_cycle`'s table.
    ``pixels`` uint8 and ``draws`` of one shape; bool result."""
    return np.take(table, draws) < pixels


def logistic(v) -> float:
    return 1.0 / (1.0 + math.exp(-v))
