"""cocotb bench: a layer's gradient counters (bshw/periodic_carry.py ``CounterBank``) against
golden/exact/carry.py (docs/arithmetic.md §9, §15).

Model, per clock, on the row ``row`` of a counter matrix ``C[fan_in][fan_out]``:
``acc``: ``golden.exact.carry.accumulate`` of the row with the one-sample gradient ``x * dy``
(saturating at the ``cb``-bit range); ``carry``: ``golden.exact.carry.carry`` of the counters after
this clock's accumulation, whose step gives the pulses (``pot`` = step +1, ``dep`` = step -1, only
in a carry clock) and whose counters (cleared where a step is taken) are written back; ``we``: the
row becomes ``wdata`` (the pulses still show this clock's carry). Checked every clock: every
column of ``rdata`` (the counters of the addressed row, before the edge), ``pot`` and ``dep``.

Stimulus: batches of 1-60 samples (random x density, ternary dy with a sign bias in phases), each
sample accumulating the rows in order (sometimes a random subset), then a carry pass over the rows;
sometimes the last sample's accumulation shares the carry clock; idle clocks reading random rows;
host writes (often at the counter limits, at +-th and +-(th - 1)). For each batch without
interleaved writes the counters before the carry are also checked to equal the batch form
``accumulate(C, X [B, fan_in], DY [B, fan_out])`` (the per-sample order of §9).
"""

from __future__ import annotations

import random

import cocotb
import torch

from golden.exact import carry as gc
from sim import netio, util

DEFAULTS = {"fan_in": 8, "fan_out": 10, "th": 8, "counter_bits": 8, "init_seed": 1}
KNOBS = {"cycles": 10000}
OPS = ("row", "x", "dy_en", "dy_neg", "acc", "carry", "we", "wdata")


def _climits(p: dict) -> tuple:
    cb = p["counter_bits"]
    return -(1 << (cb - 1)), (1 << (cb - 1)) - 1


def _special(p: dict) -> list:
    """Counter values at the edges of the rule: the limits and the thresholds (§9)."""
    cmin, cmax = _climits(p)
    th = p["th"]
    return [cmin, cmax, cmin + 1, cmax - 1, th, -th, th - 1, 1 - th, 0]


def init_counters(p: dict) -> list:
    """The reset counters ``[fan_in][fan_out]`` of the DUT, random from ``init_seed``."""
    r = random.Random(p["init_seed"])
    cmin, cmax = _climits(p)
    return [[r.choice(_special(p)) if r.random() < 0.3 else r.randint(cmin, cmax) for _ in range(p["fan_out"])]
            for _ in range(p["fan_in"])]


def make_dut(p: dict):
    from bshw.periodic_carry import CounterBank

    name = f"bshw_counter_bank_{p['fan_in']}x{p['fan_out']}_th{p['th']}_c{p['counter_bits']}"
    return name, CounterBank(p["fan_in"], p["fan_out"], p["th"], p["counter_bits"], init_counters(p))


def _stimulus(rng: random.Random, p: dict, n: int):
    """Per clock a dict of ``OPS`` (dy as column masks, wdata as a list); and the batches
    ``(first clock of the carry pass, X, DY)`` that can be checked against the batch form."""
    fi, fo = p["fan_in"], p["fan_out"]
    cmin, cmax = _climits(p)
    idle = dict(row=0, x=0, dy_en=0, dy_neg=0, acc=0, carry=0, we=0, wdata=None)
    out, batches, bias, phase = [], [], 1, 0

    def wdata():
        return [rng.choice(_special(p)) if rng.random() < 0.5 else rng.randint(cmin, cmax) for _ in range(fo)]

    while len(out) < n:
        if phase <= 0:
            bias, phase = rng.choice([-1, 1]), rng.randint(3, 12)  # batches of mostly one gradient sign
        u = rng.random()
        if u < 0.8:  # a batch
            B = rng.randint(1, 8) if rng.random() < 0.7 else rng.randint(9, 60)
            density, clean, inner = rng.random(), True, rng.random() < 0.1
            merge = rng.random() < 0.3  # the last sample's accumulation in the carry clock of its rows
            X, DY = [], []
            for s in range(B):
                xs = [int(rng.random() < density) for _ in range(fi)]
                dy = [rng.choice([bias, bias, bias, 0, -bias]) if rng.random() < 0.8 else 0 for _ in range(fo)]
                en = sum((v != 0) << j for j, v in enumerate(dy))
                neg = sum((v < 0) << j for j, v in enumerate(dy))
                X.append(xs)
                DY.append(dy)
                if s == B - 1 and merge:
                    break
                rows = range(fi) if rng.random() < 0.85 else sorted(rng.sample(range(fi), rng.randint(1, fi)))
                clean &= len(rows) == fi
                for r in rows:
                    out.append({**idle, "row": r, "x": xs[r], "dy_en": en, "dy_neg": neg, "acc": 1})
                if inner and rng.random() < 2 / B:  # a host write inside the batch
                    clean = False
                    out.append({**idle, "row": rng.randrange(fi), "we": 1, "wdata": wdata()})
            if clean and B > merge:  # before the carry pass: every sample but a merged last one
                batches.append((len(out), X[:B - merge], DY[:B - merge]))
            for r in range(fi):  # the carry pass, row by row
                c = {**idle, "row": r, "carry": 1}
                if merge:
                    c.update(x=X[-1][r], dy_en=en, dy_neg=neg, acc=1)
                if rng.random() < 0.01:
                    c["we"], c["wdata"] = 1, wdata()  # the write wins the row; pulses still shown
                out.append(c)
            phase -= 1
        elif u < 0.9:  # host writes
            for _ in range(rng.randint(1, fi)):
                out.append({**idle, "row": rng.randrange(fi), "we": 1, "wdata": wdata()})
        else:  # idle clocks with random inputs: nothing moves without acc/carry/we
            for _ in range(rng.randint(1, 6)):
                out.append({**idle, "row": rng.randrange(fi), "x": rng.getrandbits(1),
                            "dy_en": rng.getrandbits(fo), "dy_neg": 0})
    return out[:n], [b for b in batches if b[0] < n]


