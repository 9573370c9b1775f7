"""Fibonacci LFSRs with leap-ahead draws, one stream per neuron / input pixel (docs/arithmetic.md §3).

A stream's state advances only when it draws; a draw leaps ``L`` steps and returns the ``L`` fresh
bits (bit 0 the newest). A whole batch of draws of many streams is computed at once, bit-parallel:
every draw word is a GF(2)-linear function of the stream's start state, so it is the XOR of one
cached table entry per byte of that state (``word_m = XOR_i tab[m, i, byte_i(state)]``), a few
integer gathers and XORs over the ``[draws, streams]`` block with no per-draw or per-bit work. The
state after the draws is the newest ``width`` output bits, read from the last words. The tables
(and the bit forms they come from) are built once per LFSR, leap and block size.
"""

from functools import lru_cache

import numpy as np
import torch

# §3's definitions and the stream seeding live in the dependency-free core
from bshw.core import I16, MASK64, N32, LfsrSpec, seed_state, splitmix64, stream_id  # noqa: F401


def step(state: int, spec: LfsrSpec) -> int:
    """One LFSR step (reference form of §3)."""
    new = bin(state & spec.tapmask).count("1") & 1
    return ((state << 1) | new) & spec.mask


def leap(state: int, spec: LfsrSpec, n: int) -> int:
    """``n`` steps of :func:`step`; after it, bits ``[n-1:0]`` (n <= width) are the fresh bits."""
    for _ in range(n):
        state = step(state, spec)
    return state


_FORMS: dict = {}


def output_forms(spec: LfsrSpec, steps: int) -> list:
    """GF(2) forms of the output bits: entry ``t + width - 1`` is the ``width``-bit mask of start-state
    bits whose XOR is output bit ``o_t`` (``t = -(width-1)..steps``; ``o_{-i}`` is start-state bit i,
    ``o_t`` for t >= 1 the bit shifted in at step t). Grown on demand and cached per LFSR."""
    w = spec.width
    r = _FORMS.setdefault(spec, [1 << i for i in reversed(range(w))])
    for t in range(len(r) - w + 1, steps + 1):  # o_t = XOR of o_{t-1-p} over taps p
        v = 0
        for p in spec.taps:
            v ^= r[t - 1 - p + w - 1]
        r.append(v)
    return r


@lru_cache(maxsize=32)
def _tables_np(spec: LfsrSpec, L: int, draws: int, layout: tuple | None = None) -> np.ndarray:
    """``int32 [nbytes * 256, draws + 1]``: entry ``[256 i + v, m]`` (m < draws) is the ``L``-bit word
    of draw ``m`` (bit q = output bit ``o_{(m+1)L - q}``) contributed by start-state byte ``i``
    equal to ``v``; column ``draws`` is, alike, the state after all the draws (bit i = ``o_{T-i}``,
    T = draws * L). 32-bit values are stored as their two's-complement bit pattern. ``layout`` (L
    distinct positions below 32): draw bit q goes to bit ``layout[q]`` of the word instead (a bit
    permutation is GF(2)-linear too, so the tables give it at no cost); the end state is unaffected."""
    w = spec.width
    nbytes = (w + 7) // 8
    T = draws * L
    r = output_forms(spec, T)
    q = max(L, w)
    t = np.arange(1, draws + 1)[:, None] * L - np.arange(q)[None, :]  # [draws, q]
    t = np.concatenate([t, T - np.arange(q)[None, :]])  # the end state's bits as one more "draw"
    forms = np.array([r[i + w - 1] if i > -w else 0 for i in t.reshape(-1).tolist()],
                     dtype=np.int64).reshape(draws + 1, q)
    nb = np.full(draws + 1, L)
    nb[-1] = w
    keep = np.arange(q)[None, :] < nb[:, None]  # bits of each column: L for a draw, w for the state
    forms = np.where(keep, forms, 0)
    # basis[j, m]: column m as a function of start-state bit j alone
    sbit = (forms[:, :, None] >> np.arange(8 * nbytes, dtype=np.int64)[None, None, :]) & 1  # [m, q, j]
    at = np.tile(np.arange(q, dtype=np.int64), (draws + 1, 1))  # where each bit goes
    if layout is not None:
        at[:draws, :L] = layout
    basis = (sbit << at[:, :, None]).sum(1).T  # bits disjoint: sum = OR
    tab = np.zeros((nbytes, 256, draws + 1), dtype=np.int64)
    for i in range(nbytes):
        for bit in range(8):  # entries [2^b, 2^(b+1)) = entries [0, 2^b) with bit b set
            tab[i, 1 << bit: 2 << bit] = tab[i, : 1 << bit] ^ basis[8 * i + bit]
    return tab.reshape(nbytes * 256, draws + 1).astype(np.uint32).view(np.int32)


