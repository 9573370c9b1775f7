"""cocotb bench: the two behavioral crossbar macros agree - the Verilog model
(bshw/verilog/bshw_crossbar_model.v) and the numpy model of the benches (bshw/sim/macro_model.py) - on
random stimulus of every pin (docs/arithmetic.md §2, §9, §15 "Crossbar macro interface").

The DUT wraps the Verilog model: the stimulus pins are top inputs that both models read; the Verilog
model answers on ``hdl_y``, ``hdl_dx``, ``hdl_prog_rdata``, the numpy model on the top inputs ``y``,
``dx``, ``prog_rdata`` that the bench drives for it. Every clock the three answers are compared, and
after the run the whole level matrix (read back row by row through ``prog_re``).

Stimulus per clock: forward reads with random input density, backward reads with random ternary
drive, update pulses biased in one direction on a few hot rows (levels reach and sit at their
limits), programming of random rows (often limit values), read-backs, and clocks that combine a
read with an update or a write (the reads must see the levels from before that edge).

``device`` (a §16 preset name or ``{"preset": ..., overrides}``; None: the ideal integer levels)
runs both models with that memristor device (conductances, Eq. 7 / 8 steps, Eq. 9 write noise,
stuck devices), seeded with ``seed`` as weight layer ``layer``; the read-back compares the levels
and every forward / backward read the conductances through the ceil / sign-keeping sums.
"""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from bshw.sim import util

DEFAULTS = {"fan_in": 32, "fan_out": 10, "wmin": -128, "wmax": 127, "backward": True, "read_latency": 1,
            "device": None, "seed": 0, "layer": 1}
KNOBS = {"cycles": 3000}
STIMULUS = ("fwd", "x", "bwd", "dy_en", "dy_neg", "upd", "upd_row", "pot", "dep", "prog_we", "prog_re",
            "prog_row", "prog_wdata")


def resolved_device(p: dict):
    """The §16 device dict of the DUT parameters (None: ideal levels)."""
    if p.get("device") is None:
        return None
    from bshw.golden.exact.device import DeviceModel

    return DeviceModel.from_spec(p["device"]).resolve(p["wmin"], p["wmax"], p["seed"])


def make_dut(p: dict):
    from amaranth.hdl import ClockSignal, Instance, Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from bshw.macro import CrossbarMacroSignature
    from bshw.system import MODEL, device_parameters

    mac = CrossbarMacroSignature(p["fan_in"], p["fan_out"], p["wmin"], p["wmax"], backward=p["backward"],
                                 read_latency=p["read_latency"])
    members = mac.members

    class MacroPair(wiring.Component):
        def __init__(self):
            sig = {}
            for name, member in members.items():
                # every pin is a top input: stimulus, or the numpy model's answer the bench drives;
                # the Verilog model's answers come out as hdl_<pin>
                sig[name] = In(member.shape)
                if member.flow == In:
                    sig[f"hdl_{name}"] = Out(member.shape)
            super().__init__(sig)

        def elaborate(self, platform):
            m = Module()
            ports = {"i_clk": ClockSignal()}
            for name, member in members.items():
                v = getattr(self, name if member.flow == Out else f"hdl_{name}")
                v = v.as_value() if hasattr(v, "as_value") else v
                ports[("i_" if member.flow == Out else "o_") + name] = v
            if not mac.backward:
                ports.update(i_bwd=0, i_dy_en=0, i_dy_neg=0)
            params = {f"p_{k}": v for k, v in mac.verilog_parameters().items()}
            params["p_RW"] = len(self.upd_row)
            params.update(device_parameters(resolved_device(p), p["layer"]))
            m.submodules.model = Instance(MODEL, **params, **ports)
            return m

    name = f"bshw_macro_pair_{p['fan_in']}x{p['fan_out']}_l{p['read_latency']}" + ("" if p["backward"] else "_fwd")
    dev = resolved_device(p)
    if dev is not None:  # one module per device, seed and layer (the parameters differ)
        import hashlib
        import json

        name += "_dev" + hashlib.sha256(json.dumps([dev, p["layer"]], sort_keys=True).encode()).hexdigest()[:10]
    return name, MacroPair()


