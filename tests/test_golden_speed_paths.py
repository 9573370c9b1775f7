"""The fast paths of issue 21 against their reference forms: block LFSR draws against the one-step
LFSR, the fused float FC layers against plain autograd, lazily read statistics; and the same runs
on CUDA (skipped without one): every tensor on the configured device, exact mode bit-identical."""

import hashlib
import random

import pytest
import torch
import torch.nn.functional as F

from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner as make_exact
from bshw.golden.exact.lfsr import I16, N32, LfsrBank, leap, seed_state, step
from bshw.golden.exact.noise import NoiseSpec, mod255, mod255_table
from bshw.golden.exact.trace import make_trace
from bshw.golden.inputs import downsample, to_unit
from bshw.golden.model import FloatLearner

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (torch.cuda.is_available() is False)")


@pytest.mark.parametrize("spec", [N32, I16], ids=["N32", "I16"])
def test_block_draws_equal_one_step_reference(spec):
    """Words, weighted sums and end states of LfsrBank against leap() (the §3 one-step form), for odd
    leaps, call sizes that straddle the table blocks, and repeated calls."""
    rnd = random.Random(21)
    for L in (1, 5, 16, 19, 24, 32):
        states = [rnd.randrange(1, spec.mask + 1) for _ in range(3)]
        bank, ref = LfsrBank(spec, states, L), list(states)
        for n in (1, 3, 0, 70):
            got = bank.draw(n)
            assert got.dtype == torch.int64 and got.shape == (n, 3)
            for j in range(3):
                for m in range(n):
                    word = 0
                    for _ in range(L):  # the draw's fresh bits, newest in bit 0 (also for L > width)
                        ref[j] = step(ref[j], spec)
                        word = (word << 1) | (ref[j] & 1)
                    assert int(got[m, j]) == word
                    if L <= spec.width:
                        assert word == leap(ref[j], spec, 0) & ((1 << L) - 1)
            assert bank.states.tolist() == ref
    words = (7, 7, 5)
    spec_n = NoiseSpec(words)
    bank = LfsrBank(N32, [seed_state(1, j, N32) for j in range(4)], spec_n.bits)
    raw = LfsrBank(N32, [seed_state(1, j, N32) for j in range(4)], spec_n.bits).draw(1500)
    S = bank.draw(1500, spec_n.coef)  # crosses the 1024-draw block
    want = torch.tensor([[sum(spec_n.split(int(v))) for v in row] for row in raw.tolist()])
    assert torch.equal(S, want)


def test_draw_t_is_draw_transposed():
    a = LfsrBank(N32, [seed_state(2, j, N32) for j in range(5)], 19)
    b = LfsrBank(N32, [seed_state(2, j, N32) for j in range(5)], 19)
    coef = NoiseSpec((7, 7, 5)).coef
    assert torch.equal(a.draw_t(37, coef).to(torch.int64), b.draw(37, coef).T)
    assert torch.equal(a.states, b.states)


def test_mod255_table_is_mod255():
    r = torch.arange(1 << 16)
    assert torch.equal(mod255_table("cpu").to(torch.int64), mod255(r))


@pytest.mark.parametrize("blank", [False, True], ids=["dense", "zero-columns"])
def test_fused_fc_hhh_gradients_equal_plain_autograd(blank):
    """The fused FC nodes give what stock autograd gives for the HP net (no draws in HHH); with
    ``blank`` half the input pixels are 0 in every image, so the first layer skips those columns."""
    cfg = TrainConfig(algo="HHH", hidden=(12, 7), input_side=8, seed=4)
    L = FloatLearner(cfg)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (6, 28, 28), dtype=torch.uint8, generator=g)
    if blank:
        x[:, :, :14] = 0
    t = torch.randint(0, 10, (6,), generator=g)
    grads, loss, act = L.gradients(x, t)
    ws = [W.w.detach().clone().requires_grad_() for W in L.weights]
    h = to_unit(downsample(x, 8).flatten(1))
    xs = []
    for w in ws[:-1]:
        xs.append(h.mean().item())
        h = torch.sigmoid(cfg.a * F.linear(h, w))
    xs.append(h.mean().item())
    ref = F.cross_entropy(F.linear(h, ws[-1]), t, reduction="sum")
    ref.backward()
    for a, w in zip(grads, ws):
        assert torch.allclose(a, w.grad, atol=1e-5, rtol=1e-4)
    assert abs(loss - ref.item() / 6) < 1e-5
    assert [round(a["x_active"], 5) for a in act] == [round(v, 5) for v in xs]


