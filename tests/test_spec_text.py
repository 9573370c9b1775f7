"""docs/arithmetic.md read as a specification (issue 17): each rule that the text states in words is
reimplemented here from the text alone and compared with the code, so that either drifting shows."""

import itertools
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner
from bshw.golden.exact.noise import auto_words, worst_deviation
from bshw.golden.exact.params import ExactParams
from bshw.golden.inputs import downsample
from bshw.golden.weights import PeriodicCarry

# -- independent LFSR and seeding, from §3's text ----------------------------------------------------
TAPS = {32: (31, 21, 1, 0), 16: (15, 14, 12, 3)}
M64 = (1 << 64) - 1


def _step(s, width):
    f = 0
    for t in TAPS[width]:
        f ^= (s >> t) & 1
    return ((s << 1) | f) & ((1 << width) - 1)


def _leap(s, width, n):
    for _ in range(n):
        s = _step(s, width)
    return s


def _splitmix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def _seed_state(seed, stream, width):
    return (_splitmix64((seed << 32) + stream) & ((1 << width) - 1)) or 1


def _cfg(**kw):
    return TrainConfig.from_dict({"mode": "exact", "weights": "int8", "hidden": (32,), "input_side": 8, **kw},
                                 where="spec test")


def _images(n, side, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, side, side), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


