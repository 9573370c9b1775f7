# amaranth: UnusedElaboratable=no
"""The memristor device model of the crossbar (docs/arithmetic.md §16, issue 16): presets and their
integers, validation, the Eq. 9 draw's shape, the exact mode's conductance updates against a
per-pulse reference written from the spec text, and (marked ``sim``) both macro models and the RTL
bit for bit against golden traces of the ``paper-fig5`` device, and a mutant of the step rounding
that the network bench catches. Device-to-device variation (``d2d``): validation, the factors' stated
mean and spread, d2d = 0 changing nothing, and the exact mode = numpy macros = Verilog model with
d2d > 0.
"""

import json
import os

import numpy as np
import pytest
import torch

from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner
from bshw.golden.exact.device import ArrayDevice, DeviceModel
from bshw.golden.exact.trace import make_trace


def _cfg(**over):
    return TrainConfig.from_dict({"weights": "int8", "mode": "exact", "hidden": (32,), "input_side": 8, **over},
                                 where="device test")


def _params(cfg) -> dict:
    """The learner's resolved parameters as the trace header's ``params`` dict."""
    return make_learner(cfg).P.as_dict()


def _data(n, seed=7):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


# -- presets and integers --------------------------------------------------------------------------
def test_ideal_device_adds_nothing():
    """§16: the default (and an explicit "ideal") leaves params and the trace as they were."""
    base = _params(_cfg())
    assert "device" not in base
    assert _params(_cfg(hw={"device": "ideal"})) == base
    x, t = _data(8)
    text = make_trace(_cfg(batch=4), 2, x, t)
    assert "conductance" not in text and "device_lfsr" not in text


def test_paper_fig5_integers():
    """§16's hand-worked numbers: the step constants, steps at g = 0 / g_ref / R, th and counter width."""
    d = DeviceModel("paper-fig5").resolve(-128, 127, 0)
    assert (d["g_range"], d["g_ref"], d["g_bits"]) == (65280, 32768, 16)
    assert (d["kp"], d["cp"], d["kd"], d["cd"]) == (166936, 17239730144, 332211, 3394357877)
    dev = ArrayDevice(d)
    g = np.array([0, 32768, 65280])
    assert dev.step_pot(g).tolist() == [1028, 702, 378]
    assert dev.step_dep(g).tolist() == [202, 851, 1495]
    assert d["nominal"] == 776.5
    P = _params(_cfg(hw={"device": "paper-fig5"}))
    assert (P["th"], P["counter_bits"]) == (24, 8)
    P32 = _params(_cfg(hw={"device": "32-level"}))
    assert (P32["th"], P32["counter_bits"], P32["device"]["cp"], P32["device"]["kp"]) == (64, 9, 35329569693, 0)


def test_ideal_parametrization_is_one_level():
    """The ideal preset's integers are one level per pulse (used when it carries stuck faults)."""
    d = DeviceModel("ideal", stuck=0.5).resolve(-128, 127, 3)
    dev = ArrayDevice(d)
    g = np.arange(0, 256)
    assert (dev.step_pot(g) == 1).all() and (dev.step_dep(g) == 1).all() and d["g_ref"] == 128
    assert (dev.level(g) == g - 128).all()


@pytest.mark.parametrize("over, words", [
    ({"g_min": 30.0}, "g_min"), ({"n_p": 0}, "n_p"), ({"n_d": -3}, "n_d"), ({"gamma": -1.0}, "gamma"),
    ({"alpha_p": -0.5}, "alpha_p"), ({"stuck": 1.0}, "stuck"), ({"frac_bits": 17}, "frac_bits"),
    ({"g_max": float("nan")}, "g_max"), ({"colour": 1}, "colour"),
    ({"d2d": -0.1}, "d2d"), ({"d2d": 1.0}, "d2d"), ({"d2d": 0.34}, "d2d"), ({"d2d": "0.1"}, "d2d"),
    ({"d2d": True}, "d2d"), ({"d2d": float("inf")}, "d2d"),
])
def test_bad_parameters_raise_value_error(over, words):
    with pytest.raises(ValueError, match=words):
        DeviceModel("paper-fig5", **over)


def test_step_table_that_does_not_fit():
    """Steps that round to 0 units (f too small for N) are refused when resolved."""
    with pytest.raises(ValueError, match="step table"):
        DeviceModel("32-level", n_p=1000, frac_bits=0).resolve(-128, 127, 0)
    with pytest.raises(BshwError, match="hw.device: the step table"):
        make_learner(_cfg(hw={"device": {"preset": "32-level", "n_p": 1000, "frac_bits": 0}}))


