"""cocotb bench: the behavioral crossbar (bshw/crossbar.py) against a plain integer matrix
(docs/arithmetic.md §2, §9, §15 "Row-serial crossbar model").

Model, per clock, on an integer matrix ``W[fan_in][fan_out]`` (Python ints):

* ``clear``: the column sums are zeroed; else ``fwd`` with ``x = 1`` adds row ``row`` of W to them,
  so between two clears ``y = x W`` (§2) over the rows presented;
* ``bwd``: ``dx[row] = sum_j dy_j W[row, j]`` (§2, dy ternary on the §7 wire code);
* ``we``: row ``row`` becomes ``wdata``; else pot/dep pulses move each weight one level, clamped to
  ``[wmin, wmax]`` (§9). The clamped step is ``golden.exact.carry.carry`` with ``th = 1`` on the
  pulse "counter" ``dep - pot`` (``<= -1``: +1 level, ``>= 1``: -1 level);
* every operation of a clock reads the weights as they were before its edge.

Checked every clock: every column of ``y``, every row of ``dx`` and every column of ``rdata``
(the row now addressed). Stimulus: samples (clear, then up to ``fan_in`` forward rows with a
random input density), backward rows with random ternary dy, pulse bursts with a direction bias on
a few rows (so weights reach and sit at their limits), host writes of random rows (often limit
values), idle reads, and mixed clocks (forward or backward together with pulses or a write).
"""

from __future__ import annotations

import random

import cocotb
import torch

from golden.exact import carry as gc
from bshw.crossbar import dx_width, y_width
from bshw.periodic_carry import weight_bits
from sim import netio, util

DEFAULTS = {"fan_in": 32, "fan_out": 10, "wmin": -128, "wmax": 127, "backward": True, "init_seed": 1}
KNOBS = {"cycles": 10000}


def _limits(p: dict) -> list:
    return [p["wmin"], p["wmax"], p["wmin"] + 1, p["wmax"] - 1]


def init_weights(p: dict) -> list:
    """The reset weights ``[fan_in][fan_out]`` of the DUT: random levels from ``init_seed``, a
    quarter of them at or next to the limits."""
    r = random.Random(p["init_seed"])
    return [[r.choice(_limits(p)) if r.random() < 0.25 else r.randint(p["wmin"], p["wmax"])
             for _ in range(p["fan_out"])] for _ in range(p["fan_in"])]


def make_dut(p: dict):
    from bshw.crossbar import Crossbar

    name = f"bshw_crossbar_{p['fan_in']}x{p['fan_out']}_b{weight_bits(p['wmin'], p['wmax'])}"
    name += "" if p["backward"] else "_fwd"
    return name, Crossbar(p["fan_in"], p["fan_out"], p["wmin"], p["wmax"], backward=p["backward"],
                          init=init_weights(p))


OPS = ("row", "clear", "fwd", "x", "bwd", "dy_en", "dy_neg", "pot", "dep", "we", "wdata")


