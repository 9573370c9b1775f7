"""bshw energy: the paper's figures (Methods, Extended Data Table II), MAC counting, activity, I/O."""

import json

import pytest

from bshw import energy
from bshw.cli import main
from bshw.errors import BshwError
from bshw.golden.config import TrainConfig

# The paper's printed figures (Methods "Estimation of the energy consumption and on-chip footprint").
PAPER = {
    "cmos_hp_fp32": "4.6", "cmos_bs_fp32": "0.9", "cmos_bs_int8": "0.03", "cmos_bs_int4": "15",
    "cmos_bs_ternary": "5.6", "cmos_ratio_int4": "307", "cmos_ratio_ternary": "821", "mem_macs": "16,384",
    "mem_hp_mac": "0.18", "mem_bs_mac": "1.8", "mem_bs_tops_w": "556", "mem_ratio": "100",
    "mem_hp_area_eff": "641.99", "mem_bs_area_eff": "37.13", "mem_area_ratio": "57.8",
}

# Hand-checkable network: fc 4 -> 3, conv 2 -> 5 channels with 3x3 kernels on a 2x2 output.
LAYERS = [
    {"name": "fc1", "kind": "fc", "fan_in": 4, "fan_out": 3, "synapses": 12, "macs": 12, "neurons": 3},
    {"name": "conv2", "kind": "conv", "fan_in": 18, "fan_out": 5, "synapses": 90, "macs": 360, "neurons": 20},
]


@pytest.fixture(scope="module")
def c():
    return energy.load_constants()


def test_paper_figures_at_paper_rounding(c):
    rows = {r["key"]: r for r in energy.paper_table(c)}
    assert {k: rows[k]["printed"] for k in PAPER} == PAPER
    # exact values behind the rounded ones (ratios and TOPS/W of the paper come from rounded figures)
    assert rows["cmos_bs_ternary"]["value"] == pytest.approx(0.03 * 1.5 / 8 * 1e3)
    assert rows["cmos_ratio_ternary"]["value"] == pytest.approx(4.6 / 0.005625)
    assert rows["mem_bs_tops_w"]["value"] == pytest.approx(16384 / 29.23)
    assert rows["mem_hp_area_eff"]["value"] == pytest.approx(16384 / (8 * 50e-9 * 63801.92e-6) / 1e9)


def test_macro_scaling(c):
    m128, m256 = energy.macro(c, 128), energy.macro(c, 256)
    assert m256["bs_mac_pj"] == pytest.approx(m128["bs_mac_pj"])  # array energy per cell
    assert m256["hp_mac_pj"] < m128["hp_mac_pj"]  # ADCs shared by twice the rows
    assert m256["pass_pj_adc"] == pytest.approx(29.23 * 4 + (371.89 - 29.23) * 2)
    assert energy.macro(c, 128, input_bits=4)["hp_gops_mm2"] == pytest.approx(2 * m128["hp_gops_mm2"])
    with pytest.raises(BshwError, match="array size"):
        energy.macro(c, 0)


def test_mac_counting_by_hand(c):
    n = energy.count_macs(LAYERS)
    assert [(x["forward"], x["backward"], x["gradient"]) for x in n] == [(12, 0, 12), (360, 360, 360)]
    act = [{"x_active": 1.0, "dy_nonzero": 1.0, "carries_per_weight": 1.0}] * 2
    r = energy.network_energy(LAYERS, c, act, batch=10, train_samples=1000)
    hp = r["schemes"]["hp-cmos-fp32"]
    assert hp["forward"] == pytest.approx(372 * 4.6)
    assert hp["backward"] == pytest.approx(360 * 4.6)
    assert hp["write"] == pytest.approx(102 * 4.6 / 10)
    t = r["schemes"]["bs-cmos-int8"]
    assert t["total_pj"] == pytest.approx((372 + 360) * 0.03 + 372 * 0.03 + 102 * 0.03 / 10)
    assert t["epoch_j"] == pytest.approx(t["total_pj"] * 1e-12 * 1000)
    assert r["area"]["tiles"] == 2


