"""cocotb bench: the comparator neuron (bshw/neuron.py) against bshw/golden/exact (docs/arithmetic.md §4, Eq. 3).

Model: the noise sum ``S = sum_q bit_q * coef[q]`` with ``bshw.golden.exact.noise.NoiseSpec.coef`` (the
form the golden training uses for LFSR draws) and ``bshw.golden.exact.neuron.fire``. The DUT is
combinational: each vector is driven, settles for 1 ns, and ``s`` and ``fire`` are compared.
Stimulus: random W-bit words; y half near the threshold (|y| <= Smax + 2, where the noise
decides) and half over the full signed range, plus the extremes.
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.triggers import Timer
from cocotb.utils import get_sim_time

from bshw.golden.exact import neuron as gn
from bshw.golden.exact.noise import NoiseSpec
from bshw.sim import util

DEFAULTS = {"y_width": 14, "noise_words": [7, 7, 5]}
KNOBS = {"vectors": 20000}


def make_dut(p: dict):
    from bshw.neuron import ComparatorNeuron

    return "bshw_comparator_neuron", ComparatorNeuron(p["y_width"], tuple(p["noise_words"]))


@cocotb.test()
async def comparator_random(dut):
    """Random (y, word) vectors; every vector's S and fire compared with the golden model."""
    p = util.params({**DEFAULTS, **KNOBS})
    spec = NoiseSpec(tuple(p["noise_words"]))
    rng = util.rng(dut, "comparator_random")
    n = p["vectors"]
    lo, hi = -(1 << (p["y_width"] - 1)), (1 << (p["y_width"] - 1)) - 1
    near = spec.smax + 2
    ys = [lo, hi, 0, -1, 1] + [rng.randint(max(lo, -near), min(hi, near)) if rng.random() < 0.5
                               else rng.randint(lo, hi) for _ in range(n - 5)]
    words = [(1 << spec.bits) - 1, 0] + [rng.getrandbits(spec.bits) for _ in range(n - 2)]
    # golden model, in bulk
    wt = torch.tensor(words, dtype=torch.int64)
    bits = (wt[:, None] >> torch.arange(spec.bits)) & 1
    S = bits @ torch.tensor(spec.coef, dtype=torch.int64)  # §4: u_1 + ... + u_m
    fire = gn.fire(torch.tensor(ys), S, spec.T)

    got_s, got_f = [], []
    settle = Timer(1, unit="ns")
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for y, w in zip(ys, words):
            dut.y.value, dut.word.value = y, w
            await settle
            got_s.append(dut.s.value)
            got_f.append(dut.fire.value)
    vectors = round(get_sim_time("ns") - t0)  # vectors (1 ns each) the loop spanned, counted by the simulator
    assert vectors == len(got_f), f"comparator_random: {vectors} ns simulated but {len(got_f)} vectors sampled"
    util.record("comparator_random", cycles=vectors, loop_s=t.s, cycles_per_s=vectors / t.s)
    msg = util.first_mismatch({"s": S.tolist(), "fire": fire.tolist()},
                              {"s": util.ints(got_s), "fire": util.ints(got_f)},
                              what="vector", context=lambda i: f"y = {ys[i]}, word = {words[i]:#x}, T = {spec.T}")
    util.check(msg)
    dut._log.info("comparator_random: %d vectors compared (s, fire), %.0f vectors/s", n, n / t.s)
