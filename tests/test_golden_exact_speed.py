"""The exact mode's CPU fast paths (issue 21) against their reference forms, bit for bit: numpy LFSR
words against the torch table form, the I16 draws read off its tabulated cycle against the GF(2)
draws, input sampling at the lit pixels, the comparator/derivative sampler in numpy, the fused
accumulate + carry (dense and BinaryRows x, with and without saturation), and whole learners run
through the sparse and the dense input layer, with and without a record."""

import random

import numpy as np
import pytest
import torch

from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner as make_exact
from bshw.golden.exact.carry import accumulate, accumulate_carry, carry
from bshw.golden.exact.lfsr import I16, N32, LfsrBank, short_cycle
from bshw.golden.exact.neuron import fire, sample_neurons, sample_neurons_np
from bshw.golden.exact.noise import (
    NoiseSpec,
    mod255_cycle,
    sample_inputs,
    sample_inputs_cycle,
)
from bshw.golden.model import BinaryRows


@pytest.mark.parametrize("spec", [N32, I16], ids=["N32", "I16"])
def test_numpy_words_equal_torch_words(spec):
    rnd = random.Random(5)
    for L in (1, 7, 16, 19, 32):
        states = [rnd.randrange(1, spec.mask + 1) for _ in range(6)]
        a, b = LfsrBank(spec, states, L), LfsrBank(spec, states, L)
        for n in (0, 1, 5, 900, 1100):  # 1100 straddles the table block (CHUNK)
            wa, wb = a._words_np(n), b._words_torch(n)
            assert isinstance(wa, np.ndarray) and wa.dtype == np.int32
            assert torch.equal(torch.from_numpy(wa), wb)
            assert torch.equal(a.states, b.states) and a.states.dtype == torch.int64


def test_numpy_field_sums_equal_torch_field_sums():
    noise = NoiseSpec((7, 7, 5))
    states = [random.Random(1).randrange(1, N32.mask + 1) for _ in range(9)]
    a, b = LfsrBank(N32, states, noise.bits), LfsrBank(N32, states, noise.bits)
    ga = a.draw_t(450, noise.coef)
    wb = b._words_torch(450)
    ref = (wb & 127) + ((wb >> 7) & 127) + (wb >> 14)
    assert ga.dtype == torch.int32 and torch.equal(ga, ref)
    c, d = LfsrBank(N32, states, 32), LfsrBank(N32, states, 32)  # 32-bit words: int64 values
    assert torch.equal(c.draw_t(40), d._words_torch(40).to(torch.int64) & 0xFFFFFFFF)


def test_i16_cycle_is_maximal_and_cycle_draws_equal_gf2_draws():
    seq, pos = short_cycle(I16)
    assert len(seq) == 2 * I16.mask and torch.equal(torch.from_numpy(seq[pos[seq[:I16.mask]]]),
                                                    torch.from_numpy(seq[:I16.mask]))
    assert short_cycle(N32) is None
    rnd = random.Random(2)
    states = [rnd.randrange(1, I16.mask + 1) for _ in range(50)] + [1, I16.mask]
    for L in (16, 5):
        a, b = LfsrBank(I16, states, L), LfsrBank(I16, states, L)
        for n in (1, 100, 4096, 5000):  # past one period of leaps: the reduced leaps wrap
            p0, ahead = a.cycle_start(n)
            idx = ahead[:, None] + p0[None, :]  # [n, streams]: draw m of stream i
            words = torch.from_numpy(seq[idx] & ((1 << L) - 1)).T
            assert torch.equal(words.to(torch.int64), b.draw_t(n).to(torch.int64))
            assert torch.equal(a.states, b.states)


def test_inputs_at_lit_pixels_equal_reference_sampling():
    """The learner's CPU input layer (cycle draws, lit pixels only, sparse or dense) against
    sample_inputs over every pixel with LfsrBank.draw_t draws."""
    L = make_exact(TrainConfig(mode="exact", weights="int8", hidden=(8,), input_side=8, seed=4))
    gen = torch.Generator().manual_seed(0)
    for trial in range(6):
        p = torch.randint(0, 256, (37, 64), generator=gen, dtype=torch.uint8)
        p[torch.rand(p.shape, generator=gen) < 0.6] = 0
        if trial == 5:
            p[:] = 0
        ref = LfsrBank(I16, L.in_bank.states.clone(), 16)
        rt = ref.draw_t(len(p))
        want = sample_inputs(p.T, rt, dtype=torch.bool).T
        keep = L.in_bank.states.clone()
        x, r = L._inputs(p, want_r=True)
        assert torch.equal(x, want) and torch.equal(r.to(torch.int64), rt.to(torch.int64))
        assert torch.equal(L.in_bank.states, ref.states)
        L.in_bank.states = keep
        xs, _ = L._inputs(p, sparse=True)
        xs = xs.dense() if isinstance(xs, BinaryRows) else xs
        assert torch.equal(xs, want) and torch.equal(L.in_bank.states, ref.states)
    pix = torch.randint(0, 256, (5000,), dtype=torch.uint8)
    rr = torch.randint(0, 1 << 16, (5000,))
    pos = short_cycle(I16)[1]
    idx = pos[rr.clamp(min=1).numpy()]  # the cycle index of each (nonzero) word
    got = sample_inputs_cycle(pix.numpy(), idx, mod255_cycle(I16, 16))
    assert torch.equal(torch.from_numpy(got), sample_inputs(pix, rr.clamp(min=1), dtype=torch.bool))