def test_activity_scales_bs_only(c):
    act = [{"x_active": 0.0, "dy_nonzero": 0.5, "carries_per_weight": 0.0}] * 2
    r = energy.network_energy(LAYERS, c, act)["schemes"]
    for k in ("bs-cmos-fp32", "bs-cmos-int8", "bs-cmos-int4", "bs-cmos-ternary", "bs-memristor"):
        assert r[k]["forward"] == 0 and r[k]["gradient"] == 0 and r[k]["write"] == 0
        assert r[k]["backward"] > 0
    assert r["hp-cmos-fp32"]["forward"] == pytest.approx(372 * 4.6)
    half = [{"x_active": 0.5, "dy_nonzero": 0.5, "carries_per_weight": 1.0}] * 2
    r2 = energy.network_energy(LAYERS, c, half)["schemes"]["bs-memristor"]
    assert r2["forward"] == pytest.approx(0.5 * 372 * 29.23 / 16384)


def test_periphery_from_synth(c, tmp_path):
    f = tmp_path / "synth.json"
    f.write_text(json.dumps({"neuron": {"luts": 6, "ffs": 4}, "counter": {"luts": 9, "ffs": 8}}))
    r = energy.network_energy(LAYERS, c, synth=energy.read_synth(f))
    assert r["schemes"]["bs-memristor"]["periphery"] == pytest.approx(23 * 10 * 0.5 * c["periphery"]["passes"] * 3.75e-3)
    assert energy.read_synth(tmp_path / "absent.json") is None
    f.write_text('{"neuron": {"luts": -1, "ffs": 2}}')
    with pytest.raises(BshwError, match="luts and ffs"):
        energy.read_synth(f)


def test_periphery_input_samplers_and_synth_layout(c, tmp_path):
    # bshw synth's layout: flow keys beside the modules, extra fields, null Fmax
    f = tmp_path / "synth.json"
    f.write_text(json.dumps({
        "device": "iCE40 HX8K ct256", "tool_versions": {"yosys": "Yosys 0.70", "nextpnr": "nextpnr-0.11.1"},
        "neuron": {"luts": 6, "ffs": 4, "carries": 1, "brams": 0, "fmax_mhz": None},
        "input_sampler": {"luts": 3, "ffs": 2, "carries": 0, "brams": 0, "fmax_mhz": 80.0},
    }))
    synth = energy.read_synth(f)
    r = energy.network_energy(LAYERS, c, synth=synth)
    # 23 neurons x `passes` evaluations, plus one draw of each of the 4 inputs of the fc first layer (§5)
    assert r["schemes"]["bs-memristor"]["periphery"] == pytest.approx((23 * 10 * c["periphery"]["passes"] + 4 * 5) * 0.5 * 3.75e-3)
    assert r["periphery"]["input_samplers"] == 4
    conv_first = energy.network_energy(LAYERS[1:], c, synth=synth)  # conv: one sampler per pixel
    assert conv_first["periphery"]["input_samplers"] == 784
    text = energy.format_network(r, "t")
    assert "23 neurons" in text and "4 input samplers" in text
    del synth["input_sampler"]
    text = energy.format_network(energy.network_energy(LAYERS, c, synth=synth), "t")
    assert "input samplers not counted" in text
    f.write_text('{"device": "x", "neuron": "big"}')
    with pytest.raises(BshwError, match="neuron needs whole numbers"):
        energy.read_synth(f)


