"""cocotb bench: firing statistics of the hidden neuron (bshw/sim/stat_top.py: N32 LFSR, comparator,
derivative sampler) at transaction level (docs/arithmetic.md §3, §4, §6).

For each y of a sweep the design runs ``samples`` samples of ``1 + 2k`` draws by itself and counts
firings and sampled derivatives. Each transaction is checked three ways:

* timing: the clocks ``busy`` is high, counted in simulation from its rising to its falling edge,
  equal stat_top's documented latency: one clock per draw, ``samples * (1 + 2k)``, plus one when
  ``k > 0`` (the last sample's ``d`` is counted the clock after its last draw);
* exactly: the counts and the LFSR's end state equal the golden model's for the same start state
  (``LfsrBank.draw`` noise sums through ``bshw.golden.exact.neuron.fire`` / ``sample_neurons``);
* statistically: the firing rate against the spec's enumerated ``P(fire | y)``
  (``bshw.golden.exact.noise.fire_prob``) and ``P(d = 1)`` against ``1 - (1 - p(1 - p))^k``, each point
  inside a two-sided binomial region, Bonferroni over the points, total false alarm < ``alpha``
  (1e-5); and the firing rate within the worst-case deviation from the logistic ``sigma(a s y)``
  that docs/arithmetic.md §4 *states* for the configuration (:data:`STATED_BOUNDS`, or the
  ``stated_bound`` knob) plus the same sampling margin. The stated number, not one computed from
  the curve under test, is what lets this check fail: a threshold or noise split that is wrong in
  the RTL and the golden model alike still moves the curve away from the logistic. Without a stated
  bound for the configuration the logistic check is not made (and the log says so).
"""

from __future__ import annotations

import math

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.utils import get_sim_time

from bshw.golden.exact import neuron as gn
from bshw.golden.exact.lfsr import N32, LfsrBank, seed_state, stream_id
from bshw.golden.exact.noise import NoiseSpec, fire_prob, logistic, worst_deviation
from bshw.sim import util
from bshw.sim.stats import binom_check, z_for

DEFAULTS = {"y_width": 14, "noise_words": [7, 7, 5], "k": 4}
KNOBS = {
    "ys": list(range(-200, 201, 10)),  # 41 points, as tests/test_exact_stats.py
    "samples": 2000,  # per y: samples * (1 + 2k) draws
    "alpha": 1e-5,  # total false-alarm rate of the statistical checks
    "a_s": 1 / 32,  # logistic slope a * s of the float model (a = 4, s = 1/128)
    "stream": stream_id(1, 0),  # LFSR stream number for seed_state(regression seed, stream)
    "stated_bound": None,  # worst-case |P(fire | y) - logistic| to check against; None: STATED_BOUNDS
}
PERIOD_NS = 10

# docs/arithmetic.md §4: the worst-case |P(fire | y) - sigma(a s y)| it states, per (noise words, a*s),
# as (value, half a unit of its last printed digit). Typed in from the text, not computed here.
STATED_BOUNDS = {
    ((7, 7, 5), 1 / 32): (0.01902, 5e-6),  # the default: INT8, a = 4, s = 1/128
    ((5, 5, 3), 1 / 8): (0.0191, 5e-5),  # INT4, w_range 0.25
    ((4, 4, 4), 1 / 5): (0.0187, 5e-5),  # ternary, w_range 0.1
    ((3, 3, 2), 1 / 2): (0.0207, 5e-5),  # INT4, w_range 1
    ((1, 1, 1), 2.0): (0.0180, 5e-5),  # ternary, w_range 1
}


def stated_bound(p: dict):
    """The stated worst-case deviation for the bench's configuration (knob ``stated_bound``, else
    :data:`STATED_BOUNDS`), with its rounding allowance; None when the spec states none."""
    if p.get("stated_bound") is not None:
        return float(p["stated_bound"]), 0.0
    for (words, a_s), v in STATED_BOUNDS.items():
        if tuple(p["noise_words"]) == words and math.isclose(p["a_s"], a_s, rel_tol=1e-12):
            return v
    return None


def busy_latency(samples: int, k: int) -> int:
    """Clocks ``busy`` is high for one run (stat_top's docstring): one a draw, + 1 with the sampler."""
    return samples * (1 + 2 * k) + (1 if k else 0)


