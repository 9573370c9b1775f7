"""cocotb bench: firing statistics of the hidden neuron (bshw/sim/stat_top.py: N32 LFSR, comparator,
derivative sampler) at transaction level (docs/arithmetic.md §3, §4, §6).

For each y of a sweep the design runs ``samples`` samples of ``1 + 2k`` draws by itself and counts
firings and sampled derivatives. Each transaction is checked twice:

* exactly: the counts and the LFSR's end state equal the golden model's for the same start state
  (``LfsrBank.draw`` noise sums through ``bshw.golden.exact.neuron.fire`` / ``sample_neurons``);
* statistically: the firing rate against the spec's enumerated ``P(fire | y)``
  (``bshw.golden.exact.noise.fire_prob``) and ``P(d = 1)`` against ``1 - (1 - p(1 - p))^k``, each point
  inside a two-sided binomial region, Bonferroni over the points, total false alarm < ``alpha``
  (1e-5); and the firing rate within the stated worst-case deviation from the logistic
  ``sigma(a s y)`` (``bshw.golden.exact.noise.worst_deviation``) plus the same sampling margin.
"""

from __future__ import annotations

import math

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

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
}
PERIOD_NS = 10


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
    with util.Timed() as t:
        for r in recs:
            dut.y.value, dut.samples.value, dut.start.value = r["y"], samples, 1
            await fe
            dut.start.value = 0
            # busy falls one clock after the last draw; the Timer ends on a falling edge's time step,
            # so re-synchronise on the clock before driving start again
            await Timer((r["draws"] + 1) * PERIOD_NS, unit="ns")
            await fe
            assert dut.busy.value == 0, f"y = {r['y']}: still busy after {r['draws']} draws"
            r["fires"], r["d"] = dut.fires.value.to_unsigned(), dut.dcount.value.to_unsigned()
            r["state"] = dut.state.value.to_unsigned()
    cycles = sum(r["draws"] + 3 for r in recs)
    exact = []
    for i, r in enumerate(recs):  # exact transaction check against the golden model
        for hw, gold, what in (("fires", "gold_fires", "firing count"), ("d", "gold_d", "d count"),
                               ("state", "gold_state", "LFSR end state")):
            if r[hw] != r[gold]:
                exact.append(f"first mismatch at transaction {i} (y = {r['y']}): {what}: expected {r[gold]}, "
                             f"got {r[hw]} ({r['draws']} draws, stream start {init:#x})")
    return recs, cycles, t.s, exact


def _check_firing(recs, p):
    """Firing counts vs the enumerated curve and the logistic; returns (errors, z, bound)."""
    m, alpha = len(recs), p["alpha"]
    z = z_for(alpha / m)
    words, a_s = tuple(p["noise_words"]), p["a_s"]
    bound, at = worst_deviation(words, a_s)
    errors = []
    for r in recs:
        n = r["draws"]
        pe = float(fire_prob(words, r["y"]))
        lg = logistic(a_s * r["y"])
        r.update(rate=r["fires"] / n, expected=pe, logistic=lg)
        ok, detail = binom_check(r["fires"], n, pe, alpha / m)
        if not ok:
            errors.append(f"y = {r['y']}: firing {detail}")
        # implied by the binomial check up to the normal approximation (|rate - p| <= z sd and
        # |p - logistic| <= bound), so it adds no false alarm of its own
        margin = bound + z * math.sqrt(max(pe * (1 - pe), lg * (1 - lg), 1 / n) / n)
        if abs(r["rate"] - lg) > margin:
            errors.append(f"y = {r['y']}: firing rate {r['rate']:.6f} vs logistic {lg:.6f}: "
                          f"|diff| > {bound:.5f} (worst case at |y| = {abs(at)}) + {margin - bound:.5f}")
    return errors, z, bound


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
    errors, z, bound = _check_firing(recs, q)
    if k:
        errors += _check_derivative(recs, q)
    col = lambda key: [r.get(key) for r in recs]  # noqa: E731
    util.record("neuron_statistics", cycles=cycles, loop_s=loop_s, cycles_per_s=cycles / loop_s, alpha=p["alpha"],
                z=z, bound=bound, k=k, y=col("y"), draws=col("draws"), fires=col("fires"), rate=col("rate"),
                expected=col("expected"), logistic=col("logistic"), samples=col("samples"), d=col("d"),
                d_rate=col("d_rate"), d_expected=col("d_expected"), exact_mismatches=exact)
    util.check(exact[0] if exact else None)
    npts = len(recs) * (2 if k else 1)
    util.check(f"{len(errors)} of {npts} points outside (false alarm < {p['alpha']:g}): " + "; ".join(errors[:3])
               if errors else None)
    dut._log.info("neuron_statistics: %d y values x %d draws (%d samples), counts and LFSR state exact, "
                  "rates inside the bounds (%.2f sigma); %d cycles, %.0f cycles/s",
                  len(recs), recs[0]["draws"], recs[0]["samples"], z, cycles, cycles / loop_s)