def test_cli_default_prints_paper_table(capsys):
    assert main(["energy", "--synth", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    for v in ("307", "821", "556", "641.99", "37.13", "57.8", "16,384"):
        assert f" {v} " in out


@pytest.mark.parametrize("edit, msg", [
    (lambda t: t + "\n[cmos2]\nx = 1\n", "unknown section"),
    (lambda t: t.replace("counter_bits = 8", "counter_bits = 8\nbogus = 1"), "unknown key cmos.bogus"),
    (lambda t: t.replace("fp32_add_pj = 0.9", ""), "missing key cmos.fp32_add_pj"),
    (lambda t: t.replace("fp32_add_pj = 0.9", "fp32_add_pj = -0.9"), "cmos.fp32_add_pj = -0.9 must be a finite number >= 0"),
    (lambda t: t + "\n[[[", "not valid TOML"),
])
def test_bad_constants_one_line(tmp_path, capsys, edit, msg):
    f = tmp_path / "c.toml"
    f.write_text(edit(energy.DEFAULT_CONSTANTS.read_text()))
    assert main(["energy", "--constants", str(f)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_set_override(capsys):
    assert main(["energy", "--set", "cmos.fp32_mult_pj=9.1", "--json", "-"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["paper_table"]}
    assert rows["cmos_hp_fp32"]["printed"] == "10"
    assert main(["energy", "--set", "cmos.nope=1"]) == 2


def make_run(d, epochs=2, **last):
    d.mkdir()
    (d / "config.json").write_text(json.dumps(TrainConfig(weights="int8").to_dict()))
    (d / "network.json").write_text(json.dumps({"layers": LAYERS}))
    ep = [{"epoch": i, "train_loss": 0.1, "test_error": {"hp": 0.1, "binary": 0.1, "stochastic": 0.1},
           "activity": [{"x_active": 0.9, "dy_nonzero": 0.9, "carries_per_weight": 0.9}] * 2,
           "samples_per_s": 1000.0, "train_samples": 5000} for i in range(epochs)]
    ep[-1].update(last)
    (d / "metrics.json").write_text(json.dumps({"epochs": ep}))
    return d


def test_run_dir_uses_last_epoch(tmp_path, capsys):
    act = [{"x_active": 0.0, "dy_nonzero": 0.25, "carries_per_weight": None}] * 2
    d = make_run(tmp_path / "run", activity=act, train_samples=200)
    out = tmp_path / "o" / "e.json"
    png = tmp_path / "e.png"
    assert main(["energy", "--run", str(d), "--synth", str(tmp_path / "no.json"), "--json", str(out),
                 "--plot", str(png)]) == 0
    assert "NOT counted" in capsys.readouterr().out
    res = json.loads(out.read_text())["network"]
    assert res["train_samples"] == 200 and res["batch"] == 100
    assert res["schemes"]["bs-memristor"]["forward"] == 0
    assert res["activity"][0]["carries_per_weight"] == 1.0  # null -> nominal
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("breakage, msg", [
    (lambda d: (d / "metrics.json").unlink(), "metrics.json does not exist"),
    (lambda d: (d / "network.json").write_text("{oops"), "network.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text('{"net": "rnn"}'), "net = 'rnn'"),
    (lambda d: (d / "metrics.json").write_text('{"epochs": []}'), "metrics.json"),
    (lambda d: (d / "metrics.json").write_text(json.dumps({"epochs": [{"activity": [], "train_samples": 1}]})),
     "one entry per layer"),
])
def test_bad_run_dir_one_line(tmp_path, capsys, breakage, msg):
    d = make_run(tmp_path / "run")
    breakage(d)
    assert main(["energy", "--run", str(d)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_net_uses_describe_network(monkeypatch, capsys):
    import bshw.golden.model

    seen = []
    monkeypatch.setattr(bshw.golden.model, "describe_network", lambda cfg: seen.append(cfg) or LAYERS)
    assert main(["energy", "--net", "fc", "--hidden", "7,5", "--json", "-"]) == 0
    res = json.loads(capsys.readouterr().out)["network"]
    assert seen[0].hidden == (7, 5) and res["train_samples"] == 60000
    assert res["activity"][0]["x_active"] == pytest.approx(0.1307)  # MNIST mean intensity
    assert main(["energy", "--net", "cnn", "--hidden", "7"]) == 2


def test_periphery_charged_to_every_scheme_of_its_kind(c):
    synth = {"neuron": {"luts": 6, "ffs": 4}, "input_sampler": {"luts": 3, "ffs": 2}, "hp_neuron": {"luts": 20, "ffs": 4}}
    r = energy.network_energy(LAYERS, c, synth=synth)
    bs = {k: v["periphery"] for k, v in r["schemes"].items() if k.startswith("bs-")}
    hp = {k: v["periphery"] for k, v in r["schemes"].items() if k.startswith("hp-")}
    assert len(set(bs.values())) == 1 and list(bs.values())[0] == pytest.approx(r["periphery"]["bs_pj"])
    p = c["periphery"]
    assert list(set(hp.values())) == [pytest.approx(23 * 24 * p["toggle_rate"] * p["hp_passes"] * p["cell_toggle_fj"] * 1e-3)]
    assert "every HP scheme" in energy.format_network(r, "t")


@pytest.mark.parametrize("kw, msg", [
    (dict(ns_per_bit=float("inf")), "--ns-per-bit inf"),
    (dict(ns_per_bit=1e-320), "--ns-per-bit 1e-320"),
    (dict(input_bits=0), "--input-bits 0"),
    (dict(array_size=True), "array size True"),
])
def test_macro_refuses_degenerate_options(c, kw, msg):
    with pytest.raises(BshwError, match=msg.replace("+", r"\+")):
        energy.macro(c, **({"array_size": 128} | kw))


@pytest.mark.parametrize("key", sorted(f"{s}.{k}" for s, k in energy.POSITIVE))
def test_divisor_constants_must_be_positive(key):
    with pytest.raises(BshwError, match=f"--set {key} = 0 must be positive"):
        energy.load_constants(overrides={key: "0"})


def test_network_energy_keeps_explicit_batch(capsys):
    """--batch is used as given (0 is refused, never silently replaced by the default)."""
    assert main(["energy", "--net", "fc", "--hidden", "7", "--batch", "3", "--synth", "/none", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["network"]["batch"] == 3
    assert main(["energy", "--net", "fc", "--batch", "0"]) == 2
    assert "--batch 0" in capsys.readouterr().err


# -- write pulses measured in an exact-mode run (docs/energy.md sections 3, 4) ----------------------
def _exact_cfg(hw, batch=50, weights="int8"):
    return TrainConfig.from_dict({"mode": "exact", "weights": weights, "hidden": (8,), "input_side": 4,
                                  "batch": batch, "epochs": 1, "lr": 1.0, "seed": 2, "votes": 1, "hw": hw},
                                 where="energy test")


def _images(n, seed=3):
    import torch

    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


@pytest.mark.parametrize("weights, hw", [("ternary", {"th": 2}),
                                         ("int8", {"th": 2, "device": {"preset": "paper-fig5", "stuck": 0.5,
                                                                       "d2d": 0.2}})])
def test_exact_pulse_counts_are_the_driven_pulses(weights, hw):
    """Each batch's pulses_pot / pulses_dep are the carry's +1 / -1 events. For the ideal device they
    equal the levels moved plus the pulses a clamp at wmin / wmax absorbed; with a device, stuck ones
    count too (every driven pulse costs its energy)."""
    import torch

    from bshw.golden.exact import make_learner

    learner = make_learner(_exact_cfg(hw, weights=weights))
    P = learner.P.as_dict() if hasattr(learner.P, "as_dict") else learner.P
    x, t = _images(200)
    absorbed_seen = 0
    for b in range(4):
        before = [w.clone() for w in learner.W]
        g_before = None if learner.G is None else [g.clone() for g in learner.G]
        rec = {}
        out = learner.train_batch(x[50 * b:50 * (b + 1)], t[50 * b:50 * (b + 1)], record=rec)
        for l, a in enumerate(out["activity"]):
            step = rec["carry"][l]
            assert a["pulses_pot"] == int((step > 0).sum()) and a["pulses_dep"] == int((step < 0).sum())
            assert a["pulses_pot"] + a["pulses_dep"] == round(a["carries_per_weight"] * step.numel())
            if g_before is None:  # ideal: sum |delta level| + clamped = pulses
                moved = int((learner.W[l] - before[l]).abs().sum())
                clamped = int(((step > 0) & (before[l] == P["wmax"])).sum() + ((step < 0) & (before[l] == P["wmin"])).sum())
                assert moved + clamped == a["pulses_pot"] + a["pulses_dep"]
                absorbed_seen += clamped
            else:  # stuck devices were driven but did not move
                still = int(((step != 0) & (learner.G[l] == g_before[l])).sum())
                assert still > 0 and a["pulses_pot"] + a["pulses_dep"] >= still
                absorbed_seen += still
    assert absorbed_seen > 0
    assert isinstance(out["activity"][0]["pulses_pot"], int) and torch.is_tensor(rec["carry"][0])


def test_energy_charges_measured_pulses_of_a_run(tmp_path, capsys):
    """A tiny exact run (train.py's metrics): its epoch's pulses equal a replay of the same batches,
    and `bshw energy --run` charges write = pulses per sample x write_pulse_pj; more pulses, more
    write energy, with the carries fraction left as it was."""
    import torch

    from bshw.golden.data import Dataset
    from bshw.golden.exact import make_learner
    from bshw.golden.train import _epoch_seed, fit

    cfg = _exact_cfg({"th": 2})
    x, t = _images(230)  # 5 batches of 50, the last one of 30
    data = Dataset("mnist", "synthetic", x, t, x[:40], t[:40], None)
    run = tmp_path / "run"
    m = fit(cfg, run, progress=False, data=data)
    act = m["epochs"][-1]["activity"]
    # independent count: replay the epoch's batches on a fresh learner and count the carries
    learner, total = make_learner(cfg), [0, 0]
    perm = torch.randperm(230, generator=torch.Generator().manual_seed(_epoch_seed(cfg.seed, 0)))
    for i in range(0, 230, 50):
        rec = {}
        learner.train_batch(x[perm[i:i + 50]], t[perm[i:i + 50]], record=rec)
        for l, step in enumerate(rec["carry"]):
            total[l] += int(step.count_nonzero())
    assert [round((a["pulses_pot"] + a["pulses_dep"]) * 5) for a in act] == total and min(total) > 0
    out = tmp_path / "e.json"
    assert main(["energy", "--run", str(run), "--synth", str(tmp_path / "none.json"), "--json", str(out)]) == 0
    assert "measured pulses" in capsys.readouterr().out
    res = json.loads(out.read_text())["network"]
    c = energy.load_constants()
    per_sample = sum(total) / 230
    assert sum(w["per_sample"] for w in res["write_pulses"]) == pytest.approx(per_sample)
    assert res["schemes"]["bs-memristor"]["write"] == pytest.approx(per_sample * c["memristor"]["write_pulse_pj"])
    # twice the potentiation pulses, the same carries fraction: the write term follows the pulses
    met = json.loads((run / "metrics.json").read_text())
    for a in met["epochs"][-1]["activity"]:
        a["pulses_pot"] *= 2
    (run / "metrics.json").write_text(json.dumps(met))
    assert main(["energy", "--run", str(run), "--synth", str(tmp_path / "none.json"), "--json", str(out)]) == 0
    res2 = json.loads(out.read_text())["network"]
    pot = sum(a["pulses_pot"] for a in act) * 5 / 230
    assert res2["schemes"]["bs-memristor"]["write"] == pytest.approx((per_sample + pot) * c["memristor"]["write_pulse_pj"])
    assert res2["schemes"]["bs-memristor"]["forward"] == res["schemes"]["bs-memristor"]["forward"]


@pytest.mark.parametrize("pulses, msg", [({"pulses_pot": -1, "pulses_dep": 0}, "pulses_pot = -1"),
                                         ({"pulses_pot": 3}, "pulses_dep = None"),
                                         ({"pulses_pot": 3, "pulses_dep": "x"}, "pulses_dep = 'x'")])
def test_bad_pulse_counts_one_line(tmp_path, capsys, pulses, msg):
    act = [{"x_active": 0.5, "dy_nonzero": 0.5, "carries_per_weight": 0.1, **pulses}] * 2
    d = make_run(tmp_path / "run", activity=act)
    assert main(["energy", "--run", str(d)]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_without_pulse_counts_the_carries_stand_in(c):
    """No measured pulses (float runs, --net): one pulse per carry, car * S / batch per sample."""
    act = [{"x_active": 0.5, "dy_nonzero": 0.5, "carries_per_weight": 0.25}] * 2
    res = energy.network_energy(LAYERS, c, act, batch=10, train_samples=100)
    assert res["schemes"]["bs-memristor"]["write"] == pytest.approx(0.25 * (12 + 90) / 10 * c["memristor"]["write_pulse_pj"])
    assert not any(w["measured"] for w in res["write_pulses"])
    meas = [dict(a, pulses_pot=3.0, pulses_dep=1.0) for a in act]
    res = energy.network_energy(LAYERS, c, meas, batch=10, train_samples=100)
    assert res["schemes"]["bs-memristor"]["write"] == pytest.approx(2 * 4 * 10 / 100 * c["memristor"]["write_pulse_pj"])
    assert res["schemes"]["bs-cmos-int8"]["write"] == pytest.approx(2 * 4 * 10 / 100 * c["cmos"]["int8_add_pj"])