def test_sss_zero_columns_whole_gradients():
    """SSS with inputs that are 0 in the whole batch: whole-number gradients, zero in those columns,
    and the input activity counted over all inputs."""
    L = FloatLearner(TrainConfig(algo="SSS", hidden=(20,), input_side=8, seed=2))
    g = torch.Generator().manual_seed(2)
    x = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8, generator=g)
    x[:, :, :14] = 0  # the left half of every 8x8 image is 0
    grads, _, act = L.gradients(x, torch.arange(16) % 10)
    assert all(torch.equal(gi, gi.round()) for gi in grads)
    assert grads[0].view(20, 8, 8)[:, :, :4].abs().sum() == 0 and grads[0].abs().sum() > 0
    assert 0 < act[0]["x_active"] < 0.5


def test_sss_statistics_are_fractions():
    L = FloatLearner(TrainConfig(algo="SSS", hidden=(20,), input_side=8, seed=1))
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8, generator=g)
    out = L.train_batch(x, torch.arange(16) % 10)
    assert isinstance(out["loss"], float)
    for a in out["activity"]:
        assert all(isinstance(a[k], float) and 0 <= a[k] <= 1 for k in ("x_active", "dy_nonzero"))
        assert a["dy_nonzero"] > 0


# ---- CUDA: every tensor on the configured device ---------------------------------------------------

def _images(n, seed=7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


@CUDA
@pytest.mark.parametrize("algo,weights", [("SSS", "fp32"), ("SSS", "int8"), ("HHH", "fp32"), ("SSS", "memristor")])
def test_float_training_on_cuda(algo, weights):
    L = FloatLearner(TrainConfig(algo=algo, weights=weights, hidden=(50, 20), input_side=28, device="cuda"))
    x, t = _images(32)
    grads, _, _ = L.gradients(x, t)
    assert all(g.is_cuda for g in grads)
    if algo == "SSS":
        assert all(torch.equal(g, g.round()) for g in grads)
    out = L.train_batch(x, t)
    assert isinstance(out["loss"], float)
    assert all(W.w.is_cuda for W in L.weights)
    for m in ("hp", "binary", "stochastic"):
        assert L.predict(x, m, votes=2).shape == (32,)


@CUDA
@pytest.mark.parametrize("over", [dict(), dict(hw={"output": "host", "deriv_k": 1, "tie": "zero"})])
def test_exact_cuda_equals_cpu(over):
    """Integer arithmetic: the CUDA run is the CPU run, bit for bit (trace and predictions)."""
    x, t = _images(8)
    base = dict(weights="int8", mode="exact", batch=4, seed=7, hidden=(100,), input_side=28, **over)
    texts = [make_trace(TrainConfig.from_dict({**base, "device": d}, where="t"), 2, x, t) for d in ("cpu", "cuda")]
    strip = [s.split("\n", 1)[1] for s in texts]  # the header echoes the config (device)
    assert hashlib.sha256(strip[0].encode()).hexdigest() == hashlib.sha256(strip[1].encode()).hexdigest()
    A, B = (make_exact(TrainConfig.from_dict({**base, "device": d}, where="t")) for d in ("cpu", "cuda"))
    A.train_batch(x[:4], t[:4]), B.train_batch(x[:4], t[:4])
    assert all(w.is_cuda for w in B.W + B.C) and B.in_bank.states.is_cuda
    assert torch.equal(A.predict(x, "stochastic", votes=3), B.predict(x, "stochastic", votes=3))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(A.W, B.W))


# ---- the float FC pass's index-based first layer and error-free samples ------------------------------

def test_binary_rows_products_equal_dense():
    """BinaryRows (x held as the positions of its ones) gives the dense products: x W (float sums),
    x^T dy exactly for ternary dy, also restricted to some rows of the batch."""
    from bshw.golden.model import BinaryRows

    g = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (9, 40), dtype=torch.uint8, generator=g)
    pixels[:, ::3] = 0
    pixels[4] = 0  # a sample with no ones
    lit = pixels.reshape(-1).nonzero().squeeze(1)
    x = BinaryRows.sample(pixels, lit, g)
    dense = torch.zeros(9 * 40).index_fill_(0, x.rows * 40 + x.cols, 1.0).view(9, 40)
    assert dense[:, ::3].sum() == 0 and dense[4].sum() == 0 and 0 < dense.mean() < 1
    assert x.sum().item() == dense.sum().item()
    w = torch.randn(40, 7, generator=g)
    assert torch.allclose(x.mm(w), dense @ w, atol=1e-5)
    dy = torch.randint(-1, 2, (9, 7), generator=g).float()
    assert torch.equal(x.t_mm(dy), dense.t() @ dy)
    live = torch.tensor([0, 2, 4, 5, 8])
    assert torch.equal(x.t_mm(dy[live], live), dense[live].t() @ dy[live])