@pytest.mark.parametrize("hw, words", [
    ({"device": "fig5"}, "hw.device preset 'fig5'"),
    ({"device": {"preset": "paper-fig5", "g_min": 30}}, "hw.device: g_min = 30"),
    ({"device": {"preset": "paper-fig5", "gamma": -1}}, "hw.device.gamma = -1"),
    ({"device": {"preset": "paper-fig5", "d2d": -1}}, "hw.device.d2d = -1"),
    ({"device": {"preset": "paper-fig5", "d2d": "big"}}, "hw.device.d2d = 'big'"),
])
def test_cli_bad_device_exit_2(hw, words, tmp_path, capsys):
    from bshw.cli import main

    rc = main(["trace", "--steps", "1", "--hw", json.dumps(hw), "--out", str(tmp_path / "t.jsonl")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and words in err[0], err


# -- device-to-device variation (§16 d2d) -----------------------------------------------------------
def test_d2d_zero_changes_nothing():
    """d2d = 0 (the default, or given) adds no key: the same params, trace and Verilog parameters."""
    base = _params(_cfg(hw={"device": "paper-fig5"}))
    assert _params(_cfg(hw={"device": {"preset": "paper-fig5", "d2d": 0}})) == base
    assert _params(_cfg(hw={"device": {"preset": "ideal", "d2d": 0.0}})) == _params(_cfg())
    d = DeviceModel("paper-fig5", d2d=0.0).resolve(-128, 127, 0)
    assert "d2d" not in d and "d2d_fix" not in d and "D2D_FIX" not in ArrayDevice(d).verilog_parameters(1)
    assert ArrayDevice(d).d2d_factors(1, 3, 4) is None
    x, t = _data(8)
    a = make_trace(_cfg(batch=4, hw={"device": {"preset": "paper-fig5", "d2d": 0}}), 2, x, t).splitlines()
    b = make_trace(_cfg(batch=4, hw={"device": "paper-fig5"}), 2, x, t).splitlines()
    ha, hb = json.loads(a[0]), json.loads(b[0])
    assert ha["config"]["hw"] != hb["config"]["hw"]  # the config echoes what was given, nothing else differs
    assert {**ha, "config": None} == {**hb, "config": None} and a[1:] == b[1:]
    c = json.loads(make_trace(_cfg(batch=4, hw={"device": {"preset": "paper-fig5", "d2d": 0.3}}), 2, x, t)
                   .splitlines()[2])["update"]
    assert [u["conductance"] for u in c] != [u["conductance"] for u in json.loads(b[2])["update"]]
    d = DeviceModel("paper-fig5", d2d=0.1).resolve(-128, 127, 0)
    assert (d["d2d"], d["d2d_fix"]) == (0.1, 26) and ArrayDevice(d).verilog_parameters(2)["D2D_FIX"] == 26


def test_d2d_factors_statistics():
    """§16: m = 2^16 + d2d_fix v, v = 2 (b0 + b1 + b2) - 765 of the device's splitmix64 hash (b3..b5
    for depression): the stated formula device by device, mean 2^16, std d2d_fix 255.998 (~ d2d
    2^16), bounds [2^16 - 765 d2d_fix, 2^16 + 765 d2d_fix], pot and dep uncorrelated, layers apart."""
    d = DeviceModel("paper-fig5", d2d=0.3).resolve(-128, 127, 11)
    D = d["d2d_fix"]
    assert D == 77
    dev = ArrayDevice(d)
    mp, md = dev.d2d_factors(2, 784, 100)
    for i, j in ((0, 0), (3, 7), (783, 99)):
        z = _splitmix64((11 << 32) + (1 << 29) + (2 << 24) + i * 100 + j)
        b = [(z >> (8 * k)) & 0xFF for k in range(6)]
        assert mp[i, j] == (1 << 16) + D * (2 * sum(b[:3]) - 765)
        assert md[i, j] == (1 << 16) + D * (2 * sum(b[3:]) - 765)
    n = mp.size
    sigma = D * 255.998  # exact std of the factor, units of 2^-16
    for m in (mp, md):
        assert abs(m.mean() - (1 << 16)) < 5 * sigma / n ** 0.5
        assert abs(m.std() / sigma - 1) < 0.02  # 78,400 devices: std of the ratio ~0.25 %
        assert abs(m.std() / (1 << 16) - 0.3) < 0.01
        assert m.min() >= (1 << 16) - 765 * D and m.max() <= (1 << 16) + 765 * D
    assert abs(np.corrcoef(mp.ravel(), md.ravel())[0, 1]) < 0.02
    assert not np.array_equal(mp, dev.d2d_factors(1, 784, 100)[0])
    # the device's step: floor((step m + 2^15) / 2^16)
    assert dev.scaled(np.array([702, 702, 1]), np.array([65536, 32768 + 1, 32768])).tolist() == [702, 351, 1]
    assert DeviceModel("ideal", d2d=0.3333).resolve(-1, 1, 0)["d2d_fix"] == 85  # smallest factor 511 > 0


# -- Eq. 9: the draw ----------------------------------------------------------------------------
def test_write_noise_shape():
    """v = 2 (u1 + u2 + u3) - 765 is symmetric with variance 65535; the rounding is half away from 0,
    so the complement word gives exactly the opposite noise (zero mean); std ~ gamma * step."""
    dev = ArrayDevice(DeviceModel("paper-fig5").resolve(-128, 127, 0))
    words = np.random.default_rng(1).integers(0, 1 << 24, 20000)
    for step in (202, 776, 1495):
        n = dev.noise(words, step)
        assert (dev.noise(words ^ 0xFFFFFF, step) == -n).all()
        assert abs(n.std() / (2.0 * step) - 1) < 0.03  # 20,000 draws: std of the std ratio ~0.5 %
    assert dev.noise(0, 100) == -598 and dev.noise(0xFFFFFF, 100) == 598 and dev.noise(0x7F7F80, 776) == -6


def test_stuck_fraction():
    dev = ArrayDevice(DeviceModel("paper-fig5", stuck=0.01).resolve(-128, 127, 0))
    m = dev.stuck_mask(1, 784, 100)
    n, p = m.size, 0.01
    assert abs(m.sum() - n * p) < 5 * (n * p * (1 - p)) ** 0.5
    assert not ArrayDevice(DeviceModel("paper-fig5").resolve(-128, 127, 0)).stuck_mask(1, 7, 5).any()


# -- the exact mode against a per-pulse reference of §16 ------------------------------------------
def _n32_draw(s: int) -> int:
    for _ in range(24):  # §3 N32, taps 31, 21, 1, 0
        s = ((s << 1) | (bin(s & 0x80200003).count("1") & 1)) & 0xFFFFFFFF
    return s


def _splitmix64(z):
    m = (1 << 64) - 1
    z = (z + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


@pytest.mark.parametrize("device", ["paper-fig5", {"preset": "paper-fig5", "stuck": 0.2, "gamma": 0.5},
                                    {"preset": "32-level", "gamma": 1.0},
                                    {"preset": "paper-fig5", "d2d": 0.3, "stuck": 0.1},
                                    {"preset": "32-level", "d2d": 0.2, "gamma": 0.0}])
def test_trace_conductance_follows_the_spec(device):
    """Replay every carry of a trace pulse by pulse (rows in order, one draw per pulse from the
    column's stream, Eq. 7 / 8 half up, Eq. 9, clamp, stuck) and compare g, levels and streams."""
    cfg = _cfg(hidden=(8,), input_side=4, batch=10, lr=1.0, seed=5, hw={"device": device, "th": 2})
    x, t = _data(60, 3)
    lines = make_trace(cfg, 6, x, t).splitlines()
    head, steps = json.loads(lines[0]), [json.loads(s) for s in lines[1:]]
    d = head["params"]["device"]
    q, seed = d["step_frac"], head["seed"]
    G = [np.array(g, dtype=object) for g in head["init"]["conductance"]]
    lfsr = [list(s) for s in head["init"]["device_lfsr"]]
    assert lfsr[1][3] == (_splitmix64((seed << 32) + (1 << 31) + (2 << 20) + 3) & 0xFFFFFFFF or 1)
    pulses = 0
    for st in steps:
        for li, up in enumerate(st["update"]):
            fo = len(up["carry"][0])
            for i, row in enumerate(up["carry"]):
                for j, c in enumerate(row):
                    if c == 0:
                        continue
                    pulses += 1
                    g = G[li][i, j]
                    mean = (d["cp"] - d["kp"] * g + (1 << (q - 1))) >> q if c > 0 else \
                        (d["cd"] + d["kd"] * g + (1 << (q - 1))) >> q
                    if d.get("d2d_fix"):  # §16 d2d: the device's factor, bytes 0-2 (pot) / 3-5 (dep)
                        z = _splitmix64((seed << 32) + (1 << 29) + ((li + 1) << 24) + i * fo + j)
                        v = 2 * sum((z >> (8 * k)) & 0xFF for k in ((0, 1, 2) if c > 0 else (3, 4, 5))) - 765
                        mean = (mean * ((1 << 16) + d["d2d_fix"] * v) + (1 << 15)) >> 16
                    s = lfsr[li][j] = _n32_draw(lfsr[li][j])
                    v = 2 * ((s & 0xFF) + ((s >> 8) & 0xFF) + ((s >> 16) & 0xFF)) - 765
                    e = d["gamma_fix"] * mean * v
                    n = (abs(e) + (1 << 15)) >> 16
                    stuck = (_splitmix64((seed << 32) + (1 << 30) + ((li + 1) << 24) + i * fo + j) >> 32) < d["stuck_th"]
                    if not stuck:
                        G[li][i, j] = min(max(g + (mean if c > 0 else -mean) + (n if e >= 0 else -n), 0), d["g_range"])
            assert G[li].tolist() == up["conductance"], f"step {st['step']} layer {li + 1}"
            f = d["frac_bits"]
            assert ((G[li] - d["g_ref"] + (1 << (f - 1))) >> f).tolist() == up["weights"]
        assert st["device_lfsr_end"] == lfsr
    assert pulses > 100


def test_device_state_round_trip():
    """state_dict / load_state_dict carry the conductances and the noise streams."""
    cfg = _cfg(hidden=(8,), input_side=4, batch=10, lr=1.0, hw={"device": "paper-fig5", "th": 2})
    x, t = _data(30)
    a = make_learner(cfg)
    a.train_batch(x[:10], t[:10])
    b = make_learner(cfg)
    b.load_state_dict(a.state_dict())
    for lr in (a, b):
        lr.train_batch(x[10:20], t[10:20])
        lr.train_batch(x[20:], t[20:])
    assert all(torch.equal(g, h) for g, h in zip(a.G, b.G))
    assert all(torch.equal(p.states, q.states) for p, q in zip(a.dev_banks, b.dev_banks))
    bad = a.state_dict()
    del bad["conductance"]
    with pytest.raises(BshwError, match="conductance"):
        b.load_state_dict(bad)


# -- RTL (sim) -------------------------------------------------------------------------------------
from bshw.sim import runner  # noqa: E402

needs_sim = pytest.mark.skipif(not runner.have_simulator(os.environ.get("SIM") or "icarus"),
                               reason="needs Icarus Verilog (iverilog) on PATH")


@pytest.mark.sim
@needs_sim
@pytest.mark.parametrize("params, cycles", [
    ({"device": "paper-fig5", "seed": 5, "layer": 2}, 3000),
    ({"device": {"preset": "paper-fig5", "stuck": 0.25}, "seed": 1, "fan_in": 7, "fan_out": 5, "wmin": -1,
      "wmax": 1, "read_latency": 2}, 2000),
    ({"device": "32-level", "fan_in": 16, "fan_out": 8, "backward": False}, 1500),
    ({"device": {"preset": "paper-fig5", "d2d": 0.3, "stuck": 0.1}, "seed": 3, "layer": 2, "fan_in": 9,
      "fan_out": 6}, 1500),
])
def test_macro_models_agree_with_device(params, cycles, tmp_path):
    """The Verilog (DEVICE = 1) and numpy macro models agree on random stimulus, every clock."""
    r = runner.run_component("bench_macro", params, knobs={"cycles": cycles}, build_dir=tmp_path)
    assert r["passed"], r["failures"]
    assert r["metrics"]["macro_models_agree"]["cycles"] == cycles


def _device_rtl(trace, folder):
    """Probed RTL for the trace, its description's layers naming the device (for the numpy macros)."""
    from bshw.rtl import generate

    head = json.loads(open(trace).readline())
    res = generate(TrainConfig.from_dict(head["config"], where="trace header"), folder, probes=True)
    desc = json.loads(open(res["desc"]).read())
    for li, layer in enumerate(desc["layers"]):
        layer.update(device=head["params"]["device"], number=li + 1)
    with open(res["desc"], "w") as f:
        json.dump(desc, f)
    return folder


@pytest.mark.sim
@needs_sim
@pytest.mark.parametrize("macro", ["hdl", "numpy"])
def test_network_bit_exact_paper_fig5(macro, tmp_path):
    """64-32-10 with the paper-fig5 device: the RTL (system top with the Verilog array, or the
    periphery with numpy arrays) equals the golden trace bit for bit, state after every operation."""
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(tmp_path / "fig5.jsonl", {"hidden": (32,), "input_side": 8,
                                                           "hw": {"device": "paper-fig5"}}, 3, 50)
    rtl = _device_rtl(trace, tmp_path / "rtl") if macro == "numpy" else None
    r = run_network(trace, rtl_dir=rtl, build_dir=tmp_path / "b", macro=macro, state_check="op")
    assert r["passed"], r["mismatch"]
    assert r["samples"] == 150 and r["state_every_op"]


@pytest.mark.sim
@needs_sim
@pytest.mark.parametrize("macro", ["hdl", "numpy"])
def test_network_bit_exact_d2d(macro, tmp_path):
    """16-12-10 with paper-fig5, d2d = 0.3 and 10 % stuck devices, a low threshold for many pulses: the
    RTL with the Verilog array (D2D_FIX) or with the numpy arrays equals the exact-mode trace bit for
    bit, state after every operation."""
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(tmp_path / "d2d.jsonl", {"hidden": (12,), "input_side": 4, "lr": 1.0, "hw": {
        "device": {"preset": "paper-fig5", "d2d": 0.3, "stuck": 0.1}, "th": 2}}, 3, 20)
    lines = trace.read_text().splitlines()
    assert json.loads(lines[0])["params"]["device"]["d2d_fix"] == 77
    moved = sum(c != 0 for line in lines[1:] for u in json.loads(line)["update"] for row in u["carry"] for c in row)
    assert moved > 50  # the steps really exercise the devices' factors
    rtl = _device_rtl(trace, tmp_path / "rtl") if macro == "numpy" else None
    r = run_network(trace, rtl_dir=rtl, build_dir=tmp_path / "b", macro=macro, state_check="op")
    assert r["passed"], r["mismatch"]
    assert r["samples"] == 60 and r["state_every_op"]


@pytest.mark.sim
@needs_sim
def test_sv_bench_d2d(tmp_path):
    """The Python-free SystemVerilog bench (bshw/testbench.py) replays a d2d trace of 16-8-10 on the
    system top (D2D_FIX passed to each Verilog array) and fails once D2D_FIX is dropped."""
    from bshw.golden.config import TrainConfig
    from bshw.rtl import generate
    from bshw.sim.network import write_random_trace
    from bshw.testbench import simulate, write_testbench

    trace = write_random_trace(tmp_path / "t.jsonl", {"hidden": (8,), "input_side": 4, "lr": 1.0, "hw": {
        "device": {"preset": "paper-fig5", "d2d": 0.3, "stuck": 0.1}, "th": 2}}, 2, 10)
    generate(TrainConfig.from_dict(json.loads(trace.read_text().splitlines()[0])["config"], where="test"),
             tmp_path / "rtl", probes=True)
    system = tmp_path / "rtl" / "bshw_system.v"
    text = system.read_text()
    assert text.count(".D2D_FIX(32'd77)") == 2
    bench = write_testbench(trace, tmp_path / "rtl", infer_samples=2)
    r = simulate(bench, "icarus", build_dir=tmp_path / "b")
    assert r["passed"], r["line"]
    system.write_text(text.replace(".D2D_FIX(32'd77)", ".D2D_FIX(32'd0)"))
    r = simulate(bench, "icarus", build_dir=tmp_path / "b0")
    assert not r["passed"], r["line"]


@pytest.mark.sim
@needs_sim
def test_step_rounding_mutant_is_caught(tmp_path):
    """§16 broken in the array model (steps rounded down): the network bench fails and names y2."""
    from bshw.sim.mutations import run_mutant

    r = run_mutant("device-step-floor", tmp_path)
    assert r["caught"] and r["named"], r


def test_trace_loader_checks_device_fields(tmp_path):
    """A device trace (§16) without its conductances is bad input, named by line and field."""
    from bshw.golden.exact.trace import load_trace

    x, t = _data(8)
    text = make_trace(_cfg(batch=4, hw={"device": "paper-fig5"}), 2, x, t)
    good = tmp_path / "good.jsonl"
    good.write_text(text)
    head, steps = load_trace(good)
    assert len(steps) == 2 and len(steps[1]["update"][0]["conductance"]) == 64
    lines = text.splitlines()
    step = json.loads(lines[2])
    del step["update"][1]["conductance"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines[:2] + [json.dumps(step)]) + "\n")
    with pytest.raises(BshwError, match="line 3: update.1. lacks conductance"):
        load_trace(bad)
    h = json.loads(lines[0])
    h["init"]["conductance"] = h["init"]["conductance"][:1]
    bad.write_text("\n".join([json.dumps(h)] + lines[1:]) + "\n")
    with pytest.raises(BshwError, match="line 1: init.conductance"):
        load_trace(bad)
