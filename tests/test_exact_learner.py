"""The exact-mode learner interface, determinism, batch/sequential equivalence, parameter
validation and the golden trace (docs/arithmetic.md §8-§12)."""

import json

import pytest
import torch

from bshw.cli import main
from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner
from bshw.golden.exact.trace import make_trace, read_trace


def _cfg(**kw):
    base = dict(hidden=(6,), input_side=4, weights="int8", mode="exact", seed=5, batch=8)
    return TrainConfig(**{**base, **kw})


def _data(n, side=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, side, side), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_interface():
    L = make_learner(_cfg())
    assert [(d["fan_in"], d["fan_out"], d["synapses"], d["neurons"]) for d in L.layers] == [(16, 6, 96, 6), (6, 10, 60, 10)]
    x, t = _data(8)
    out = L.train_batch(x, t)
    assert set(out) >= {"loss", "activity"} and len(out["activity"]) == 2
    assert set(out["activity"][0]) >= {"x_active", "dy_nonzero", "carries_per_weight"}
    for m in ("hp", "binary", "stochastic"):
        p = L.predict(x, m, votes=3)
        assert p.dtype == torch.int64 and p.shape == (8,) and ((0 <= p) & (p < 10)).all()
    curve = {1: None, 3: None}
    L.predict(x, "stochastic", votes=3, curve=curve)
    assert all(v.shape == (8,) for v in curve.values())
    assert [tuple(w.shape) for w in L.float_weights()] == [(6, 16), (10, 6)]
    assert L.predict(_data(2, side=8)[0], "binary").shape == (2,)  # larger images are downsampled


def test_deterministic_and_state_roundtrip():
    x, t = _data(24)
    A, B = make_learner(_cfg()), make_learner(_cfg())
    A.train_batch(x[:8], t[:8])
    B.load_state_dict(A.state_dict())
    for i in (8, 16):
        A.train_batch(x[i:i + 8], t[i:i + 8]), B.train_batch(x[i:i + 8], t[i:i + 8])
    assert all(torch.equal(a, b) for a, b in zip(A.W, B.W)) and all(torch.equal(a, b) for a, b in zip(A.C, B.C))
    assert torch.equal(A.predict(x, "stochastic", 2), B.predict(x, "stochastic", 2))
    C = make_learner(_cfg(seed=6))
    assert not all(torch.equal(a, c) for a, c in zip(A.W, C.W))
    with pytest.raises(BshwError):
        make_learner(_cfg(hw={"tie": "zero"})).load_state_dict(A.state_dict())


@pytest.mark.parametrize("output", ["onchip", "host"])
def test_batch_equals_sample_by_sample(output):
    """The vectorized batch draws exactly what the hardware draws processing samples one by one."""
    hw = {"th": 10**6, "counter_bits": 32, "output": output}
    x, t = _data(6)
    A, B = make_learner(_cfg(hw=hw, batch=6)), make_learner(_cfg(hw=hw, batch=1))
    A.train_batch(x, t)
    for i in range(6):
        B.train_batch(x[i:i + 1], t[i:i + 1])
    assert all(torch.equal(a, b) for a, b in zip(A.C, B.C)) and any(c.abs().sum() > 0 for c in A.C)
    assert torch.equal(A.in_bank.states, B.in_bank.states)
    assert all(a is None or torch.equal(a.states, b.states) for a, b in zip(A.banks, B.banks))


@pytest.mark.parametrize("kw", [
    dict(weights="fp32"), dict(weights="memristor"), dict(algo="HHH"), dict(net="cnn"),
    dict(hw={"bogus": 1}), dict(hw={"tie": "random"}), dict(hw={"output": "fpga"}),
    dict(hw={"deriv_k": 3}), dict(hw={"noise_words": [0, 7]}), dict(hw={"noise_words": [16, 16, 16]}),
    dict(hw={"noise_words": "gauss"}), dict(hw={"th": 0}), dict(hw={"counter_bits": 1}),
    dict(hw={"th": 100, "counter_bits": 6})])
def test_bad_parameters_raise(kw):
    with pytest.raises(BshwError):
        make_learner(_cfg(**kw))


def test_bad_calls_raise():
    L = make_learner(_cfg())
    x, t = _data(4)
    with pytest.raises(BshwError):
        L.predict(x, "exact")
    with pytest.raises(BshwError):
        L.train_batch(x.float(), t)
    with pytest.raises(BshwError):
        L.train_batch(x, t[:3])


def test_trace_obeys_the_rules():
    """Every recorded sample satisfies §4-§9 and steps chain: a bench reading it sees one story."""
    cfg = _cfg(batch=3, hw={"deriv_k": 2})
    x, t = _data(6)
    text = make_trace(cfg, 2, x, t)
    assert text == make_trace(cfg, 2, x, t)
    lines = [json.loads(s) for s in text.splitlines()]
    hd, steps = lines[0], lines[1:]
    assert (hd["format"], hd["version"], hd["params"]["T"], hd["params"]["deriv_k"]) == ("bshw-exact-trace", 1, 142, 2)
    T, th = hd["params"]["T"], hd["params"]["th"]
    W, C = [torch.tensor(w) for w in hd["init"]["weights"]], [torch.tensor(c) for c in hd["init"]["counters"]]
    for st in steps:
        acc = [torch.zeros_like(c) for c in C]
        for s, lab in zip(st["samples"], st["labels"]):
            xin = torch.tensor(s["x0"])
            assert xin.tolist() == [int(r % 255 < p) for r, p in zip(s["r"], s["pixels"])]
            for l, e in enumerate(s["layers"]):
                y, S = torch.tensor(e["y"]), torch.tensor(e["S"])
                assert torch.equal(y, xin @ W[l])
                fires = (y[None] + S > T).long()
                assert e["x"] == fires[0].tolist()
                if "A" in e:
                    assert e["A"] == fires[1::2].tolist() and e["B"] == fires[2::2].tolist()
                    d = (fires[1::2] & (1 - fires[2::2])).amax(0)
                    assert e["d"] == d.tolist()
                    assert e["dy"] == (torch.tensor(e["dz"]) * d).tolist()
                    up = torch.tensor(s["layers"][l + 1]["dy"])
                    assert torch.equal(torch.tensor(e["dx"]), W[l + 1] @ up)
                else:
                    assert e["dy"] == [xo - int(j == lab) for j, xo in enumerate(e["x"])]
                acc[l] += torch.outer(xin, torch.tensor(e["dy"]))
                xin = torch.tensor(e["x"])
        for l, u in enumerate(st["update"]):
            pre = C[l] + acc[l]
            assert u["counter_pre"] == pre.tolist()
            step = (pre <= -th).long() - (pre >= th).long()
            assert u["carry"] == step.tolist()
            W[l] = (W[l] + step).clamp(-128, 127)
            C[l] = torch.where(step != 0, 0, pre)
            assert u["weights"] == W[l].tolist() and u["counter"] == C[l].tolist()


def test_trace_cli(tmp_path):
    out = tmp_path / "t.jsonl"
    assert main(["trace", "--steps", "1", "--seed", "2", "--batch", "2", "--out", str(out)]) == 0
    hd, steps = read_trace(out)
    assert hd["seed"] == 2 and len(steps) == 1 and len(steps[0]["samples"]) == 2
    assert hd["layers"][0]["fan_in"] == 64 and hd["layers"][0]["fan_out"] == 32
    assert main(["trace", "--steps", "1", "--out", str(out), "--hw", "{bad"]) == 2