def test_error_free_samples_skipped_same_gradients():
    """A sample whose output error is 0 contributes nothing below (dx = 0 -> dz = 0 under the zero tie
    rule): skipping it in the backward gives the same gradients. HSH has no draws below the output's
    z_B, so both learners see the same draws; a wide, steep output makes error-free samples common."""
    cfg = TrainConfig(algo="HSH", hidden=(16, 8), input_side=8, seed=5, a=0.5)
    skip, full = FloatLearner(cfg), FloatLearner(cfg)
    full.SKIP_ERROR_FREE = False
    x, t = _images(64, seed=2)
    t[:] = 3
    for W in (skip.weights[-1], full.weights[-1]):  # the output strongly favours class 3
        W.w.zero_()[3] = 0.6
    gs, ls, acts = skip.gradients(x, t)
    gf, lf, actf = full.gradients(x, t)
    assert 0.02 < actf[-1]["dy_nonzero"] < 0.15 and ls == lf and acts == actf
    for a, b in zip(gs, gf):
        assert torch.allclose(a, b, atol=1e-5) and a.abs().sum() > 0


@pytest.mark.parametrize("source", ["torch", "numpy"])
def test_binary_rows_sample_same_draws_as_torch_reference(source):
    """BinaryRows' numpy bookkeeping (lit pixels, draws, rows/columns, the regrouping by column)
    gives the reference form's ones from the same draws: ``uniform(len(lit)) < pixels[lit] / 255``
    at the ascending nonzero pixels, one uniform each, from a torch generator (and leaves it in the
    same state) or from the learner's numpy generator (``make_generator``)."""
    import numpy as np

    from bshw.golden.model import BinaryRows, generator_state, make_generator

    g = torch.Generator().manual_seed(11)
    pixels = torch.randint(0, 256, (7, 50), dtype=torch.uint8, generator=g)
    pixels[pixels < 120] = 0
    pixels[:, 5] = 255  # p = 1: always on
    pixels[3] = 0  # a sample with no lit pixel
    lit = pixels.reshape(-1).nonzero().squeeze(1)
    p = to_unit(pixels.reshape(-1)[lit])
    if source == "numpy":
        g1, g2 = make_generator(5, "cpu"), make_generator(5, "cpu")
        x = BinaryRows.sample(pixels, BinaryRows.lit(pixels), g1)
        ones = lit[torch.from_numpy(g2.random(len(lit), dtype=np.float32)) < p]
        assert torch.equal(x.rows * 50 + x.cols, ones)
        assert torch.equal(generator_state(g1), generator_state(g2))
        assert torch.equal(x.offsets, torch.searchsorted(ones.div(50, rounding_mode="floor"), torch.arange(7)))
        assert x.counts.tolist() == torch.bincount(ones // 50, minlength=7).tolist()
        assert (x.cols == 5).sum() == 6
        return
    assert torch.equal(torch.from_numpy(BinaryRows.lit(pixels)), lit)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = BinaryRows.sample(pixels, BinaryRows.lit(pixels), g1)
    ones = lit[torch.rand(len(lit), generator=g2) < p]
    assert torch.equal(x.rows * 50 + x.cols, ones) and torch.equal(g1.get_state(), g2.get_state())
    assert torch.equal(x.offsets, torch.searchsorted(ones.div(50, rounding_mode="floor"), torch.arange(7)))
    assert x.sum().item() == len(ones) and (x.cols == 5).sum() == 6
    dense = torch.zeros(7 * 50).index_fill_(0, ones, 1.0).view(7, 50)
    dy = torch.randint(-1, 2, (7, 3), generator=g).float()
    assert torch.equal(x.t_mm(dy), dense.t() @ dy)
    live = torch.tensor([1, 3, 6])  # a live row without ones
    assert torch.equal(x.t_mm(dy[live], live), dense[live].t() @ dy[live])


@pytest.mark.parametrize("width", [4, 40])
def test_t_mm_exact_form_equals_dense(width):
    """The weight gradient of binary x and ternary dy (whole numbers, any summation order) by the
    thin-output BLAS form equals x^T dy bit for bit, with and without error-free rows skipped."""
    from bshw.golden.model import t_mm

    g = torch.Generator().manual_seed(4)
    x = (torch.rand(12, 30, generator=g) < 0.5).float()
    dy = torch.randint(-1, 2, (12, width), generator=g).float()
    assert torch.equal(t_mm(x, dy, exact=True), x.t() @ dy)
    live = torch.tensor([0, 3, 4, 9, 11])
    got = t_mm(x, dy[live], live, exact=True)
    assert got.shape == (30, width) and torch.equal(got, x[live].t() @ dy[live])
