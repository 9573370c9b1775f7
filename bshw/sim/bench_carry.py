"""cocotb bench: the periodic-carry synapse (bshw/periodic_carry.py) against bshw/golden/exact/carry.py
(docs/arithmetic.md §9).

Model, per clock: ``accumulate`` (saturating ``c + x * dy``) when ``acc``, then ``carry`` (the
``th`` rule into the weight, counter cleared) when ``carry``; ``load`` overrides both. The
combinational ``step`` is ``carry``'s step of the counter after this clock's accumulation.
Checked every clock: ``w``, ``c`` and ``step``.

Stimulus: batches of 1-12 accumulate clocks closed by a carry clock (sometimes both in one
clock), idle clocks, rare loads (often near the weight or counter limits); the gradient sign is
biased in phases of a few hundred clocks so that counters saturate and weights reach their limits.
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.utils import get_sim_time

from bshw.golden.exact import carry as gc
from bshw.sim import util

DEFAULTS = {"th": 8, "counter_bits": 8, "wmin": -128, "wmax": 127, "w_init": 0, "c_init": 0}
KNOBS = {"cycles": 20000}


def make_dut(p: dict):
    from bshw.periodic_carry import PeriodicCarry

    name = f"bshw_periodic_carry_th{p['th']}_c{p['counter_bits']}"
    return name, PeriodicCarry(p["th"], p["counter_bits"], p["wmin"], p["wmax"], p["w_init"], p["c_init"])


def _stimulus(rng, p, n):
    """Per clock ``(x, dy_en, dy_neg, acc, carry, load, w_load, c_load)``."""
    cb = p["counter_bits"]
    cmin, cmax = -(1 << (cb - 1)), (1 << (cb - 1)) - 1
    out, left, bias, phase = [], 0, 1, 0
    while len(out) < n:
        if phase <= 0:
            bias, phase = rng.choice([-1, 1]), rng.randint(50, 600)
        if left <= 0:
            left = rng.randint(1, 12)  # a batch of B samples
        u = rng.random()
        x = int(rng.random() < 0.8)
        dy = rng.choice([bias, bias, bias, 0, -bias])
        acc, carry, load, wl, cl = 1, 0, 0, 0, 0
        if u < 0.004:
            load, acc = 1, rng.getrandbits(1)
            wl = rng.choice([p["wmin"], p["wmax"], p["wmin"] + 1, p["wmax"] - 1, rng.randint(p["wmin"], p["wmax"])])
            cl = rng.choice([cmin, cmax, p["th"], -p["th"], p["th"] - 1, rng.randint(cmin, cmax)])
        elif u < 0.05:
            acc = 0  # idle clock
            carry = int(rng.random() < 0.2)
        else:
            left -= 1
            if left == 0:
                carry = 1
                acc = int(rng.random() < 0.5)  # the batch's last accumulation in the carry clock, or not
        out.append((x, int(dy != 0), int(dy < 0), acc, carry, load, wl, cl))
        phase -= 1
    return out


@cocotb.test()
async def carry_random_batches(dut):
    """Random batches, carries and loads; w, c and step compared every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    rng = util.rng(dut, "carry_random_batches")
    n, th, cb, wmin, wmax = p["cycles"], p["th"], p["counter_bits"], p["wmin"], p["wmax"]
    stim = _stimulus(rng, p, n)
    # golden model, clock by clock (1 x 1 tensors through the training's own functions)
    c = torch.full((1, 1), p["c_init"], dtype=torch.int64)
    w = torch.full((1, 1), p["w_init"], dtype=torch.int64)
    exp_w, exp_c, exp_step = [], [], []
    for x, en, neg, acc, carry, load, wl, cl in stim:
        exp_w.append(int(w))
        exp_c.append(int(c))
        c_now = gc.accumulate(c, torch.tensor([[x]]), torch.tensor([[en * (1 - 2 * neg)]]), cb) if acc else c
        c_car, w_car, step = gc.carry(c_now, w.clone(), th, wmin, wmax)
        exp_step.append(int(step))
        if load:
            c, w = torch.full_like(c, cl), torch.full_like(w, wl)
        elif carry:
            c, w = c_car, w_car
        else:
            c = c_now

    names = ("x", "dy_en", "dy_neg", "acc", "carry", "load", "w_load", "c_load")
    handles = await util.start(dut, names)
    # step is combinational in this clock's inputs: sampled once they settle
    t0 = get_sim_time("ns")
    raw, loop_s = await util.apply_vectors(dut, handles, stim, ("w", "c", "step"))
    got_w, got_c, got_step = raw["w"], raw["c"], raw["step"]
    climits = (-(1 << (cb - 1)), (1 << (cb - 1)) - 1)
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert clocks == len(raw["w"]), f"carry_random_batches: {clocks} clocks simulated but {len(raw['w'])} sampled"
    util.record("carry_random_batches", cycles=clocks, loop_s=loop_s, cycles_per_s=clocks / loop_s,  # + coverage
                carries=sum(s != 0 for s, st in zip(exp_step, stim) if st[4] and not st[5]),
                w_at_limit=sum(v in (wmin, wmax) for v in exp_w), c_saturated=sum(v in climits for v in exp_c))
    got = {"w": util.ints(got_w, signed=True), "c": util.ints(got_c, signed=True),
           "step": util.ints(got_step, signed=True)}
    msg = util.first_mismatch({"w": exp_w, "c": exp_c, "step": exp_step}, got,
                              context=lambda i: "inputs x/dy_en/dy_neg/acc/carry/load/w_load/c_load = "
                                                f"{stim[i]}, before it {stim[i - 1] if i else 'reset'}")
    util.check(msg)
    dut._log.info("carry_random_batches: %d cycles compared (w, c, step), %.0f cycles/s", n, n / loop_s)
