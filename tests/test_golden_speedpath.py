"""The float model's CPU random source (issue 21) and the faster periodic-carry form, each pinned
against its reference form: numpy PCG64 float32 uniforms on torch.rand's 2^-24 grid, Bernoulli draws
equal to ``uniform < p`` exactly and at frequency p, the generator state through a checkpoint, and
carry() equal to the plain ``inc - dec`` / ``masked_fill`` form bit for bit."""

import numpy as np
import pytest
import torch

from bshw.golden.config import TrainConfig
from bshw.golden.exact.carry import carry
from bshw.golden.model import (
    FloatLearner,
    bernoulli,
    generator_state,
    make_generator,
    set_generator_state,
    sign_with_tie,
    uniform,
)


def within_binomial(freq, p, n, sigmas=5.0):
    return (freq - p).abs() <= sigmas * torch.sqrt(p * (1 - p) / n) + 1e-12


def test_cpu_generator_is_numpy_pcg64_and_float_learner_uses_it():
    assert isinstance(make_generator(3, "cpu"), np.random.Generator)
    assert isinstance(make_generator(3, "cpu").bit_generator, np.random.PCG64)
    L = FloatLearner(TrainConfig(algo="SSS", hidden=(8,), input_side=4, seed=3))
    assert isinstance(L.gen, np.random.Generator) and L.rules.gen is L.gen


def test_numpy_uniforms_on_the_same_grid_as_torch_rand():
    """float32 draws are k / 2^24, k uniform on [0, 2^24) (24 fair bits), like torch.rand's; float64
    draws k / 2^53. Checked: on the grid, in range, and the lowest and highest bits fair."""
    n = 200_000
    like = torch.empty(0)
    u = uniform((n,), make_generator(0, "cpu"), like)
    assert u.dtype == torch.float32 and u.shape == (n,)
    k = u.double() * 2 ** 24
    assert torch.equal(k, k.floor()) and k.min() >= 0 and k.max() < 2 ** 24
    t = torch.rand(n, generator=torch.Generator().manual_seed(0)).double() * 2 ** 24
    assert torch.equal(t, t.floor())  # the reference form's grid
    ki = k.long()
    half = torch.tensor(0.5, dtype=torch.float64)
    for bit in (0, 1, 12, 23):
        assert within_binomial(((ki >> bit) & 1).double().mean(), half, n), bit
    d = uniform((n,), make_generator(0, "cpu"), torch.empty(0, dtype=torch.float64))
    assert d.dtype == torch.float64
    k64 = d * 2 ** 53
    assert torch.equal(k64, k64.floor()) and within_binomial((d < 0.5).double().mean(), half, n)
    assert uniform((2, 3), make_generator(0, "cpu"), torch.empty(0, dtype=torch.float16)).dtype == torch.float16
    assert uniform((), make_generator(0, "cpu"), like).shape == ()


def test_bernoulli_numpy_equals_reference_form_and_frequency():
    """bernoulli(p, gen) is ``uniform < p`` from the same draws, and fires at rate p (0 and 1 exact)."""
    p = torch.tensor([0.0, 1e-3, 0.1, 0.3, 0.5, 0.77, 0.999, 1.0])
    n = 40_000
    P = p.expand(n, -1).contiguous()
    g1, g2 = make_generator(9, "cpu"), make_generator(9, "cpu")
    x = bernoulli(P, g1)
    ref = (torch.from_numpy(g2.random(P.shape, dtype=np.float32)) < P).float()
    assert x.dtype == torch.float32 and torch.equal(x, ref)
    assert torch.equal(generator_state(g1), generator_state(g2))
    f = x.mean(0).double()
    assert f[0] == 0 and f[-1] == 1
    assert within_binomial(f, p.double(), n).all(), (f, p)


