"""cocotb bench: one hidden neuron's periphery (bshw/neuron_periphery.py: N32 LFSR, comparator,
X/A/B flip-flops, error driver) against bshw/golden/exact (docs/arithmetic.md §3, §4, §6, §7).

Model: a sample holds y for its ``1 + 2k`` draws (X, A1, B1, ..., Ak, Bk). The draws' noise sums
are ``bshw.golden.exact.lfsr.LfsrBank(N32, [start], W).draw(m, coef=NoiseSpec.coef)`` (the golden
training's form), one bank per stretch between loads/resets, and the LFSR state after each draw
is ``bshw.golden.exact.lfsr.leap(state, N32, W)`` (the reference step, checked against the bank);
``bshw.golden.exact.neuron.sample_neurons`` gives every sample's x, A, B and d. Each draw latches its
flip-flop (draw i of a sample: X, then A_m, B_m), so during a sample the flip-flops hold this
sample's first draws and the previous sample's others; ``d`` is ``bshw.golden.exact.neuron.derivative``
of the flip-flops. The error wires are ``encode(ternary_error(d, tie_sign(dx, upper_en != 0, tie)))``
(bshw.golden.exact.error) of every clock's random ``dx`` and ``upper_en``.
Checked every clock: ``index``, ``state``, ``x``, ``a``, ``b``, ``d``, ``en``, ``neg``; the
illegal code ``en = 0, neg = 1`` never appears.

Stimulus: samples with y near the threshold (|y| <= Smax + 2) or over the full range (and the
extremes), each followed by 0-4 backward clocks; every clock a random dx (0 in a third: the tie)
and random upper ``en`` wires (none in a third); between samples, rare loads of the LFSR (of
``seed_state`` values and random words) and resets; 3 % of the samples are aborted after a random
number of draws with ``restart`` (in the last draw's clock or in a clock of its own).
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.utils import get_sim_time

from bshw.golden.exact import error as ge
from bshw.golden.exact import neuron as gn
from bshw.golden.exact.lfsr import N32, LfsrBank, leap, seed_state, stream_id
from bshw.golden.exact.noise import NoiseSpec
from bshw.sim import util

DEFAULTS = {"y_width": 14, "dx_width": 12, "k": 4, "tie": "gated", "noise_words": [7, 7, 5], "n_upper": 10,
            "init": seed_state(0, stream_id(1, 0), N32)}
KNOBS = {"cycles": 10000}
INPUTS = ("rst", "y", "draw", "restart", "dx", "upper_en", "load", "load_value")
OUTPUTS = ("index", "state", "x", "a", "b", "d", "en", "neg")


def make_dut(p: dict):
    from bshw.neuron_periphery import NeuronPeriphery

    words = tuple(p["noise_words"])
    name = f"bshw_neuron_periphery_k{p['k']}_{p['tie']}_w{'_'.join(map(str, words))}"
    return name, NeuronPeriphery(p["y_width"], p["dx_width"], p["k"], p["tie"], words, p["n_upper"], p["init"])


def _stimulus(rng, p, spec, n):
    """Per clock a dict of ``INPUTS``; the samples as ``(first clock, y, draws)``."""
    k, nu = p["k"], p["n_upper"]
    per = 1 + 2 * k
    ylo, yhi = -(1 << (p["y_width"] - 1)), (1 << (p["y_width"] - 1)) - 1
    dlo, dhi = -(1 << (p["dx_width"] - 1)), (1 << (p["dx_width"] - 1)) - 1
    near = spec.smax + 2
    out, samples = [], []

    def clock(**kw):
        u = rng.random()
        dx = 0 if u < 1 / 3 else rng.randint(-3, 3) if u < 2 / 3 else rng.randint(dlo, dhi)
        u = rng.random()
        up = 0 if u < 1 / 3 else (1 << rng.randrange(nu)) if u < 2 / 3 else rng.getrandbits(nu)
        c = dict(rst=0, y=out[-1]["y"] if out else 0, draw=0, restart=0, dx=dx, upper_en=up, load=0, load_value=0)
        c.update(kw)
        out.append(c)

    while len(out) < n:
        u = rng.random()
        if u < 0.02:
            v = seed_state(rng.getrandbits(16), stream_id(rng.randint(1, 3), rng.randrange(100)), N32) \
                if rng.random() < 0.5 else rng.randint(1, N32.mask)
            clock(load=1, load_value=v)
        elif u < 0.025:
            clock(rst=1)
        u = rng.random()
        y = rng.choice([ylo, yhi, 0, -1, 1]) if u < 0.05 else \
            rng.randint(max(ylo, -near), min(yhi, near)) if u < 0.55 else rng.randint(ylo, yhi)
        draws = per if rng.random() >= 0.03 else rng.randint(1, per)  # an aborted sample: restart
        samples.append((len(out), y, draws))
        for i in range(draws):
            clock(y=y, draw=1, restart=int(draws < per and i == draws - 1 and rng.random() < 0.5))
        if draws < per and not out[-1]["restart"]:
            clock(restart=1)
        for _ in range(rng.randint(0, 4)):  # backward clocks: dx and the upper en wires move
            clock()
    return out[:n], [s for s in samples if s[0] < n]


def _model(p, spec, stim, samples, init):
    """Expected outputs per clock (dict of lists), and the number of complete samples."""
    k = p["k"]
    per, W = 1 + 2 * k, spec.bits
    # the draws' noise sums: one LfsrBank per stretch between loads/resets (golden training form)
    stretches, order = [], []  # [start state, draws]; per draw clock (stretch, number)
    start = init
    stretches.append([start, 0])
    for c in stim:
        if c["rst"] or c["load"]:
            stretches.append([init if c["rst"] else c["load_value"], 0])
        elif c["draw"]:
            order.append((len(stretches) - 1, stretches[-1][1]))
            stretches[-1][1] += 1
    sums = []
    for s0, m in stretches:
        bank = LfsrBank(N32, [s0], W)
        sums.append(bank.draw(m, coef=spec.coef)[:, 0].tolist())
        s = s0
        for _ in range(m):
            s = leap(s, N32, W)
        assert s == int(bank.states[0]), "bench model: LfsrBank and leap disagree"
    # every sample's flip-flop values through sample_neurons (unused draws of aborted samples padded)
    S = torch.zeros(len(samples), per, 1, dtype=torch.int64)
    it = iter(order)
    for i, (_, _, draws) in enumerate(samples):
        for j in range(draws):
            st, m = next(it, (None, None))
            if st is None:  # truncated by the end of the stimulus
                break
            S[i, j, 0] = sums[st][m]
    ys = torch.tensor([[y] for _, y, _ in samples], dtype=torch.int64)
    x, A, Bs, d = gn.sample_neurons(ys, S, spec.T, k)
    fires = torch.zeros(len(samples), per, dtype=torch.int64)
    fires[:, 0], fires[:, 1::2], fires[:, 2::2] = x[:, 0], A[:, :, 0], Bs[:, :, 0]
    fires = fires.tolist()

    # clock by clock: which draw of which sample, the flip-flops, the index, the LFSR state
    first = {c0: i for i, (c0, _, _) in enumerate(samples)}
    exp = {s: [] for s in ("index", "state")}
    slots_t, ends = [], {}
    state, idx, slots, cur, pos = init, 0, [0] * per, None, 0
    for t, c in enumerate(stim):
        if t in first:
            cur, pos = first[t], 0
        exp["index"].append(idx)
        exp["state"].append(state)
        slots_t.append(list(slots))
        if c["rst"]:
            state, idx, slots = init, 0, [0] * per
            continue
        if c["load"]:
            state = c["load_value"]
        elif c["draw"]:
            assert idx == pos, "bench stimulus: a sample must start at draw X"
            slots[idx] = fires[cur][pos]
            state = leap(state, N32, W)
            idx, pos = (0 if idx == per - 1 else idx + 1), pos + 1
            if pos == per:
                ends[t + 1] = cur  # the clock after a complete sample's last draw
        if c["restart"]:
            idx = 0
    F = torch.tensor(slots_t, dtype=torch.int64)  # [clocks, 1 + 2k] flip-flops X, A1, B1, ...
    dff = gn.derivative(F[:, 1::2, None], F[:, 2::2, None])[:, 0]  # Eq. 4 of the flip-flops
    complete = [(t, i) for t, i in ends.items() if t < len(stim)]
    for t, i in complete:  # after a complete sample the flip-flops are sample_neurons' outcome
        assert F[t].tolist() == fires[i] and int(dff[t]) == int(d[i, 0]), f"bench model: sample {i}"
    coef = 1 << torch.arange(k)
    exp["x"] = F[:, 0].tolist()
    exp["a"] = (F[:, 1::2] * coef).sum(1).tolist()
    exp["b"] = (F[:, 2::2] * coef).sum(1).tolist()
    exp["d"] = dff.tolist()
    dx = torch.tensor([[c["dx"]] for c in stim], dtype=torch.int64)
    driven = torch.tensor([c["upper_en"] != 0 for c in stim])
    en, neg = ge.encode(ge.ternary_error(dff[:, None], ge.tie_sign(dx, driven, p["tie"])))  # §7
    exp["en"], exp["neg"] = en[:, 0].tolist(), neg[:, 0].tolist()
    return {s: exp[s] for s in OUTPUTS}, len(complete)


@cocotb.test()
async def neuron_periphery_samples(dut):
    """Samples of 1 + 2k draws with random y, random dx / upper en every clock; all outputs every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    spec = NoiseSpec(tuple(p["noise_words"]))
    rng = util.rng(dut, "neuron_periphery_samples")
    n = p["cycles"]
    stim, samples = _stimulus(rng, p, spec, n)
    exp, complete = _model(p, spec, stim, samples, p["init"])

    hs = await util.start(dut, INPUTS)
    drive = [tuple(c[s] for s in INPUTS) for c in stim]
    # en and neg are combinational in this clock's dx and upper_en
    t0 = get_sim_time("ns")
    got, loop_s = await util.apply_vectors(dut, hs, drive, OUTPUTS)
    dut.rst.value = 0
    draws = sum(c["draw"] for c in stim)
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    sampled = len(got[OUTPUTS[0]])
    assert clocks == sampled, f"neuron_periphery_samples: {clocks} clocks simulated but {sampled} sampled"
    util.record("neuron_periphery_samples", cycles=clocks, loop_s=loop_s, cycles_per_s=clocks / loop_s,
                samples=len(samples), complete_samples=complete, draws=draws, k=p["k"], tie=p["tie"])
    got = {s: util.ints(v) for s, v in got.items()}

    def context(i):
        show = lambda c: {k: v for k, v in c.items() if v or k in ("y", "dx")}  # noqa: E731
        return f"inputs before it: {show(stim[i - 1]) if i else 'reset'}; this clock: {show(stim[i])}"

    util.check(util.first_mismatch(exp, got, context=context))
    ge.decode(torch.tensor(got["en"]), torch.tensor(got["neg"]))  # §7: (en, neg) = (0, 1) never appears
    dut._log.info("neuron_periphery_samples: %d cycles compared (index, state, x, a, b, d, en, neg), "
                  "%d samples (%d complete), %.0f cycles/s", n, len(samples), complete, n / loop_s)