_TABLES: dict = {}


def draw_tables(spec: LfsrSpec, L: int, draws: int, device) -> torch.Tensor:
    """:func:`_tables_np` as a tensor on ``device`` (cached)."""
    key = (spec, L, draws, str(device))
    tab = _TABLES.get(key)
    if tab is None:
        if len(_TABLES) >= 32:  # a few call sizes recur; bound the memory (<= 4 MiB a table)
            _TABLES.clear()
        tab = _TABLES[key] = torch.from_numpy(_tables_np(spec, L, draws)).to(device)
    return tab


_BYTES: dict = {}


def _byte_index(nbytes: int, device):
    """``(shifts, offsets)`` int64 ``[1, nbytes]``: byte i of a state is row ``256 i + byte`` of a table."""
    key = (nbytes, str(device))
    if key not in _BYTES:
        i = torch.arange(nbytes, dtype=torch.int64)
        _BYTES[key] = ((8 * i)[None].to(device), (256 * i)[None].to(device))
    return _BYTES[key]


def _fields(coef, L):
    """``coef`` as contiguous bit fields ``[(offset, width)]`` when every ``coef[q]`` is
    ``2^(q - offset)`` of its field (the noise words of §4), else None."""
    out, q = [], 0
    while q < L:
        if coef[q] != 1:
            return None
        w = 1
        while q + w < L and coef[q + w] == 1 << w:
            w += 1
        out.append((q, w))
        q += w
    return out


@lru_cache(maxsize=4)
def short_cycle(spec: LfsrSpec):
    """The whole state sequence of a short maximal-length LFSR (width <= 16, period ``2^w - 1``):
    ``(seq, pos)`` with ``seq`` int32 ``[2 period]`` the state after ``p`` steps from state 1, written
    twice over (so any index below ``2 period`` needs no modulo), and ``pos`` int64 ``[2^w]`` the index
    of each nonzero state in it. None for other LFSRs (no single cycle through every nonzero state).

    With it, draw ``m`` (0-based) of a stream at position ``p0`` is the state at ``p0 + L (m + 1)`` (a
    draw leaps L steps; its word is the state's low L bits): one table read per draw, no GF(2) work."""
    if spec.width > 16:
        return None
    period = spec.mask
    seq = np.empty(period, dtype=np.int32)
    st = 1
    for p in range(period):  # once per process, ~65k Python steps for I16
        seq[p] = st
        st = step(st, spec)
    if st != 1 or len(np.unique(seq)) != period:  # not maximal: some nonzero state is off the cycle
        return None
    pos = np.zeros(1 << spec.width, dtype=np.int64)
    pos[seq] = np.arange(period)
    return np.concatenate([seq, seq]), pos


def _lanes(coef, L):
    """For noise-word coefficients (:func:`_fields`) whose sum fits one multiply: ``(layout, k,
    lw)``, ``k`` fields of ``lw``-bit lanes (``lw`` the bits of the largest sum, ``k lw <= 32``, two
    fields or more) and ``layout[q]`` the lane position of draw bit q. Else None."""
    fields = _fields(coef, L)
    if fields is None or len(fields) < 2:
        return None
    lw = sum(coef).bit_length()  # sum(coef) = smax, the largest field sum
    if len(fields) * lw > 32:
        return None
    layout = tuple(i * lw + (q - o) for i, (o, fw) in enumerate(fields) for q in range(o, o + fw))
    return layout, len(fields), lw