def extra_sources(p: dict) -> list:
    """The Verilog model beside the emitted wrapper."""
    from importlib import resources

    return [resources.files("bshw").joinpath("verilog", "bshw_crossbar_model.v")]


def _u(h) -> int:
    v = h.value
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


@cocotb.test()
async def macro_models_agree(dut):
    """Random stimulus on every pin; the Verilog and numpy answers equal every clock."""
    from bshw.macro import dx_width, weight_bits, y_width
    from bshw.sim.macro_model import NumpyMacro, unpack

    p = util.params(DEFAULTS)
    rng = util.rng(dut, "macro_models_agree")
    fi, fo, lo, hi = p["fan_in"], p["fan_out"], p["wmin"], p["wmax"]
    wb = weight_bits(lo, hi)
    layer = {"fan_in": fi, "fan_out": fo, "wbits": wb, "yw": y_width(fi, wb),
             "macro_dxw": dx_width(fo, wb) if p["backward"] else None}
    for name in STIMULUS:
        if hasattr(dut, name):
            getattr(dut, name).value = 0
    model = NumpyMacro(dut, "", layer, lo, hi, p["read_latency"], device=resolved_device(p), number=p["layer"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    cocotb.start_soon(model.run())
    answers = [("y", layer["yw"], fo), ("prog_rdata", wb, fo)] + ([("dx", layer["macro_dxw"], fi)] if p["backward"] else [])
    limits = [lo, hi, lo + 1, hi - 1]

    def level():
        return rng.choice(limits) if rng.random() < 0.3 else rng.randint(lo, hi)

    def pack(vals, w):
        return sum((v & ((1 << w) - 1)) << (i * w) for i, v in enumerate(vals))

    hot, bias, checked = rng.sample(range(fi), min(3, fi)), 1, 0
    stim = []
    for i in range(fi):  # program every row first
        stim.append({"prog_we": 1, "prog_row": i, "prog_wdata": pack([level() for _ in range(fo)], wb)})
    for c in range(p["cycles"]):
        s, r = {}, rng.random()
        if c % 200 == 0:
            bias = -bias
        if r < 0.25:
            s.update(fwd=1, x=rng.getrandbits(fi) & (rng.getrandbits(fi) if rng.random() < 0.5 else -1))
        elif r < 0.45 and p["backward"]:
            en = rng.getrandbits(fo)
            s.update(bwd=1, dy_en=en, dy_neg=en & rng.getrandbits(fo))
        elif r < 0.55:
            s.update(prog_re=1, prog_row=rng.randrange(fi))
        elif r < 0.6:
            s.update(prog_we=1, prog_row=rng.randrange(fi), prog_wdata=pack([level() for _ in range(fo)], wb))
        if rng.random() < 0.4 and not s.get("prog_we"):  # update pulses, alone or with a read
            mask = rng.getrandbits(fo)
            up = sum(1 << j for j in range(fo) if rng.random() < (0.85 if bias > 0 else 0.15))
            s.update(upd=1, upd_row=rng.choice(hot) if rng.random() < 0.7 else rng.randrange(fi),
                     pot=mask & up, dep=mask & ~up & ((1 << fo) - 1))
        stim.append(s)
    for i in range(fi):  # read every row back at the end
        stim.append({"prog_re": 1, "prog_row": i})
    stim += [{}] * (p["read_latency"] + 1)
    for n, s in enumerate(stim):
        # drive right after the edge, as the periphery's registered strobes change; the answers to
        # the clock before are visible by ReadOnly of this edge
        await RisingEdge(dut.clk)
        for name in STIMULUS:
            if hasattr(dut, name):
                getattr(dut, name).value = s.get(name, 0)
        await ReadOnly()
        for name, w, count in answers:
            got, want = _u(getattr(dut, f"hdl_{name}")), _u(getattr(dut, name))
            if got != want:
                gv, wv = unpack(got, count, w), unpack(want, count, w)
                i = next(i for i in range(count) if gv[i] != wv[i])
                raise AssertionError(f"clock {n}: {name}[{i}] Verilog model {gv[i]}, numpy model {wv[i]}")
        checked += 1
    # the random clocks compared: all clocks less the programming, the read-back and the drain
    util.record("macro_models_agree", cycles=checked - 2 * fi - (p["read_latency"] + 1), clocks=checked,
                reads=dict(model.reads))
