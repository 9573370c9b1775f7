"""Fibonacci LFSRs with leap-ahead draws, one stream per neuron / input pixel (docs/arithmetic.md §3).

A stream's state advances only when it draws; a draw leaps ``L`` steps and returns the ``L`` fresh
bits (bit 0 the newest). A whole batch of draws of many streams is computed at once: every output bit
of an LFSR is a GF(2)-linear form of its start state, so the bits of ``n`` draws of all streams are
one integer matrix product (mod 2) of cached forms with the start states' bits.
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

MASK64 = (1 << 64) - 1


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


def step(state: int, spec: LfsrSpec) -> int:
    """One LFSR step (reference form of §3)."""
    new = bin(state & spec.tapmask).count("1") & 1
    return ((state << 1) | new) & spec.mask


def leap(state: int, spec: LfsrSpec, n: int) -> int:
    """``n`` steps of :func:`step`; after it, bits ``[n-1:0]`` (n <= width) are the fresh bits."""
    for _ in range(n):
        state = step(state, spec)
    return state


def splitmix64(z: int) -> int:
    """One output of SplitMix64 for state ``z`` (§3, stream seeding)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_state(seed: int, stream: int, spec: LfsrSpec) -> int:
    """Initial state of stream ``stream`` for run seed ``seed`` (never 0)."""
    return (splitmix64(((seed << 32) + stream) & MASK64) & spec.mask) or 1


def stream_id(layer: int, neuron: int) -> int:
    """Stream number of neuron ``neuron`` of weight layer ``layer`` (1-based); pixels use their index."""
    return layer * (1 << 20) + neuron


@lru_cache(maxsize=64)
def _forms(spec: LfsrSpec, draws: int, L: int) -> torch.Tensor:
    """GF(2) forms ``[L*draws + width, width]`` (float32 0/1): row ``q*draws + m`` gives bit q of draw m,
    the last ``width`` rows give bit i of the state after all draws."""
    w, T = spec.width, draws * L
    r = [1 << i for i in reversed(range(w))]  # forms of o_t for t = -(w-1)..0: o_{-i} = state bit i
    for t in range(1, T + 1):  # o_t = XOR of o_{t-1-p} over taps p
        v = 0
        for p in spec.taps:
            v ^= r[t - 1 - p + w - 1]
        r.append(v)
    q, m = np.meshgrid(np.arange(L), np.arange(draws), indexing="ij")
    rows = ((m + 1) * L - q).reshape(-1)  # row q*draws + m: bit q of draw m is o_{(m+1)L - q}
    rows = np.concatenate([rows, T - np.arange(w)])  # new state bit i is o_{T-i}
    forms = np.array([r[t + w - 1] for t in rows], dtype=np.uint64)
    bits = (forms[:, None] >> np.arange(w, dtype=np.uint64)[None, :]) & np.uint64(1)
    return torch.from_numpy(bits.astype(np.float32))


class LfsrBank:
    """Independent LFSR streams of one kind, all stepped together.

    Parameters
    ----------
    spec : LfsrSpec
    states : sequence of int
        Start states, one per stream (nonzero).
    leap : int
        Steps per draw, ``1 <= leap`` (fresh bits per draw; at most 24 so words stay exact).
    """

    CHUNK = 1024  # draws per cached form matrix

    def __init__(self, spec: LfsrSpec, states, leap: int):
        self.spec, self.leap = spec, int(leap)
        self.states = torch.as_tensor(list(states), dtype=torch.int64)
        if (self.states <= 0).any() or (self.states > spec.mask).any():
            raise ValueError("LFSR states must be nonzero and fit the width")

    def __len__(self):
        return len(self.states)

    def draw(self, n: int, coef=None) -> torch.Tensor:
        """Advance every stream by ``n`` draws; return ``[n, streams]`` int64.

        Without ``coef`` each entry is the draw's ``leap``-bit word; with ``coef`` (``leap`` integers)
        it is ``sum_q bit_q * coef[q]`` (e.g. the noise sum of §4).
        """
        w, L = self.spec.width, self.leap
        coef = torch.tensor([1 << q for q in range(L)] if coef is None else list(coef), dtype=torch.float32)
        out = []
        done = 0
        while done < n:
            m = min(self.CHUNK, n - done)
            forms = _forms(self.spec, m, L)
            sbits = ((self.states[None, :] >> torch.arange(w)[:, None]) & 1).float()  # [w, N]
            bits = ((forms @ sbits).to(torch.int32) & 1).float()  # exact: whole numbers <= w, mod 2
            words = coef[None, :] @ bits[: m * L].view(L, -1)  # exact: < 2^24
            out.append(words.view(m, -1).to(torch.int64))
            self.states = (bits[m * L :].to(torch.int64) << torch.arange(w)[:, None]).sum(0)
            done += m
        return torch.cat(out) if out else torch.zeros(0, len(self), dtype=torch.int64)