@pytest.mark.parametrize("k", [0, 1, 2, 4])
@pytest.mark.parametrize("ydtype", [torch.float32, torch.float64])
def test_sample_neurons_np_equals_torch_form(k, ydtype):
    gen = torch.Generator().manual_seed(k)
    n, B, T = 23, 17, 142
    S = torch.randint(0, 286, (n, B, 1 + 2 * k), generator=gen, dtype=torch.int32)
    y = torch.randint(-300, 300, (B, n), generator=gen).to(ydtype)
    y[0, :5] = torch.tensor([T - 0, T - 285, -T, 0, 1], dtype=ydtype)  # the comparator's edges
    x, d, f = sample_neurons_np(y, S.numpy(), T, k)
    St = S.permute(1, 2, 0)  # [B, 1 + 2k, n]: the torch form's layout
    if k == 0:
        assert d is None and torch.equal(x, fire(y, St[:, 0], T, dtype=torch.bool))
        return
    rx, rA, rB, rd = sample_neurons(y, St, T, k, dtype=torch.bool)
    assert torch.equal(x, rx) and torch.equal(d, rd)
    assert torch.equal(torch.from_numpy(f[:, :, 1::2]).permute(1, 2, 0), rA)
    assert torch.equal(torch.from_numpy(f[:, :, 2::2]).permute(1, 2, 0), rB)


@pytest.mark.parametrize("cbits,th", [(8, 8), (4, 3), (3, 3), (6, 1), (32, 1 << 26)])
@pytest.mark.parametrize("sparse", [False, True])
def test_accumulate_carry_equals_accumulate_then_carry(cbits, th, sparse):
    gen = torch.Generator().manual_seed(cbits * 10 + th)
    cmax = (1 << (cbits - 1)) - 1
    for B, n_in, n_out in ((9, 30, 7), (40, 50, 12), (3, 5, 4)):
        for bound in (None, min(th - 1, cmax)):
            lo = -cmax - 1 if bound is None else -bound
            hi = cmax if bound is None else bound
            c = torch.randint(lo, hi + 1, (n_in, n_out), generator=gen)
            w = torch.randint(-128, 128, (n_in, n_out), generator=gen)
            w[0, :] = 127
            w[1, :] = -128  # the weight clamps
            x = torch.rand(B, n_in, generator=gen) < 0.3
            dy = torch.randint(-1, 2, (B, n_out), generator=gen)
            xr = BinaryRows(np.flatnonzero(x.numpy().reshape(-1)), x.shape) if sparse else x.float()
            ref_c = accumulate(c, x.float(), dy, cbits, bound=bound)
            ref_pre = ref_c.clone()
            ref_c, ref_w, step = carry(ref_c, w, th, -128, 127)
            pre = []
            got_c, got_w, hit, delta = accumulate_carry(c, w, xr, dy, cbits, th, -128, 127, bound=bound, pre=pre)
            assert got_c.dtype == got_w.dtype == torch.int64
            assert torch.equal(got_c, ref_c) and torch.equal(got_w, ref_w) and torch.equal(pre[0], ref_pre)
            full = torch.zeros(step.numel(), dtype=torch.int64).index_put_((hit,), delta).view(step.shape)
            assert torch.equal(full, step) and torch.equal(hit, step.view(-1).nonzero().view(-1))
            assert w.shape == got_w.shape and got_w is not w


def _run(cfg, batches, sparse, record):
    L = make_exact(cfg)
    L.SPARSE, L.SPARSE_MIN = (1.0, 0) if sparse else (0.0, 1 << 60)
    gen = torch.Generator().manual_seed(1)
    outs = []
    for _ in range(batches):
        x = torch.randint(0, 256, (16, 28, 28), generator=gen, dtype=torch.uint8)
        x[torch.rand(x.shape, generator=gen) < 0.75] = 0
        t = torch.randint(0, 10, (16,), generator=gen)
        outs.append(L.train_batch(x, t, record={} if record else None))
    return L, outs


@pytest.mark.parametrize("hw", [{}, {"th": 3, "counter_bits": 3}, {"output": "host", "deriv_k": 1}])
def test_learner_sparse_dense_record_paths_agree(hw):
    """The whole step through the sparse (BinaryRows) and dense input layer, with and without a
    record (which materialises every intermediate), ends in the same weights, counters, LFSR states
    and statistics."""
    cfg = TrainConfig(mode="exact", weights="int8", hidden=(24, 12), input_side=14, seed=3, hw=hw)
    runs = [_run(cfg, 4, s, r) for s, r in ((True, False), (False, False), (True, True))]
    A = runs[0][0]
    for B, outs in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(A.W + A.C, B.W + B.C))
        assert torch.equal(A.in_bank.states, B.in_bank.states)
        assert all(a is None or torch.equal(a.states, b.states) for a, b in zip(A.banks, B.banks))
        assert outs == runs[0][1]