def make_dut(p: dict):
    from bshw.sim.stat_top import NeuronStatTop

    return f"bshw_stat_neuron_k{p['k']}", NeuronStatTop(p["y_width"], tuple(p["noise_words"]), p["k"])


async def _run_sweep(dut, p, test):
    """Run every y of the sweep; return per-y records (hardware counts and the golden ones)."""
    k, spec = p["k"], NoiseSpec(tuple(p["noise_words"]))
    per = 1 + 2 * k
    samples = p["samples"]
    ys = [int(y) for y in p["ys"]]
    seed = int(util.regression_seed())
    init = seed_state(seed, p["stream"], N32)
    dut._log.info("%s: regression seed %d, LFSR stream %d starts at %#x", test, seed, p["stream"], init)
    lo, hi = -(1 << (p["y_width"] - 1)), (1 << (p["y_width"] - 1)) - 1
    bad = [y for y in ys if not lo <= y <= hi]
    assert not bad, f"y values {bad} do not fit y_width {p['y_width']}"

    # golden model first, in bulk: the same stream's draws, y after y
    bank = LfsrBank(N32, [init], spec.bits)
    recs = []
    for y in ys:
        S = bank.draw(samples * per, coef=spec.coef)  # [draws, 1] noise sums, §4
        yt = torch.full((samples, 1), y, dtype=torch.int64)
        if k:
            _, _, _, d = gn.sample_neurons(yt, S.view(samples, per, 1), spec.T, k)
            dsum = int(d.sum())
        else:
            dsum = 0
        recs.append({"y": y, "draws": samples * per, "samples": samples,
                     "gold_fires": int(gn.fire(torch.tensor(y), S, spec.T).sum()), "gold_d": dsum,
                     "gold_state": int(bank.states[0])})

    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start())
    dut.rst.value, dut.start.value, dut.y.value, dut.samples.value = 1, 0, 0, 0
    dut.load.value, dut.load_value.value = 0, 0
    fe = FallingEdge(dut.clk)
    await fe
    dut.rst.value, dut.load.value, dut.load_value.value = 0, 1, init
    await fe
    dut.load.value = 0
    re = RisingEdge(dut.clk)
    want = busy_latency(samples, k)
    with util.Timed() as t:
        for r in recs:
            dut.y.value, dut.samples.value, dut.start.value = r["y"], samples, 1
            await re  # the clock that takes start
            t0 = get_sim_time("ns")
            dut.start.value = 0
            await ReadOnly()
            assert dut.busy.value == 1, f"y = {r['y']}: busy not high the clock after start"
            try:  # the simulator runs free until busy falls (no Python per clock)
                await with_timeout(FallingEdge(dut.busy), (want + 4) * PERIOD_NS, "ns")
            except cocotb.triggers.SimTimeoutError:
                raise AssertionError(f"y = {r['y']}: busy still high {want + 4} clocks after start "
                                     f"({r['draws']} draws)") from None
            r["busy_clocks"] = round((get_sim_time("ns") - t0) / PERIOD_NS)  # counted, not assumed
            await fe
            r["fires"], r["d"] = dut.fires.value.to_unsigned(), dut.dcount.value.to_unsigned()
            r["state"] = dut.state.value.to_unsigned()
    cycles = sum(r["busy_clocks"] for r in recs)
    exact = []
    for i, r in enumerate(recs):  # exact transaction check against the golden model
        if r["busy_clocks"] != want:
            exact.append(f"first mismatch at transaction {i} (y = {r['y']}): busy high {r['busy_clocks']} clocks, "
                         f"expected {want} ({samples} samples of {1 + 2 * k} draws{' + 1' if k else ''})")
        for hw, gold, what in (("fires", "gold_fires", "firing count"), ("d", "gold_d", "d count"),
                               ("state", "gold_state", "LFSR end state")):
            if r[hw] != r[gold]:
                exact.append(f"first mismatch at transaction {i} (y = {r['y']}): {what}: expected {r[gold]}, "
                             f"got {r[hw]} ({r['draws']} draws, stream start {init:#x})")
    return recs, cycles, t.s, exact


