"""The float golden model: each rule of docs/algorithm.md pinned, plus the learning loop."""

import json
import math

import pytest
import torch

from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.golden.data import Dataset, load_dataset
from bshw.golden.model import (
    FloatLearner,
    derivative_probability,
    describe_network,
    sample_derivative,
    sign_with_tie,
)
from bshw.golden.train import fit
from bshw.golden.weights import MemristorParams, PeriodicCarry, carry_threshold

Z = torch.tensor([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])


def within_binomial(freq, p, n, sigmas=5.0):
    """|freq - p| <= 5 standard errors: a false alarm rate below 1e-6 per value."""
    return (freq - p).abs() <= sigmas * torch.sqrt(p * (1 - p) / n) + 1e-12


@pytest.mark.parametrize("k", [None, 1, 2, 4])
def test_sampled_derivative_frequency(k):
    n = 40_000
    gen = torch.Generator().manual_seed(1)
    d = sample_derivative(Z.expand(n, -1).contiguous(), 4.0, k, gen)
    want = derivative_probability(Z, 4.0, k)
    if k is None:
        assert torch.allclose(want, 4 * Z * (1 - Z))
    else:  # k pairs (A AND NOT B) OR-ed: 1 - (1 - z(1-z))^k
        assert torch.allclose(want, 1 - (1 - Z * (1 - Z)) ** k)
    assert within_binomial(d.mean(0), want, n).all(), (d.mean(0), want)


def test_derivative_truncated_at_one():
    z = torch.full((20_000,), 0.5)
    assert sample_derivative(z, 8.0, None).min() == 1.0  # a z (1-z) = 2 -> probability 1


def test_sign_tie_rules():
    dx = torch.tensor([-2.0, 0.0, 3.0, 0.0])
    assert sign_with_tie(dx, "zero").tolist() == [-1, 0, 1, 0]
    assert sign_with_tie(dx, "plus").tolist() == [-1, 1, 1, 1]
    r = sign_with_tie(torch.zeros(10_000), "random", torch.Generator().manual_seed(0))
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(r.mean()) < 0.05
    assert sign_with_tie(dx, "random")[[0, 2]].tolist() == [-1, 1]


def _mean_gradients(cfg, x, t, reps):
    learner = FloatLearner(cfg)
    acc = None
    for _ in range(reps):
        g, _, _ = learner.gradients(x, t)
        acc = g if acc is None else [a + b for a, b in zip(acc, g)]
    return [a / reps for a in acc]


@pytest.fixture(scope="module")
def tiny_batch():
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (8, 28, 28), generator=gen, dtype=torch.uint8)
    return x, torch.arange(8) % 10


@pytest.mark.parametrize("algo,hidden", [("HHS", (6,)), ("HSH", ())])
def test_bs_gradient_mean_equals_hp(tiny_batch, algo, hidden):
    """Law of total expectation (Eq. 1 vs Eq. 2): where the sampled factor enters the gradient
    linearly (D:S; the output's z_B - t of Eq. 6) the mean BS gradient IS the HP gradient."""
    x, t = tiny_batch
    common = dict(net="fc", hidden=hidden, input_side=4, seed=3)
    hp = _mean_gradients(TrainConfig(algo="HHH", **common), x, t, 1)
    bs = _mean_gradients(TrainConfig(algo=algo, **common), x, t, 3000)
    for h, b in zip(hp, bs):
        # tolerance: 5 standard errors of the mean of a ternary-ish draw scaled by |h| bounds
        assert torch.allclose(b, h, atol=0.1 + 0.05 * h.abs().max().item()), (b - h).abs().max()
        assert torch.nn.functional.cosine_similarity(b.flatten(), h.flatten(), dim=0) > 0.99


def test_sss_gradient_points_like_hp(tiny_batch):
    """Full SSS adds the sign and the sampled forward pass, which are not linear: its mean gradient
    is not the HP gradient, but must point the same way (cosine >= 0.8, measured ~0.9)."""
    x, t = tiny_batch
    common = dict(net="fc", hidden=(6,), input_side=4, seed=3)
    hp = _mean_gradients(TrainConfig(algo="HHH", **common), x, t, 1)
    bs = _mean_gradients(TrainConfig(algo="SSS", **common), x, t, 3000)
    for h, b in zip(hp, bs):
        assert torch.nn.functional.cosine_similarity(b.flatten(), h.flatten(), dim=0) > 0.8