# -- 1. §1 downsampling: adaptive windows, round half up ---------------------------------------------
def _downsample_ref(img, side):
    H = len(img)
    out = []
    for i in range(side):
        r0, r1 = (i * H) // side, -((-(i + 1) * H) // side)  # floor(iH/s), ceil((i+1)H/s)
        row = []
        for j in range(side):
            c0, c1 = (j * H) // side, -((-(j + 1) * H) // side)
            S = sum(img[r][c] for r in range(r0, r1) for c in range(c0, c1))
            n = (r1 - r0) * (c1 - c0)
            row.append(min(255, (2 * S + n) // (2 * n)))  # floor(S/n + 1/2)
        out.append(row)
    return out


@pytest.mark.parametrize("side", [8, 7, 10, 12, 14, 5, 3, 27])
def test_downsample_is_adaptive_window_mean_half_up(side):
    x, _ = _images(6, 28, seed=side)
    x[0] = 0
    x[1] = 255
    x[2, ::2] = 1  # alternating rows of 1 and 0 put many means on exact halves
    x[2, 1::2] = 0
    got = downsample(x, side).tolist()
    assert [_downsample_ref(img, side) for img in x.tolist()] == got


def test_downsample_28_to_8_windows():
    # the windows the text lists, and the half-up rounding on an exact half (sum 8 of 16 pixels)
    assert [((i * 28) // 8, -((-(i + 1) * 28) // 8) - 1) for i in range(8)] == \
        [(0, 3), (3, 6), (7, 10), (10, 13), (14, 17), (17, 20), (21, 24), (24, 27)]
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, 0:4, 0:4] = torch.tensor([1, 0, 1, 0] * 4, dtype=torch.uint8).view(4, 4)  # sum 8: mean 0.5
    x[0, 0:4, 4:8] = torch.tensor([3] + [0] * 15, dtype=torch.uint8).view(4, 4)  # sum 3: mean 0.1875
    y = downsample(x, 8)
    assert y[0, 0, 0] == 1  # 0.5 rounds up
    assert y[0, 0, 1] == 0  # window (0, 1): rows 0-3, columns 3-6, sum 0 + 3: 0.1875 rounds down
    assert x.shape[-1] == 28 and downsample(x, 28) is x  # identity at the same size


# -- 2. §2 the scale, ternary included; the float model differs for ternary -------------------------
@pytest.mark.parametrize("weights,b,w_range", [("int8", 8, 1.0), ("int4", 4, 0.25), ("ternary", 2, 0.1),
                                               ("int6", 6, 1.0), ("int3", 3, 0.25)])
def test_scale_is_range_over_2_to_b_minus_1(weights, b, w_range):
    cfg = _cfg(weights=weights)
    P = ExactParams.from_dict({}).resolve(cfg).as_dict()
    assert cfg.weight_range == w_range  # §2's default ranges
    assert P["weight_bits"] == b and P["scale"] == w_range / 2 ** (b - 1)
    pc = PeriodicCarry(torch.zeros(2, 2), b, w_range, 0.1, 100)
    # docs/algorithm.md "Periodic carry": the float model uses s = W for ternary, W / 2^(b-1) otherwise
    assert pc.scale == (w_range if b == 2 else w_range / 2 ** (b - 1))


# -- 3, 4. §4 auto noise words: defaults per weight type, selection rule, widest first ---------------
@pytest.mark.parametrize("weights,w_range,words,dev", [
    ("int8", None, [7, 7, 5], 0.01902), ("int4", None, [5, 5, 3], 0.0191), ("ternary", None, [4, 4, 4], 0.0187),
    ("int4", 1.0, [3, 3, 2], 0.0207), ("ternary", 1.0, [1, 1, 1], 0.0180)])
def test_auto_words_of_the_defaults(weights, w_range, words, dev):
    cfg = _cfg(weights=weights, **({} if w_range is None else {"w_range": w_range}))
    P = ExactParams.from_dict({}).resolve(cfg).as_dict()
    assert P["noise_words"] == words
    assert round(worst_deviation(words, cfg.a * P["scale"])[0], len(str(dev)) - 2) == dev


def _dev_ref(ws, a_s):
    """max_y |P(y + S > T) - 1/(1 + exp(-a s y))| from exact integer counts of S."""
    cnt = np.array([1], dtype=np.int64)
    for w in ws:
        cnt = np.convolve(cnt, np.ones(1 << w, dtype=np.int64))
    smax = len(cnt) - 1
    T = smax // 2
    tail = np.concatenate([np.cumsum(cnt[::-1])[::-1], [0]])  # tail[m] = #(S >= m)
    y = np.arange(-smax - 2, smax + 3)
    p_fire = tail[np.clip(T - y + 1, 0, smax + 1)] / float(1 << sum(ws))
    e = np.exp(-a_s * np.abs(y))  # the logistic without overflow
    sig = np.where(y >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return float(np.abs(p_fire - sig).max())


def _auto_ref(a_s):
    """§4: all multisets of three widths in 1..12 with sum <= 32 (no skip); least (deviation to 12
    places, total bits, widths in increasing order); reported widest first."""
    cands = [ws for ws in itertools.combinations_with_replacement(range(1, 13), 3) if sum(ws) <= 32]
    best = min(cands, key=lambda ws: (round(_dev_ref(ws, a_s), 12), sum(ws), ws))
    return tuple(sorted(best, reverse=True))


@pytest.mark.parametrize("a_s", [1 / 32, 1 / 8, 0.2, 1 / 2, 2.0])
def test_auto_words_rule(a_s):
    got = auto_words(a_s)
    assert list(got) == sorted(got, reverse=True)  # widest first: u_1 (the low bits) is a widest word
    assert got == _auto_ref(a_s)


def test_explicit_noise_words_keep_their_order():
    P = ExactParams.from_dict({"noise_words": [5, 7, 7]}).resolve(_cfg()).as_dict()
    assert P["noise_words"] == [5, 7, 7]


# -- 5. §7 the host's softmax, op for op --------------------------------------------------------------
def _host_z(y_row, s):
    v = [yj * s for yj in y_row]
    m = max(v)
    e = [math.exp(vj - m) for vj in v]
    a0, a1, a2, a3 = (e[0] + e[4]) + e[8], (e[1] + e[5]) + e[9], e[2] + e[6], e[3] + e[7]
    Z = ((a0 + a1) + a2) + a3
    r = 1.0 / Z
    return [ej * r for ej in e]


_SUBPROCESS = textwrap.dedent("""
    import math, sys, torch
    sys.path.insert(0, {here!r})
    from test_spec_text import _host_z
    g = torch.Generator().manual_seed(5)
    bad = 0
    for s in (1 / 128, 1 / 32, 0.05):
        y = torch.randint(-3000, 3000, (3000, 10), generator=g, dtype=torch.int64)
        z = torch.softmax(y.double() * s, dim=1).tolist()
        bad += sum(zr != _host_z(yr, s) for zr, yr in zip(z, y.tolist()))
    print(torch.backends.cpu.get_cpu_capability(), bad)
""")


def test_host_softmax_formula_is_torch_softmax_default_kernel():
    """With ATEN_CPU_CAPABILITY=default, torch.softmax (the code's call) is §7's formula bit for bit."""
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    out = subprocess.run([sys.executable, "-c", _SUBPROCESS.format(here=os.path.dirname(__file__))], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout.split()
    assert out == ["DEFAULT", "0"]


def test_host_zB_follows_the_formula():
    """Host mode: zB_j = 1 iff the class's 24-bit draw < floor(z_j * 2^24), z from §7's formula."""
    cfg = _cfg(batch=20, hw={"output": "host"})
    L = make_learner(cfg)
    s = L.P.scale
    u_state = [_seed_state(cfg.seed, 3 * (1 << 20) + j, 32) for j in range(10)]  # stream (L + 1) 2^20 + j, L = 2
    x, t = _images(60, 8, seed=3)
    fired = 0
    for k in range(3):
        rec = {}
        L.train_batch(x[k * 20:(k + 1) * 20], t[k * 20:(k + 1) * 20], record=rec)
        for y_row, zb_row in zip(rec["ys"][-1].tolist(), rec["xs"][-1].tolist()):
            z = _host_z(y_row, s)
            for j in range(10):
                u_state[j] = _leap(u_state[j], 32, 24)
                assert zb_row[j] == int((u_state[j] & (2**24 - 1)) < math.floor(z[j] * 2**24))
                fired += zb_row[j]
    assert fired > 0
    assert L.host_bank.states.tolist() == u_state  # §11: host_lfsr leapt 24 * B per step


# -- 6. §10 the initial weights -----------------------------------------------------------------------
@pytest.mark.parametrize("over,ms", [
    ({}, [16, 22]), ({"weights": "int4"}, [4, 5]), ({"weights": "ternary"}, [1, 1]),
    ({"hidden": (100,), "input_side": 28}, [4, 12]), ({"hidden": (32, 16), "seed": 3}, [16, 22, 32])])
def test_initial_weights(over, ms):
    cfg = _cfg(**over)
    L = make_learner(cfg)
    P = L.P.as_dict()
    sizes = [cfg.input_side ** 2, *cfg.hidden, 10]
    g = torch.Generator().manual_seed(cfg.seed)
    want_m = []
    for l, (fi, fo) in enumerate(itertools.pairwise(sizes)):
        m = min(max(1, math.floor(min(cfg.weight_range, 1 / math.sqrt(fi)) / P["scale"])), P["wmax"], -P["wmin"])
        want_m.append(m)
        W = torch.randint(-m, m + 1, (fi, fo), generator=g, dtype=torch.int64)
        assert torch.equal(L.W[l], W)
        assert int(L.W[l].abs().max()) == m and int(L.C[l].abs().max()) == 0
    assert want_m == ms


def test_ternary_default_range_needs_the_clamp():
    cfg = _cfg(weights="ternary")
    assert math.floor(min(cfg.weight_range, 1 / 8) / 0.05) == 2  # unclamped m would be 2 > wmax = 1
    L = make_learner(cfg)
    assert all(int(w.abs().max()) == 1 for w in L.W)


# -- 7. §11 the header's params and the host mode's nulls ---------------------------------------------
def test_trace_params_keys_and_host_nulls():
    import json

    from bshw.golden.exact.trace import make_trace

    cfg = _cfg(batch=2, hw={"output": "host"}, weights="int4")
    x, t = _images(4, 8)
    lines = make_trace(cfg, 2, x, t).splitlines()
    h = json.loads(lines[0])
    P = h["params"]
    assert list(P) == ["noise_words", "noise_bits", "smax", "T", "deriv_k", "tie", "output", "th",
                       "counter_bits", "weight_bits", "wmin", "wmax", "scale", "a"]
    assert P["weight_bits"] == 4 and P["a"] == cfg.a and isinstance(P["a"], float)
    assert P["smax"] == sum(2**w - 1 for w in P["noise_words"]) and P["T"] == P["smax"] // 2
    assert P["noise_bits"] == sum(P["noise_words"]) and P["scale"] == 0.25 / 8
    assert h["init"]["lfsr"][-1] is None and len(h["init"]["lfsr"][0]) == 32
    assert h["init"]["host_lfsr"] == [_seed_state(cfg.seed, 3 * (1 << 20) + j, 32) for j in range(10)]
    for line in lines[1:]:
        st = json.loads(line)
        assert st["lfsr_end"][-1] is None and "host_lfsr_end" not in st
        assert "host_zB" in st["samples"][0]["layers"][-1] and "S" not in st["samples"][0]["layers"][-1]


# -- 8. §3 stream numbers: l 1-based, j and the pixel index 0-based -----------------------------------
def test_stream_numbers():
    cfg = _cfg(hidden=(32, 16), seed=11)
    L = make_learner(cfg)
    assert L.in_bank.states.tolist() == [_seed_state(11, i, 16) for i in range(64)]
    for l, bank in enumerate(L.banks, start=1):
        assert bank.states.tolist() == [_seed_state(11, l * (1 << 20) + j, 32) for j in range(len(bank))]


# -- 9. §6/§14 draws per sample: 1 + 2k per hidden neuron, 1 per output neuron (onchip) and pixel ----
@pytest.mark.parametrize("k", [4, 1])
def test_draws_per_sample(k):
    B = 3
    cfg = _cfg(batch=B, hw={"deriv_k": k})
    L = make_learner(cfg)
    W = L.P.noise_bits
    st0 = [L.in_bank.states.tolist()] + [b.states.tolist() for b in L.banks]
    x, t = _images(B, 8)
    L.train_batch(x, t)
    assert L.in_bank.states.tolist() == [_leap(s, 16, 16 * B) for s in st0[0]]
    assert L.banks[0].states.tolist() == [_leap(s, 32, W * (1 + 2 * k) * B) for s in st0[1]]  # 9 x B at k = 4
    assert L.banks[1].states.tolist() == [_leap(s, 32, W * B) for s in st0[2]]