def test_generator_state_round_trip():
    """The 37-byte state restores the stream exactly, also with a buffered half word (odd count of
    float32 draws so far)."""
    g = make_generator(5, "cpu")
    g.random(7, dtype=np.float32)  # odd: one 32-bit half of a 64-bit output is buffered
    s = generator_state(g)
    assert s.dtype == torch.uint8 and s.shape == (37,)
    a = g.random(11, dtype=np.float32)
    h = make_generator(123, "cpu")
    set_generator_state(h, s)
    assert np.array_equal(h.random(11, dtype=np.float32), a)
    assert torch.equal(generator_state(h), generator_state(g))
    t = torch.Generator().manual_seed(1)  # a torch generator passes through
    set_generator_state(t, generator_state(torch.Generator().manual_seed(2)))
    assert torch.equal(t.get_state(), torch.Generator().manual_seed(2).get_state())


def test_float_learner_state_dict_resumes_the_draws():
    """A learner loaded from another's state_dict continues with the same draws and weights."""
    cfg = TrainConfig(algo="SSS", hidden=(16, 8), input_side=8, seed=4)
    g = torch.Generator().manual_seed(4)
    x = torch.randint(0, 256, (3, 12, 28, 28), dtype=torch.uint8, generator=g)
    t = torch.randint(0, 10, (3, 12), generator=g)
    A = FloatLearner(cfg)
    A.train_batch(x[0], t[0])
    A.gen.random(3, dtype=np.float32)  # leave a buffered half word in the state
    B = FloatLearner(cfg)
    B.load_state_dict({k: (v.clone() if isinstance(v, torch.Tensor) else
                           [{kk: vv.clone() for kk, vv in w.items()} for w in v])
                       for k, v in A.state_dict().items()})
    for i in (1, 2):
        a, b = A.train_batch(x[i], t[i]), B.train_batch(x[i], t[i])
        assert a == b
    assert all(torch.equal(u, v) for u, v in zip(A.float_weights(), B.float_weights()))


def test_sign_tie_random_numpy_generator():
    r = sign_with_tie(torch.zeros(10_000), "random", make_generator(0, "cpu"))
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(r.mean()) < 0.05
    dx = torch.tensor([-2.0, 0.0, 3.0])
    assert sign_with_tie(dx, "random", make_generator(0, "cpu"))[[0, 2]].tolist() == [-1, 1]


def _carry_reference(c, w, th, wmin, wmax):
    """The plain form of §9's carry (the code before issue 21)."""
    dec, inc = c >= th, c <= -th
    step = inc.to(c.dtype).sub_(dec.to(c.dtype))
    w = (w + step).clamp_(wmin, wmax)
    c = c.masked_fill(step != 0, 0)
    return c, w, step


@pytest.mark.parametrize("th", [1, 3, 8, 100])
def test_carry_equals_reference_form(th):
    """Bit for bit, dtypes included, with counters at and around +-th and weights at their bounds;
    the inputs are left as they were."""
    g = torch.Generator().manual_seed(th)
    c = torch.randint(-th - 3, th + 4, (37, 23), generator=g, dtype=torch.int64)
    c[0, :4] = torch.tensor([th, -th, th - 1, 1 - th])
    w = torch.randint(-128, 128, (37, 23), generator=g, dtype=torch.int64)
    w[1], w[2] = -128, 127
    c[1], c[2] = -th, th  # a step beyond each bound saturates
    c0, w0 = c.clone(), w.clone()
    got, want = carry(c, w, th, -128, 127), _carry_reference(c, w, th, -128, 127)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and torch.equal(a, b)
    assert torch.equal(c, c0) and torch.equal(w, w0)
    t = torch.tensor([[float(th)]])  # a float counter (1 x 1, as the carry bench drives it)
    for a, b in zip(carry(t, torch.zeros(1, 1), th, -1, 1), _carry_reference(t, torch.zeros(1, 1), th, -1, 1)):
        assert a.dtype == b.dtype and torch.equal(a, b)