def test_sss_gradients_are_whole_numbers(tiny_batch):
    x, t = tiny_batch
    g, _, _ = FloatLearner(TrainConfig(algo="SSS", hidden=(6,), input_side=4)).gradients(x, t)
    for gi in g:
        assert torch.equal(gi, gi.round())


# ---- periodic carry ------------------------------------------------------------------------

def test_carry_threshold_rule():
    # INT8 over [-1, 1]: LSB 1/128; batch 100, lr 0.1 -> th = round(0.0078125 * 1000) = 8
    assert carry_threshold(1 / 128, 100, 0.1) == 8
    assert carry_threshold(1e-6, 100, 0.1) == 1  # never below one count


def test_periodic_carry_steps_exactly():
    pc = PeriodicCarry(torch.zeros(4), bits=4, w_range=1.0, lr=0.1, batch=100)
    assert (pc.scale, pc.th, pc.qmin, pc.qmax) == (0.125, 125, -8, 7)
    pc.q[:] = torch.tensor([0, 0, 7, -8], dtype=torch.int32)
    pc.step(torch.tensor([124.0, -124.0, -200.0, 300.0]))  # no carry / no carry / sat / sat
    assert pc.q.tolist() == [0, 0, 7, -8] and pc.acc.tolist() == [124.0, -124.0, 0.0, 0.0]
    pc.step(torch.tensor([1.0, -1.0, 0.0, 0.0]))  # reaches th+ / th- exactly: one step, cleared
    assert pc.q.tolist() == [-1, 1, 7, -8] and pc.acc.tolist() == [0.0, 0.0, 0.0, 0.0]
    pc.step(torch.tensor([1000.0, 0.0, 0.0, 0.0]))  # far past th: still ONE unit step
    assert pc.q.tolist() == [-2, 1, 7, -8]
    assert torch.equal(pc.w, pc.q.float() * 0.125)


def test_ternary_levels():
    pc = PeriodicCarry(torch.zeros(3), bits=2, w_range=0.5, lr=0.1, batch=100)
    assert (pc.qmin, pc.qmax, pc.scale) == (-1, 1, 0.5)
    for _ in range(3):
        pc.step(torch.tensor([-1e4, 1e4, 0.0]))
    assert pc.q.tolist() == [1, -1, 0]


def test_bad_bits():
    with pytest.raises(BshwError):
        PeriodicCarry(torch.zeros(1), bits=1, w_range=1.0, lr=0.1, batch=100)


# ---- memristor device model ------------------------------------------------------------------

def test_memristor_eq7_eq8_trajectory():
    """With gamma = 0, N_p potentiation pulses take G_min exactly to G_max (Eq. 7), and N_d
    depression pulses take G_max to G_min (Eq. 8)."""
    p = MemristorParams(gamma=0.0)
    g = torch.tensor([p.g_min], dtype=torch.float64)
    for _ in range(p.n_p):
        g = p.pulse(g, potentiate=True)
    assert g.item() == pytest.approx(p.g_max, rel=1e-9)
    for _ in range(p.n_d):
        g = p.pulse(g, potentiate=False)
    assert g.item() == pytest.approx(p.g_min, abs=1e-9)
    # nonlinearity: the first pulse from G_min is the largest
    assert p.mean_dg_pot(p.g_min) > p.mean_dg_pot(p.g_max - 1)


def test_memristor_eq9_spread():
    p = MemristorParams()  # gamma = 2
    g0 = torch.full((200_000,), 12.0, dtype=torch.float64)
    dg = p.pulse(g0, potentiate=True, gen=torch.Generator().manual_seed(0)) - g0
    m = p.mean_dg_pot(12.0)
    # clipping at G_min/G_max is out of reach: |dG| < 12 here with overwhelming odds
    assert dg.mean().item() == pytest.approx(m, rel=0.02)
    assert dg.std().item() == pytest.approx(2 * m, rel=0.02)
    assert (dg < 0).float().mean().item() == pytest.approx(0.3085, abs=0.01)  # P(N(1, 2^2) < 0)


def test_memristor_params_validated():
    with pytest.raises(BshwError):
        MemristorParams.from_dict({"g_mx": 3})
    with pytest.raises(BshwError):
        MemristorParams(g_max=0.05)


# ---- networks, learning, runs --------------------------------------------------------------