def _stimulus(rng: random.Random, p: dict, n: int) -> list:
    """Per clock a dict of the inputs in ``OPS`` (``dy``/``pot``/``dep`` as column bit masks,
    ``wdata`` as a list of levels)."""
    fi, fo, back = p["fan_in"], p["fan_out"], p["backward"]
    full = (1 << fo) - 1
    out, since_clear = [], fi  # forward rows since the last clear (y must stay inside its §2 range)
    hot, bias, phase = [0], 1, 0
    idle = dict(row=0, clear=0, fwd=0, x=0, bwd=0, dy_en=0, dy_neg=0, pot=0, dep=0, we=0, wdata=None)

    def ternary():
        en = rng.getrandbits(fo) if rng.random() < 0.7 else (0 if rng.random() < 0.5 else full)
        return en, en & rng.getrandbits(fo)

    def pulses():
        dens = rng.choice([0.3, 0.7, 1.0])
        pot = dep = 0
        for j in range(fo):
            if rng.random() < dens:
                up = rng.random() < (0.85 if bias > 0 else 0.15)
                pot, dep = pot | (up << j), dep | (int(not up) << j)
        return pot, dep

    def wdata():
        return [rng.choice(_limits(p)) if rng.random() < 0.4 else rng.randint(p["wmin"], p["wmax"]) for _ in range(fo)]

    while len(out) < n:
        if phase <= 0:  # a pulse phase: a few hot rows and a direction
            hot = rng.sample(range(fi), min(fi, rng.randint(1, 3)))
            bias, phase = rng.choice([-1, 1]), rng.randint(100, 400)
        u = rng.random()
        if u < 0.35:  # a sample: clear, then forward rows in order (sometimes a random subset)
            density = rng.random()
            rows = range(fi) if rng.random() < 0.7 else sorted(rng.sample(range(fi), rng.randint(1, fi)))
            out.append({**idle, "row": rng.randrange(fi), "clear": 1})
            since_clear = 0
            for r in rows:
                c = {**idle, "row": r, "fwd": 1, "x": int(rng.random() < density)}
                if rng.random() < 0.05:  # a pulse or write in the same clock (reads the old row)
                    if rng.random() < 0.5:
                        c["pot"], c["dep"] = pulses()
                    else:
                        c["we"], c["wdata"] = 1, wdata()
                if rng.random() < 0.03 and back:
                    c["bwd"] = 1
                    c["dy_en"], c["dy_neg"] = ternary()
                out.append(c)
                since_clear += 1
        elif u < 0.55 and back:  # backward rows
            for r in (range(fi) if rng.random() < 0.5 else [rng.randrange(fi) for _ in range(rng.randint(1, 8))]):
                en, neg = ternary()
                c = {**idle, "row": r, "bwd": 1, "dy_en": en, "dy_neg": neg}
                if rng.random() < 0.05:
                    c["pot"], c["dep"] = pulses()
                out.append(c)
        elif u < 0.85:  # pulse burst, mostly on the hot rows
            for _ in range(rng.randint(4, 40)):
                r = rng.choice(hot) if rng.random() < 0.8 else rng.randrange(fi)
                pot, dep = pulses()
                c = {**idle, "row": r, "pot": pot, "dep": dep}
                if since_clear < fi and rng.random() < 0.1:  # a forward row during a pulse
                    c["fwd"], c["x"] = 1, rng.getrandbits(1)
                    since_clear += 1
                out.append(c)
        elif u < 0.93:  # host writes (often limit levels)
            for _ in range(rng.randint(1, 4)):
                r = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(fi)
                out.append({**idle, "row": r, "we": 1, "wdata": wdata()})
        else:  # idle clocks: rdata reads of random rows
            for _ in range(rng.randint(1, 6)):
                out.append({**idle, "row": rng.randrange(fi)})
        phase -= 1
    return out[:n]


def _model(p: dict, stim: list):
    """Expected ``y``, ``dx`` and ``rdata`` fields per clock (before its edge), and counts."""
    fi, fo, wmin, wmax = p["fan_in"], p["fan_out"], p["wmin"], p["wmax"]
    W = init_weights(p)
    y, dx = [0] * fo, [0] * fi
    exp_y, exp_dx, exp_rd = [], [], []
    clamped = 0
    for c in stim:
        r = c["row"]
        row = W[r]
        exp_y.append(list(y))
        exp_dx.append(list(dx))
        exp_rd.append(list(row))
        if c["clear"]:
            y = [0] * fo
        elif c["fwd"] and c["x"]:
            y = [a + w for a, w in zip(y, row)]  # y_j = sum_i x_i W[i, j], one row per clock (§2)
        if c["bwd"]:
            dy = [((c["dy_en"] >> j) & 1) * (1 - 2 * ((c["dy_neg"] >> j) & 1)) for j in range(fo)]
            dx[r] = sum(d * w for d, w in zip(dy, row))  # dx_i = sum_j dy_j W[i, j] (§2)
        if c["we"]:
            W[r] = list(c["wdata"])
        elif c["pot"] or c["dep"]:
            pulse = torch.tensor([((c["dep"] >> j) & 1) - ((c["pot"] >> j) & 1) for j in range(fo)])
            _, w_new, step = gc.carry(pulse, torch.tensor(row), 1, wmin, wmax)  # §9: one level, clamped
            W[r] = w_new.tolist()
            clamped += sum(int(s) != 0 and a == b for s, a, b in zip(step, row, W[r]))
    return exp_y, exp_dx, exp_rd, clamped