@pytest.mark.parametrize("rule", ["gated", "zero", "plus"])
def test_backward_np_equals_tie_sign_and_ternary_error(rule):
    from bshw.golden.exact.error import backward_np, ternary_error, tie_sign

    gen = torch.Generator().manual_seed(len(rule))
    B, n, m = 31, 19, 7
    dx = torch.randint(-2, 3, (B, n), generator=gen).float()  # many ties
    up = torch.randint(-1, 2, (B, m), generator=gen)
    up[::3] = 0  # undriven rows
    d = (torch.rand(n, B, generator=gen) < 0.5).T  # a transposed view, as the learner's d is
    dz, dy, counts = backward_np(dx, up, d, rule)
    rz = tie_sign(dx, (up != 0).any(1), rule)
    assert torch.equal(dz.to(torch.int64), rz) and torch.equal(dy.to(torch.int64), ternary_error(d, rz))
    tie, driven = dx == 0, (up != 0).any(1, keepdim=True)
    td = tie & driven
    assert counts == (int(tie.sum()), int(td.sum()), int((td & d).sum()))


@pytest.mark.parametrize("words", [(7, 7, 5), (8, 8, 8, 8), (3, 2), (12, 12, 8), (10, 1, 1, 1), (5,)])
def test_lane_sums_equal_bitwise_noise_sums(words):
    """draw_t's noise sums (the lane multiply where the sum fits, else the field sums) against the
    weighted bit sum of the torch words, and the end states alike."""
    from bshw.golden.exact.lfsr import _lanes

    noise = NoiseSpec(words)
    rnd = random.Random(sum(words))
    states = [rnd.randrange(1, N32.mask + 1) for _ in range(7)] + [1, N32.mask]
    a, b = LfsrBank(N32, states, noise.bits), LfsrBank(N32, states, noise.bits)
    lanes = _lanes(noise.coef, noise.bits)
    assert (lanes is None) == (len(words) < 2 or len(words) * noise.smax.bit_length() > 32)
    for n in (1, 33, 1100):
        got = a.draw_t(n, noise.coef)
        w = b._words_torch(n).to(torch.int64) & 0xFFFFFFFF
        ref = sum(((w >> q) & 1) * c for q, c in enumerate(noise.coef))
        assert got.dtype == torch.int32 and torch.equal(got.to(torch.int64), ref)
        assert int(got.max()) <= noise.smax and torch.equal(a.states, b.states)


def test_carry_sum_torch_form_equals_numpy_form():
    """The carry step of accumulate_carry in torch (the form off the CPU) and in numpy agree, and
    agree with carry() itself."""
    from bshw.golden.exact.carry import _carry_sum

    gen = torch.Generator().manual_seed(9)
    for dt in (torch.float32, torch.float64):
        s = torch.randint(-20, 21, (40, 13), generator=gen).to(dt)
        c = torch.zeros(40, 13, dtype=torch.int64)
        w = torch.randint(-128, 128, (40, 13), generator=gen)
        w[:3] = 127
        w[3:6] = -128
        ref_c, ref_w, step = carry(s.to(torch.int64), w, 5, -128, 127)
        for numpy in (True, False):
            pre = []
            got_c, got_w, hit, delta = _carry_sum(s.clone(), c, w, 5, -128, 127, pre, numpy=numpy)
            assert torch.equal(got_c, ref_c) and torch.equal(got_w, ref_w)
            assert torch.equal(pre[0], s.to(torch.int64)) and hit.dtype == delta.dtype == torch.int64
            full = torch.zeros(step.numel(), dtype=torch.int64).index_put_((hit,), delta).view(step.shape)
            assert torch.equal(full, step)


def test_weights_set_between_batches_are_used():
    """The float copy of W kept across batches (updated at the carried weights only) follows a W
    replaced or edited in place between batches, as a fresh learner loaded with that state does."""
    cfg = TrainConfig(mode="exact", weights="int8", hidden=(16,), input_side=8, seed=5)
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (3, 20, 8, 8), generator=gen, dtype=torch.uint8)
    t = torch.randint(0, 10, (3, 20), generator=gen)
    A, B = make_exact(cfg), make_exact(cfg)
    A.train_batch(x[0], t[0]), B.train_batch(x[0], t[0])
    A.W[0] = A.W[0].clone()
    A.W[0][:, 0] = 7  # replaced
    B.W[0][:, 0] = 7  # edited in place
    B.W[1].add_(1).clamp_(-128, 127)
    A.W[1] = B.W[1].clone()
    C = make_exact(cfg)
    C.load_state_dict(A.state_dict())
    for L in (A, B, C):
        L.train_batch(x[1], t[1])
        L.train_batch(x[2], t[2])
    for L in (B, C):
        assert all(torch.equal(a, b) for a, b in zip(A.W + A.C, L.W + L.C))