def test_describe_networks():
    fc = describe_network(TrainConfig())
    assert [(l["fan_in"], l["fan_out"]) for l in fc] == [(784, 500), (500, 200), (200, 10)]
    cnn = describe_network(TrainConfig(net="cnn"))
    assert [l["synapses"] for l in cnn] == [8 * 81, 12 * 8 * 25, 108 * 10]  # Fig. 4a, FC 108x10
    vgg = describe_network(TrainConfig(net="vgg"))
    assert sum(l["kind"] == "conv" for l in vgg) == 6 and sum(l["kind"] == "fc" for l in vgg) == 3


@pytest.fixture(scope="module")
def mnist_small():
    return load_dataset("mnist")


def _small(data, n=1000, nt=300):
    return Dataset(data.name, data.source, data.train_x[:n], data.train_y[:n], data.test_x[:nt],
                   data.test_y[:nt], data.subset)


@pytest.mark.parametrize("algo", ["HHH", "HHS", "HSH", "HSS", "SHH", "SHS", "SSH", "SSS"])
def test_all_eight_variants_learn(mnist_small, algo):
    cfg = TrainConfig(algo=algo, hidden=(64,), input_side=14, epochs=2, seed=0, votes=3)
    m = fit(cfg, progress=False, data=_small(mnist_small, 2000))
    err = m["epochs"][-1]["test_error"]["hp"]
    assert err < 0.45, (algo, err)  # chance is 0.90
    assert m["epochs"][-1]["train_loss"] < m["epochs"][0]["train_loss"] * 1.05


@pytest.mark.parametrize("weights", ["int8", "int4", "ternary", "memristor"])
def test_weight_kinds_learn(mnist_small, weights):
    cfg = TrainConfig(algo="SSS", weights=weights, hidden=(64,), input_side=14, epochs=2, votes=1)
    m = fit(cfg, progress=False, data=_small(mnist_small, 2000))
    assert m["epochs"][-1]["test_error"]["hp"] < 0.6, weights
    assert all(a["carries_per_weight"] is not None for a in m["epochs"][-1]["activity"])


def test_cnn_and_vgg_train_step():
    for net, shape in (("cnn", (4, 28, 28)), ("vgg", (4, 3, 32, 32))):
        learner = FloatLearner(TrainConfig(net=net, algo="SSS", weights="int8"))
        x = torch.randint(0, 256, shape, dtype=torch.uint8)
        s = learner.train_batch(x, torch.tensor([1, 2, 3, 4]))
        assert len(s["activity"]) == len(learner.layers) and math.isfinite(s["loss"])
        for m in ("hp", "binary", "stochastic"):
            assert learner.predict(x, m, votes=3).shape == (4,)


def test_deterministic_and_resume_exact(mnist_small, tmp_path):
    data = _small(mnist_small, 600, 200)
    base = dict(hidden=(32,), input_side=14, votes=2, weights="int8", seed=5)
    full = fit(TrainConfig(epochs=2, **base), tmp_path / "a", progress=False, data=data)
    again = fit(TrainConfig(epochs=2, **base), tmp_path / "b", progress=False, data=data)
    fit(TrainConfig(epochs=1, **base), tmp_path / "c", progress=False, data=data)
    resumed = fit(TrainConfig(epochs=2, **base), tmp_path / "c", resume=True, progress=False, data=data)
    key = lambda m: [(e["train_loss"], e["test_error"]) for e in m["epochs"]]  # noqa: E731
    assert key(full) == key(again) == key(resumed)
    saved = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2]
    for name in ("learning_curves", "weight_density", "activation_cdf"):
        assert (tmp_path / "c" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BshwError, match="another network"):
        fit(TrainConfig(epochs=3, **{**base, "hidden": (16,)}), tmp_path / "c", resume=True,
            progress=False, data=data)


def test_config_validation(tmp_path):
    for bad in (dict(algo="SXS"), dict(epochs=-1), dict(weights="int1"), dict(tie="minus"),
                dict(deriv_k=3), dict(net="rnn"), dict(batch=0)):
        with pytest.raises(BshwError):
            TrainConfig(**bad)
    f = tmp_path / "c.toml"
    f.write_text("[train]\nalgo = 'SSS'\nlearning = 3\n")
    with pytest.raises(BshwError, match="unknown key 'learning'"):
        TrainConfig.from_toml(f)
    f.write_text("algo = [")
    with pytest.raises(BshwError, match="not valid TOML"):
        TrainConfig.from_toml(f)


def test_cli_errors_are_one_line(capsys, tmp_path):
    from bshw.cli import main

    assert main(["train", "--algo", "QQQ"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "algo" in err
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--out", str(tmp_path), "--resume", "--epochs", "1", "--train-limit", "100"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "checkpoint" in err