class LfsrBank:
    """Independent LFSR streams of one kind, all stepped together.

    Parameters
    ----------
    spec : LfsrSpec
    states : sequence of int, or an int64 tensor
        Start states, one per stream (nonzero). A tensor keeps its device.
    leap : int
        Steps per draw, ``1 <= leap <= 32`` (fresh bits per draw).
    device : torch.device or str, optional
        Where the states and every draw live (default: the states' device, else CPU).
    """

    CHUNK = 1024  # most draws per cached table (one table per call size up to this)

    def __init__(self, spec: LfsrSpec, states, leap: int, device=None):
        self.spec, self.leap = spec, int(leap)
        if not 1 <= self.leap <= 32:
            raise ValueError("an LFSR draw leaps 1 to 32 steps")
        st = states if isinstance(states, torch.Tensor) else torch.as_tensor(list(states), dtype=torch.int64)
        self.states = st.to(dtype=torch.int64, device=device if device is not None else st.device)
        if (self.states <= 0).any() or (self.states > spec.mask).any():
            raise ValueError("LFSR states must be nonzero and fit the width")

    def __len__(self):
        return len(self.states)

    @property
    def device(self):
        return self.states.device

    def _words_t(self, n: int):
        """Advance every stream by ``n`` draws; the raw words ``int32 [streams, n]`` (bit patterns):
        a numpy array on the CPU (:meth:`_words_np`), else a tensor on the bank's device."""
        if self.device.type == "cpu":
            return self._words_np(n)
        return self._words_torch(n)

    def _words_torch(self, n: int) -> torch.Tensor:
        """:meth:`_words_t` in torch ops (any device; the reference form of :meth:`_words_np`)."""
        w, L, N = self.spec.width, self.leap, len(self)
        nbytes = (w + 7) // 8
        shifts, offsets = _byte_index(nbytes, self.device)
        out, done = [], 0
        while done < n:
            m = min(self.CHUNK, n - done)
            tab = draw_tables(self.spec, L, m, self.device)  # [nbytes * 256, m + 1]
            idx = ((self.states[:, None] >> shifts) & 0xFF) + offsets  # [N, nbytes]
            g = tab.index_select(0, idx.view(-1)).view(N, nbytes, m + 1)
            block = g[:, 0] ^ g[:, 1] if nbytes > 1 else g[:, 0]
            for i in range(2, nbytes):
                block.bitwise_xor_(g[:, i])
            self.states = block[:, m].to(torch.int64) & self.spec.mask  # column m: the end state
            out.append(block[:, :m])
            done += m
        if not out:
            return torch.zeros(N, 0, dtype=torch.int32, device=self.device)
        return out[0] if len(out) == 1 else torch.cat(out, 1)

    def _words_np(self, n: int, layout: tuple | None = None) -> np.ndarray:
        """:meth:`_words_torch` on the CPU in numpy: the same table gathers and XORs (the same bits),
        at a fraction of torch's per-op overhead, which dominates these few-microsecond ops.
        ``layout``: the draw words' bits moved as in :func:`_tables_np`."""
        w, L, N = self.spec.width, self.leap, len(self)
        nbytes = (w + 7) // 8
        st = self.states.numpy()
        shifts = 8 * np.arange(nbytes, dtype=np.int64)
        offsets = 256 * np.arange(nbytes, dtype=np.int64)
        out, done = [], 0
        while done < n:
            m = min(self.CHUNK, n - done)
            tab = _tables_np(self.spec, L, m, layout)  # [nbytes * 256, m + 1] int32
            idx = ((st[:, None] >> shifts) & 0xFF) + offsets  # [N, nbytes]
            block = np.take(tab, idx[:, 0], axis=0)  # whole rows per byte: contiguous XORs
            for i in range(1, nbytes):
                block ^= np.take(tab, idx[:, i], axis=0)
            st = block[:, m].astype(np.int64) & self.spec.mask  # column m: the end state
            out.append(block[:, :m])
            done += m
        self.states = torch.from_numpy(st)
        if not out:
            return np.zeros((N, 0), dtype=np.int32)
        return out[0] if len(out) == 1 else np.concatenate(out, 1)

    def cycle_start(self, n: int):
        """Advance every stream by ``n`` draws (CPU banks of a :func:`short_cycle` LFSR) and return
        ``(p0, ahead)``: draw m of stream i is ``short_cycle(spec)[0][ahead[m] + p0[i]]`` (its word:
        that state's low ``leap`` bits). ``p0`` int64 [streams] < period, ``ahead`` int64 [n] the
        leaps reduced mod period first, so every index is below 2 period: inside the doubled table."""
        seq, pos = short_cycle(self.spec)
        period = self.spec.mask
        p0 = pos[self.states.numpy()]
        ahead = (self.leap * np.arange(1, n + 1, dtype=np.int64)) % period
        self.states = torch.from_numpy(seq[p0 + self.leap * n % period].astype(np.int64))
        return p0, ahead

    def draw_t(self, n: int, coef=None) -> torch.Tensor:
        """:meth:`draw` transposed, ``[streams, n]`` (the fast layout): int32 where every value fits
        (weighted sums, words of at most 31 bits), else int64."""
        if coef is not None:
            coef = [int(c) for c in coef]
            if len(coef) != self.leap:
                raise ValueError(f"{len(coef)} coefficients for {self.leap}-bit draws")
            lanes = _lanes(coef, self.leap) if self.device.type == "cpu" else None
            if lanes is not None:  # the noise sums of §4 by one multiply (:meth:`_lane_sums`)
                return torch.from_numpy(self._lane_sums(n, *lanes))
        words = self._words_t(n)
        cpu = isinstance(words, np.ndarray)  # numpy words: the same int32 ops, one tensor at the end
        if coef is None:
            if self.leap == 32:  # words with the top bit set: int64 values
                words = torch.from_numpy(words) if cpu else words
                return words.to(torch.int64) & 0xFFFFFFFF
            return torch.from_numpy(words) if cpu else words
        fields = _fields(coef, self.leap)
        if fields is None or sum(coef) >= 1 << 31:  # general weights: bit by bit
            words = torch.from_numpy(words) if cpu else words
            out = torch.zeros(words.shape, dtype=torch.int64, device=words.device)
            for q, c in enumerate(coef):
                out += ((words >> q) & 1).to(torch.int64) * c
            return out
        # the field sums: int32 throughout (numpy and torch alike keep int32 with Python-int masks)
        (_, fw), rest = fields[0], fields[1:]
        out = words & ((1 << fw) - 1)
        for o, fw in rest:  # the top field of a word below 32 bits needs no mask
            out += words >> o if o + fw == self.leap < 32 else (words >> o) & ((1 << fw) - 1)
        return torch.from_numpy(out) if cpu else out

    def _lane_sums(self, n: int, layout: tuple, k: int, lw: int) -> np.ndarray:
        """The field sums of :meth:`draw_t` (int32 ``[streams, n]``) with the words drawn in lanes:
        field i's bits at ``[i lw, i lw + width_i)`` (:func:`_lanes`), so one multiply adds them.

        With ``v = sum_i f_i 2^(i lw)`` and ``K = sum_j 2^(j lw)`` (j < k), lane ``k - 1`` of ``v K``
        is ``sum_i f_i = S``. No carry reaches it: every lower lane holds a partial sum of the f_i,
        at most ``S <= smax < 2^lw``; and ``S`` itself fits its lane. Terms of higher lanes and the
        wrap of uint32 arithmetic (mod 2^32, with ``k lw <= 32``) only touch bits above it."""
        v = self._words_np(n, layout).view(np.uint32)
        K = sum(1 << (j * lw) for j in range(k))
        return ((v * np.uint32(K)) >> np.uint32((k - 1) * lw) & np.uint32((1 << lw) - 1)).view(np.int32)

    def draw(self, n: int, coef=None) -> torch.Tensor:
        """Advance every stream by ``n`` draws; return ``[n, streams]`` int64.

        Without ``coef`` each entry is the draw's ``leap``-bit word; with ``coef`` (``leap`` integers)
        it is ``sum_q bit_q * coef[q]`` (e.g. the noise sum of §4).
        """
        return self.draw_t(n, coef).T.to(torch.int64).contiguous()
