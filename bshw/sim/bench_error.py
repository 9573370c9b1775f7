"""cocotb bench: the error driver (bshw/error_driver.py) against bshw/golden/exact/error.py (docs/arithmetic.md §7).

Model: ``tie_sign`` (sign of dx with the tie rule; ``driven`` = any upper ``en`` wire high),
``encode`` (the two-wire code), ``ternary_error`` (``dy = dz * d``). Combinational DUT: each
vector settles 1 ns, then ``dz_en``, ``dz_neg``, ``en``, ``neg`` are compared, and the illegal
code ``en = 0, neg = 1`` is checked never to appear (``decode``).
Stimulus: dx = 0 in a third of the vectors (the tie), small or full-range otherwise; the upper
layer drives nothing in a third, one line or random lines otherwise; random d.
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.triggers import Timer
from cocotb.utils import get_sim_time

from bshw.golden.exact import error as ge
from bshw.sim import util

DEFAULTS = {"dx_width": 12, "n_upper": 10, "tie": "gated"}
KNOBS = {"vectors": 20000}


def make_dut(p: dict):
    from bshw.error_driver import ErrorDriver

    return f"bshw_error_driver_{p['tie']}", ErrorDriver(p["dx_width"], p["n_upper"], p["tie"])


@cocotb.test()
async def error_driver_random(dut):
    """Random (dx, upper_en, d) vectors; dz and dy wires compared with the golden model."""
    p = util.params({**DEFAULTS, **KNOBS})
    rng = util.rng(dut, "error_driver_random")
    n, nu = p["vectors"], p["n_upper"]
    lo, hi = -(1 << (p["dx_width"] - 1)), (1 << (p["dx_width"] - 1)) - 1
    dx, up, d = [], [], []
    for _ in range(n):
        u = rng.random()
        dx.append(0 if u < 1 / 3 else rng.randint(-3, 3) if u < 2 / 3 else rng.randint(lo, hi))
        u = rng.random()
        up.append(0 if u < 1 / 3 else (1 << rng.randrange(nu)) if u < 2 / 3 else rng.getrandbits(nu))
        d.append(rng.getrandbits(1))
    # golden model, in bulk: dz = tie_sign(dx), dy = dz * d, both on the wire code
    dxt = torch.tensor(dx, dtype=torch.int64)[:, None]
    dz = ge.tie_sign(dxt, torch.tensor(up) != 0, p["tie"])
    dy = ge.ternary_error(torch.tensor(d, dtype=torch.int64)[:, None], dz)
    dz_en, dz_neg = ge.encode(dz)
    en, neg = ge.encode(dy)

    got = {"dz_en": [], "dz_neg": [], "en": [], "neg": []}
    sigs = [(got[s], getattr(dut, s)) for s in got]
    settle = Timer(1, unit="ns")
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for i in range(n):
            dut.dx.value, dut.upper_en.value, dut.d.value = dx[i], up[i], d[i]
            await settle
            for lst, h in sigs:
                lst.append(h.value)
    vectors = round(get_sim_time("ns") - t0)  # vectors (1 ns each) the loop spanned, counted by the simulator
    assert vectors == len(got["en"]), f"error_driver_random: {vectors} ns but {len(got['en'])} vectors sampled"
    util.record("error_driver_random", cycles=vectors, loop_s=t.s, cycles_per_s=vectors / t.s, tie=p["tie"])
    got = {s: util.ints(vals) for s, vals in got.items()}
    exp = {"dz_en": dz_en[:, 0].tolist(), "dz_neg": dz_neg[:, 0].tolist(), "en": en[:, 0].tolist(),
           "neg": neg[:, 0].tolist()}
    msg = util.first_mismatch(exp, got, what="vector",
                              context=lambda i: f"dx = {dx[i]}, upper_en = {up[i]:#x}, d = {d[i]}, tie = {p['tie']}")
    util.check(msg)
    for wires in (("dz_en", "dz_neg"), ("en", "neg")):  # §7: (en, neg) = (0, 1) is never produced
        ge.decode(torch.tensor(got[wires[0]]), torch.tensor(got[wires[1]]))
    dut._log.info("error_driver_random: %d vectors compared (dz_en, dz_neg, en, neg), tie %s", n, p["tie"])
