"""Checks that used to echo their input or could not fail (issue 22, point 6), each now made to test
something it could get wrong: the flow's tool preflight, the report's firing-curve bound, the energy
model's clocked evaluations per neuron, the network bench's own state model (bshw/sim/netio.py) and
the statistics bench's logistic bound (the stated one, not the curve's own maximum deviation)."""

import pytest


def test_skip_missing_never_covers_our_own_modules(monkeypatch):
    """Only external tools may skip a stage: an import error in bshw itself fails the stage."""
    from bshw import flow as F

    imported = []
    real = F.importlib.import_module
    monkeypatch.setattr(F.importlib, "import_module", lambda name: imported.append(name) or real(name))
    assert F.missing_tool("rtl") is None
    F.missing_tool("sim")
    F.missing_tool("synth")
    assert not [n for n in imported if n == "bshw" or n.startswith("bshw.")], imported
    with pytest.raises(ValueError, match="part of bshw"):
        F._module_missing("bshw.sim.api", "x")
    assert "not available" in F._module_missing("surely_not_installed_module_xyz", "pip install it")


def test_report_firing_bound_follows_the_configuration():
    from bshw.report import firing_bound

    assert firing_bound({"noise_words": [7, 7, 5], "a": 4.0, "scale": 1 / 128}) == pytest.approx(0.01902, abs=5e-6)
    int4 = firing_bound({"noise_words": [3, 3, 2], "a": 4.0, "scale": 1 / 8})  # §4: INT4, a = 4 -> 0.0207
    assert int4 == pytest.approx(0.0207, abs=5e-5)


def test_energy_counts_the_neurons_clocked_evaluations_from_k():
    from bshw import energy as E

    assert [E.neuron_passes(k) for k in (1, 2, 4)] == [4, 6, 10]  # 1 + 2k draws and the backward sign
    with pytest.raises(Exception, match="deriv_k"):
        E.neuron_passes(3)
    c = E.load_constants()
    layers = [{"name": "fc1", "kind": "fc", "fan_in": 4, "fan_out": 3, "synapses": 12, "macs": 12, "neurons": 3},
              {"name": "fc2", "kind": "fc", "fan_in": 3, "fan_out": 10, "synapses": 30, "macs": 30, "neurons": 10}]
    synth = {"neuron": {"luts": 10, "ffs": 13}}
    per = {k: E.network_energy(layers, c, synth=synth, deriv_k=k)["periphery"] for k in (1, 4)}
    assert per[4]["neuron_pj"] / per[1]["neuron_pj"] == pytest.approx(10 / 4)
    assert per[1]["neuron_passes"] == 4


def test_bench_seed_states_are_the_golden_ones():
    from bshw.core import I16, N32
    from bshw.golden.exact.lfsr import seed_state, stream_id
    from bshw.sim import netio

    sizes, seed = [3, 2, 2], 11
    want = [seed_state(seed, i, I16) for i in range(3)] + \
        [seed_state(seed, stream_id(l, j), N32) for l in (1, 2) for j in range(2)]
    assert netio.seed_states(sizes, seed) == want
    assert netio.stream_name(sizes, 0) == "lfsr_in[0]" and netio.stream_name(sizes, 4) == "lfsr1[1]"
    assert netio.stream_name(sizes, 6) == "lfsr2[1]"
    assert [netio.lfsr_leap(1, N32, n) for n in (1, 2, 3, 4)] == [3, 6, 13, 27]  # §13 case 1
    assert [netio.lfsr_leap(1, I16, n) for n in (1, 2, 3, 4)] == [2, 4, 8, 17]


def test_bench_state_model_saturates_and_counts():
    """§13 case 12 on the bench's model: a 4-bit counter at 6 takes +1, +1, -1 -> 7, 7, 6."""
    from bshw.sim import netio

    desc = {"sizes": [1, 1], "params": {"noise_words": [7, 7, 5], "deriv_k": 1, "tie": "gated", "th": 7,
                                        "counter_bits": 4, "wmin": -8, "wmax": 7}}
    m = netio.StateModel(desc, [[[0]]], [[[6]]], [1, 1])
    got = []
    for g in (1, 1, -1):
        m.train({"r": [5], "x0": [1], "layers": [{"dy": [g]}]})
        got.append(m.C[0][0][0])
    assert got == [7, 7, 6] and m.limits["counter_saturated_max"] == 1
    assert m.lfsr == [5, netio.lfsr_leap(1, __import__("bshw.core").core.N32, 3 * 19)]


def test_stats_bench_logistic_check_uses_the_stated_bound():
    """The statistics bench holds the firing rate to the deviation docs/arithmetic.md §4 *states*,
    not to the curve's own worst deviation: a threshold shifted in the RTL and the golden curve alike
    passes the exact and binomial checks but fails this one (offline, on the bench's check function)."""
    from pathlib import Path

    import numpy as np

    from bshw.golden.exact.noise import fire_prob, worst_deviation
    from bshw.sim import bench_stats as B

    text = Path(__file__).resolve().parents[1].joinpath("docs", "arithmetic.md").read_text()
    for (words, a_s), (value, half) in B.STATED_BOUNDS.items():
        digits = round(-np.log10(2 * half))
        assert f"{value:.{digits}f}" in text, (words, value)  # typed from the text
        assert abs(worst_deviation(words, a_s)[0] - value) <= half, (words, a_s)  # and the curve meets it
    p = {"noise_words": [7, 7, 5], "a_s": 1 / 32, "alpha": 1e-5, "stated_bound": None}
    assert B.stated_bound(p) == (0.01902, 5e-6) and B.stated_bound({**p, "a_s": 1 / 30}) is None
    assert B.busy_latency(700, 4) == 6301 and B.busy_latency(700, 0) == 700

    def recs(curve, n=10**6):
        return [{"y": y, "draws": n, "fires": round(n * float(curve(y)))} for y in range(-200, 201, 10)]

    exact = lambda y: fire_prob((7, 7, 5), y)  # noqa: E731
    shifted = lambda y: fire_prob((7, 7, 5), y - 10)  # noqa: E731  T + 10
    assert B._check_firing(recs(exact), p)[0] == []
    real = B.fire_prob
    try:
        B.fire_prob = lambda words, y: real(words, np.asarray(y) - 10)  # the golden curve shifted too
        errors = B._check_firing(recs(shifted), p)[0]
    finally:
        B.fire_prob = real
    assert errors and all("stated bound 0.01902" in e for e in errors), errors  # only the logistic check fails