def _model(p: dict, stim: list, batches: list):
    """Expected ``rdata`` fields, ``pot`` and ``dep`` masks per clock; counts of saturated
    accumulations and of pulses. Checks the clean batches against the batch form."""
    fi, fo, th, cb = p["fan_in"], p["fan_out"], p["th"], p["counter_bits"]
    cmin, cmax = _climits(p)
    C = torch.tensor(init_counters(p), dtype=torch.int64)
    at = {first: (X, DY) for first, X, DY in batches}
    exp_rd, exp_pot, exp_dep = [], [], []
    saturated = checked = 0
    start = None  # the counters before the current batch's first accumulation
    zero_w = torch.zeros(1, fo, dtype=torch.int64)
    for i, c in enumerate(stim):
        r = c["row"]
        if i in at:  # the counters before the carry pass equal the batch form of accumulate (§9)
            X, DY = at[i]
            want = gc.accumulate(start, torch.tensor(X), torch.tensor(DY), cb)
            assert torch.equal(C, want), f"bench model: clock {i}, row-serial counters differ from the batch form"
            checked += 1
        if c["carry"] or c["we"]:
            start = None
        elif c["acc"] and start is None:
            start = C.clone()
        row = C[r:r + 1]
        exp_rd.append(row[0].tolist())
        now = row
        if c["acc"]:
            dy = torch.tensor([[((c["dy_en"] >> j) & 1) * (1 - 2 * ((c["dy_neg"] >> j) & 1)) for j in range(fo)]])
            now = gc.accumulate(row, torch.tensor([[c["x"]]]), dy, cb)
            raw = row + torch.tensor([[c["x"]]]) * dy
            saturated += int(((raw > cmax) | (raw < cmin)).sum())
        cleared, _, step = gc.carry(now.clone(), zero_w.clone(), th, -1, 1)
        s = step[0].tolist()
        pot = sum((v == 1) << j for j, v in enumerate(s)) if c["carry"] else 0
        dep = sum((v == -1) << j for j, v in enumerate(s)) if c["carry"] else 0
        exp_pot.append(pot)
        exp_dep.append(dep)
        if c["we"]:
            C[r] = torch.tensor(c["wdata"])
        else:
            C[r] = (cleared if c["carry"] else now)[0]
    assert checked == len(batches), f"bench model: {checked} of {len(batches)} batches checked"
    return exp_rd, exp_pot, exp_dep, saturated


@cocotb.test()
async def counter_bank_random_batches(dut):
    """Random batches of accumulate rows and carry rows, writes and reads; rdata, pot, dep every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    rng = util.rng(dut, "counter_bank_random_batches")
    n, fi, fo, cb = p["cycles"], p["fan_in"], p["fan_out"], p["counter_bits"]
    stim, batches = _stimulus(rng, p, n)
    exp_rd, exp_pot, exp_dep, saturated = _model(p, stim, batches)

    hs = await util.start(dut, OPS)
    drive = [tuple(netio.pack(c[s], cb) if s == "wdata" and c[s] is not None else (c[s] or 0) for s in OPS)
             for c in stim]
    # rdata, pot and dep are combinational in this clock's row and inputs
    raw, loop_s = await util.apply_vectors(dut, hs, drive, ("rdata", "pot", "dep"))
    got_rd, got_pot, got_dep = raw["rdata"], raw["pot"], raw["dep"]
    pulses = sum(bin(a).count("1") + bin(b).count("1") for a, b in zip(exp_pot, exp_dep))
    util.record("counter_bank_random_batches", cycles=n, loop_s=loop_s, cycles_per_s=n / loop_s, batches=len(batches),
                pulses=pulses, saturated=saturated, carry_rows=sum(c["carry"] for c in stim),
                acc_rows=sum(c["acc"] for c in stim), writes=sum(c["we"] for c in stim))
    grd = [netio.unpack(v, fo, cb, signed=True) for v in util.ints(got_rd)]
    exp, got = {}, {}
    for j in range(fo):
        exp[f"rdata[{j}]"], got[f"rdata[{j}]"] = [e[j] for e in exp_rd], [g[j] for g in grd]
    exp["pot"], got["pot"] = exp_pot, util.ints(got_pot)
    exp["dep"], got["dep"] = exp_dep, util.ints(got_dep)

    def context(i):
        show = lambda c: {k: v for k, v in c.items() if v not in (0, None) or k == "row"}  # noqa: E731
        return f"inputs before it: {show(stim[i - 1]) if i else 'reset'}; this clock: {show(stim[i])}"

    util.check(util.first_mismatch(exp, got, context=context))
    dut._log.info("counter_bank_random_batches: %d cycles compared (rdata, pot, dep), %d batches, %d pulses, "
                  "%d saturated accumulations, %.0f cycles/s", n, len(batches), pulses, saturated, n / loop_s)