@cocotb.test()
async def crossbar_random_ops(dut):
    """Random clear / forward / backward / pulse / write / read clocks; y, dx, rdata compared every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    rng = util.rng(dut, "crossbar_random_ops")
    n, fi, fo, back = p["cycles"], p["fan_in"], p["fan_out"], p["backward"]
    b = weight_bits(p["wmin"], p["wmax"])
    yw, dxw = y_width(fi, b), dx_width(fo, b)  # §2 widths, the RTL's own functions
    stim = _stimulus(rng, p, n)
    exp_y, exp_dx, exp_rd, clamped = _model(p, stim)
    lo, hi = -(1 << (yw - 1)), (1 << (yw - 1)) - 1
    assert all(lo <= v <= hi for ys in exp_y for v in ys), "bench stimulus exceeds the §2 range of y"

    names = [s for s in OPS if back or s not in ("bwd", "dy_en", "dy_neg")]
    handles = dict(zip(names, await util.start(dut, names)))
    drive = [tuple(c[s] if s != "wdata" else (netio.pack(c[s], b) if c[s] is not None else 0) for s in names)
             for c in stim]
    hs = [handles[s] for s in names]
    # rdata is combinational in this clock's row: sampled once the inputs settle
    raw, loop_s = await util.apply_vectors(dut, hs, drive, ("y", "rdata", "dx") if back else ("y", "rdata"))
    got_y, got_rd, got_dx = raw["y"], raw["rdata"], raw.get("dx", [])
    pulses = sum(bin(c["pot"] | c["dep"]).count("1") for c in stim)
    util.record("crossbar_random_ops", cycles=n, loop_s=loop_s, cycles_per_s=n / loop_s, pulses=pulses,
                clamped_pulses=clamped, writes=sum(c["we"] for c in stim),
                fwd_rows=sum(c["fwd"] for c in stim), bwd_rows=sum(c["bwd"] for c in stim))
    exp, got = {}, {}
    gy = [netio.unpack(v, fo, yw, signed=True) for v in util.ints(got_y)]
    grd = [netio.unpack(v, fo, b, signed=True) for v in util.ints(got_rd)]
    for j in range(fo):
        exp[f"y[{j}]"], got[f"y[{j}]"] = [e[j] for e in exp_y], [g[j] for g in gy]
    if back:
        gdx = [netio.unpack(v, fi, dxw, signed=True) for v in util.ints(got_dx)]
        for i in range(fi):
            exp[f"dx[{i}]"], got[f"dx[{i}]"] = [e[i] for e in exp_dx], [g[i] for g in gdx]
    for j in range(fo):
        exp[f"rdata[{j}]"], got[f"rdata[{j}]"] = [e[j] for e in exp_rd], [g[j] for g in grd]

    def context(i):
        show = lambda c: {k: v for k, v in c.items() if v not in (0, None) or k == "row"}  # noqa: E731
        return f"inputs before it: {show(stim[i - 1]) if i else 'reset'}; this clock: {show(stim[i])}"

    util.check(util.first_mismatch(exp, got, context=context))
    dut._log.info("crossbar_random_ops: %d cycles compared (y, dx, rdata), %d pulses (%d clamped at a limit), "
                  "%.0f cycles/s", n, pulses, clamped, n / loop_s)
