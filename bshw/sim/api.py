"""Measurements the flow and its report take from the RTL simulations.

``run_network`` (bshw/sim/network.py) runs the network top against a golden trace, bit for bit.

``neuron_firing_curve`` runs the statistics bench (``bshw/sim/bench_stats.py`` on ``bshw/sim/stat_top.py``,
without the derivative sampler) over a list of membrane potentials and returns the RTL's firing
rates beside the spec's exact curve and the float model's logistic (docs/arithmetic.md §4).
"""

from __future__ import annotations

from bshw.errors import BshwError
from bshw.sim.network import run_network  # noqa: F401  (the network bench on a golden trace)
from bshw.sim.runner import run_component


def neuron_firing_curve(ys, draws: int, *, build_dir, seed: int = 0, y_width: int = 14, noise_words=(7, 7, 5),
                        a_s: float = 1 / 32, simulator: str | None = None, alpha: float = 1e-5) -> dict:
    """Firing rate of the RTL comparator neuron (N32 LFSR + comparator) at each ``y``.

    Parameters
    ----------
    ys : sequence of int
        Membrane potentials, each fitting ``y_width`` signed bits.
    draws : int
        LFSR draws per y (Icarus runs about 6-7 thousand a second; Verilator is faster for long sweeps).
    build_dir : path
        Build and run folder (``run_component`` makes a sub-folder per design).
    seed : int
        Regression seed: the LFSR starts at ``seed_state(seed, stream_id(1, 0))`` (§3).
    y_width, noise_words : int, tuple of int
        The neuron's configuration (§1 default: 14, (7, 7, 5)).
    a_s : float
        Slope ``a * s`` of the float model's logistic (default 1/32: a = 4, s = 1/128).
    simulator : {"icarus", "verilator"}, optional
        ``$SIM``, else Icarus.
    alpha : float
        Total false-alarm rate of the bench's statistical checks.

    Returns
    -------
    dict
        ``y``, ``rate`` (RTL firings / draws), ``expected`` (the enumerated ``P(fire | y)``,
        ``bshw.golden.exact.noise.fire_prob``), ``logistic`` (``sigma(a_s * y)``), ``draws``, ``fires``,
        ``bound`` (the stated worst-case |expected - logistic|), ``passed`` (counts equal the
        golden model's draws exactly and every rate is inside its binomial bound), ``failures``,
        ``seed``, ``wall_s``, ``cycles_per_s``.

    Raises
    ------
    BshwError
        Bad ``ys`` / ``draws``, or the simulator is missing.
    RuntimeError
        The simulation ended without results.
    """
    ys = list(ys)
    if not ys or any(isinstance(y, bool) or not isinstance(y, int) for y in ys):
        raise BshwError(f"ys must be a non-empty list of integers, got {ys!r}")
    lo, hi = -(1 << (y_width - 1)), (1 << (y_width - 1)) - 1
    bad = [y for y in ys if not lo <= y <= hi]
    if bad:
        raise BshwError(f"y values {bad} do not fit {y_width}-bit signed ([{lo}, {hi}])")
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws < 1 << 32:
        raise BshwError(f"draws must be an integer in [1, 2^32), got {draws!r}")
    r = run_component("bench_stats", {"y_width": y_width, "noise_words": list(noise_words), "k": 0},
                      knobs={"ys": ys, "samples": draws, "a_s": a_s, "alpha": alpha},
                      build_dir=build_dir, seed=seed, simulator=simulator, testcase="neuron_statistics")
    m = r["metrics"].get("neuron_statistics")
    if m is None:
        raise RuntimeError(f"firing-curve simulation gave no results: {'; '.join(r['failures'])} (log {r['log']})")
    return {"y": m["y"], "rate": m["rate"], "expected": m["expected"], "logistic": m["logistic"],
            "draws": m["draws"], "fires": m["fires"], "bound": m["bound"], "passed": r["passed"],
            "failures": r["failures"], "seed": r["seed"], "wall_s": r["wall_s"], "cycles_per_s": m["cycles_per_s"]}
