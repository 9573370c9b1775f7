"""cocotb bench: the input-pixel sampler (bshw/input_sampler.py) against bshw/golden/exact
(docs/arithmetic.md §3, §5).

Model: the draws of the sampler's I16 stream are ``bshw.golden.exact.lfsr.LfsrBank(I16, [start], 16)``
(the batched form the golden training uses; an I16 draw's word is the whole leapt state), one bank
per stretch between loads/resets; the sampled input of a draw is
``bshw.golden.exact.noise.sample_inputs(pixel, r)`` (``x = 1`` iff ``r mod 255 < pixel``). A load sets
the state and leaves ``x``; a reset returns to the reset state with ``x = 0``.
Checked every clock: ``r`` (the state) and the registered ``x``.

Stimulus: draws in 70 % of the clocks, loads in 1 % (of ``seed_state`` values of random pixel
streams and random words; sometimes together with a draw, which the load overrides), resets in
0.2 %. A draw's pixel is, in equal parts: at the decision boundary of its own draw
(``r mod 255`` or one more, so one draw fires and the other does not), an extreme (0, 1, 254,
255), or uniform.
"""

from __future__ import annotations

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge
from cocotb.utils import get_sim_time

from bshw.golden.exact.lfsr import I16, LfsrBank, seed_state
from bshw.golden.exact.noise import mod255, sample_inputs
from bshw.sim import util

DEFAULTS = {"init": 0xCDAF}  # seed_state(0, 0, I16), docs/arithmetic.md §13 case 2
KNOBS = {"cycles": 10000}


def make_dut(p: dict):
    from bshw.input_sampler import InputSampler

    return "bshw_input_sampler", InputSampler(p["init"])


@cocotb.test()
async def input_sampler_random_ops(dut):
    """Random draws with random pixels, loads and resets; r and x compared every clock."""
    p = util.params({**DEFAULTS, **KNOBS})
    rng = util.rng(dut, "input_sampler_random_ops")
    n, init = p["cycles"], p["init"]
    # control stimulus, then the stretches of one stream between loads/resets
    rst, load, lval, draw = [], [], [], []
    for _ in range(n):
        u = rng.random()
        rst.append(int(u < 0.002))
        load.append(int(0.002 <= u < 0.012))
        v = seed_state(rng.getrandbits(16), rng.randrange(784), I16) if rng.random() < 0.5 else rng.randint(1, I16.mask)
        lval.append(v if load[-1] else 0)
        draw.append(int(rng.random() < 0.7))
    stretches, which = [[init, 0]], []  # [start state, draws]; per clock (stretch, draw number) or None
    for i in range(n):
        if rst[i] or load[i]:
            which.append(None)
            stretches.append([init if rst[i] else lval[i], 0])
        elif draw[i]:
            which.append((len(stretches) - 1, stretches[-1][1]))
            stretches[-1][1] += 1
        else:
            which.append(None)
    words = [LfsrBank(I16, [s], 16).draw(m)[:, 0].tolist() for s, m in stretches]  # §3: 16-step leaps
    r_new = [words[w[0]][w[1]] if w else 0 for w in which]  # the draw's r
    u = mod255(torch.tensor(r_new)).tolist()
    pixels = []
    for i in range(n):
        kind = rng.randrange(3)
        pixels.append(min(255, u[i] + rng.getrandbits(1)) if kind == 0 else
                      rng.choice([0, 1, 254, 255]) if kind == 1 else rng.randrange(256))
    x_new = sample_inputs(torch.tensor(pixels), torch.tensor(r_new)).tolist()  # §5
    exp_r, exp_x = [], []
    s, x = init, 0
    for i in range(n):
        exp_r.append(s)
        exp_x.append(x)
        if rst[i]:
            s, x = init, 0
        elif load[i]:
            s = lval[i]
        elif draw[i]:
            s, x = r_new[i], x_new[i]

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns", impl="gpi").start())
    hs = (dut.rst, dut.load, dut.load_value, dut.draw, dut.pixel)
    for h in hs:
        h.value = 0
    dut.rst.value = 1
    fe = FallingEdge(dut.clk)
    await fe
    await fe
    dut.rst.value = 0
    got_r, got_x = [], []
    prev = (0,) * len(hs)
    t0 = get_sim_time("ns")
    with util.Timed() as t:
        for i in range(n):
            got_r.append(dut.r.value)  # registers: settled since the rising edge
            got_x.append(dut.x.value)
            cur = (rst[i], load[i], lval[i], draw[i], pixels[i])
            if cur != prev:
                for h, v, q in zip(hs, cur, prev):
                    if v != q:
                        h.value = v
                prev = cur
            await fe
    dut.rst.value = 0
    draws = sum(1 for w in which if w)
    fired = sum(x_new[i] for i in range(n) if which[i])
    clocks = round((get_sim_time("ns") - t0) / 10)  # clocks the loop spanned, counted by the simulator
    assert clocks == len(got_x), f"input_sampler_random_ops: {clocks} clocks simulated but {len(got_x)} sampled"
    util.record("input_sampler_random_ops", cycles=clocks, loop_s=t.s, cycles_per_s=clocks / t.s, draws=draws,
                fired=fired, stretches=len(stretches))
    inputs = lambda i: (rst[i], load[i], lval[i], draw[i], pixels[i])  # noqa: E731
    msg = util.first_mismatch({"r": exp_r, "x": exp_x}, {"r": util.ints(got_r), "x": util.ints(got_x)},
                              context=lambda i: "inputs before it: rst/load/load_value/draw/pixel = "
                                                f"{inputs(i - 1) if i else 'reset'}")
    util.check(msg)
    dut._log.info("input_sampler_random_ops: %d cycles compared (r, x), %d draws (%d fired), %.0f cycles/s",
                  n, draws, fired, n / t.s)
