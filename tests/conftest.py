import torch

# Two cores shared with other jobs: one intra-op thread avoids OpenMP contention stalls (measured
# here: a 78k-element op went from ~20 us to ~4 ms with two threads on a loaded machine).
torch.set_num_threads(1)


def pytest_terminal_summary(terminalreporter):
    """After a run with cocotb benches (make sim): the seed of each failed bench and every waveform
    written (WAVES=1), so neither hides behind -q or pytest's temporary folders (issue 23)."""
    import sys

    runner = sys.modules.get("bshw.sim.runner")
    runs = getattr(runner, "RUNS", None)
    if not runs:
        return
    failed = [r for r in runs if not r["passed"]]
    waves = [r["waves"] for r in runs if r["waves"]]
    seeds = sorted({r["seed"] for r in runs})
    tr = terminalreporter
    tr.write_line(f"cocotb benches: {len(runs)} runs, {len(failed)} failed; seed{'s' * (len(seeds) > 1)} "
                  f"{', '.join(map(str, seeds[:5]))}{' ...' if len(seeds) > 5 else ''}")
    for r in failed:
        tr.write_line(f"  FAILED {r['bench']} ({r['toplevel']}, {r['simulator']}): seed {r['seed']}, "
                      f"rerun with SEED={r['seed']}; log {r['log']}")
    for w in waves:
        tr.write_line(f"  waveform: {w}")