def _check_firing(recs, p):
    """Firing counts vs the enumerated curve and (where the spec states a bound for the
    configuration) the logistic; returns (errors, z, stated bound or None, computed worst deviation)."""
    m, alpha = len(recs), p["alpha"]
    z = z_for(alpha / m)
    words, a_s = tuple(p["noise_words"]), p["a_s"]
    stated = stated_bound(p)
    computed, at = worst_deviation(words, a_s)  # reported beside the stated one, never checked against
    errors = []
    for r in recs:
        n = r["draws"]
        pe = float(fire_prob(words, r["y"]))
        lg = logistic(a_s * r["y"])
        r.update(rate=r["fires"] / n, expected=pe, logistic=lg)
        ok, detail = binom_check(r["fires"], n, pe, alpha / m)
        if not ok:
            errors.append(f"y = {r['y']}: firing {detail}")
        if stated is None:
            continue
        # a correct design is inside up to the normal approximation (|rate - p| <= z sd and
        # |p - logistic| <= the stated bound), so this adds no false alarm of its own
        bound = stated[0] + stated[1]
        margin = z * math.sqrt(max(pe * (1 - pe), lg * (1 - lg), 1 / n) / n)
        if abs(r["rate"] - lg) > bound + margin:
            errors.append(f"y = {r['y']}: firing rate {r['rate']:.6f} vs logistic {lg:.6f}: |diff| "
                          f"{abs(r['rate'] - lg):.5f} > stated bound {stated[0]:g} (docs/arithmetic.md §4) "
                          f"+ {margin:.5f} sampling margin")
    return errors, z, (stated[0] if stated else None), (computed, at)


def _check_derivative(recs, p):
    """Counts of d = 1 vs ``1 - (1 - p(1 - p))^k`` (§6); returns the errors."""
    m, alpha, k = len(recs), p["alpha"], p["k"]
    errors = []
    for r in recs:
        pf = float(fire_prob(tuple(p["noise_words"]), r["y"]))
        pd = 1 - (1 - pf * (1 - pf)) ** k
        r.update(d_rate=r["d"] / r["samples"], d_expected=pd)
        ok, detail = binom_check(r["d"], r["samples"], pd, alpha / m)
        if not ok:
            errors.append(f"y = {r['y']}: P(d=1) {detail}")
    return errors


@cocotb.test()
async def neuron_statistics(dut):
    """One sweep over y: exact counts against the golden draws, then the firing rate against the
    enumerated P(fire | y) and the logistic, and (k > 0) P(d = 1) against 1 - (1 - p(1 - p))^k.
    The false-alarm rate ``alpha`` is split over all points of both checks."""
    p = util.params({**DEFAULTS, **KNOBS})
    recs, cycles, loop_s, exact = await _run_sweep(dut, p, "neuron_statistics")
    k = p["k"]
    q = {**p, "alpha": p["alpha"] / (2 if k else 1)}  # Bonferroni over the two checks
    errors, z, stated, (computed, at) = _check_firing(recs, q)
    if stated is None:
        dut._log.warning("neuron_statistics: docs/arithmetic.md §4 states no worst-case deviation for noise "
                         "words %s at a*s = %g; the logistic check is not made", p["noise_words"], p["a_s"])
    if k:
        errors += _check_derivative(recs, q)
    col = lambda key: [r.get(key) for r in recs]  # noqa: E731
    util.record("neuron_statistics", cycles=cycles, loop_s=loop_s, cycles_per_s=cycles / loop_s, alpha=p["alpha"],
                z=z, bound=stated if stated is not None else computed, stated_bound=stated, computed_bound=computed,
                computed_bound_at=at, busy_clocks=col("busy_clocks"), busy_expected=busy_latency(p["samples"], k),
                k=k, y=col("y"), draws=col("draws"), fires=col("fires"), rate=col("rate"),
                expected=col("expected"), logistic=col("logistic"), samples=col("samples"), d=col("d"),
                d_rate=col("d_rate"), d_expected=col("d_expected"), exact_mismatches=exact)
    util.check(exact[0] if exact else None)
    npts = len(recs) * (2 if k else 1)
    util.check(f"{len(errors)} of {npts} points outside (false alarm < {p['alpha']:g}): " + "; ".join(errors[:3])
               if errors else None)
    dut._log.info("neuron_statistics: %d y values x %d draws (%d samples), counts and LFSR state exact, "
                  "rates inside the bounds (%.2f sigma); %d cycles, %.0f cycles/s",
                  len(recs), recs[0]["draws"], recs[0]["samples"], z, cycles, cycles / loop_s)
