"""The system top: the periphery and one behavioral crossbar macro per layer, so that the whole
learner simulates without Python (docs/arithmetic.md §15 "System top").

:class:`BshwSystem` instantiates the periphery module (bshw/periphery.py, emitted beside it) and the
Verilog macro model ``bshw_crossbar_model`` (bshw/verilog/, a loop over a level memory, one module
for every size) on each layer's macro pins. Its ports are the periphery's host ports and probes.
With a device model in the periphery's parameters (``params.device``, docs/arithmetic.md §16) each
model gets its device parameters; with the ideal device (no such key) the emitted system is as before.
"""

from importlib import resources

from amaranth.hdl import ClockSignal, Const, Instance, Module, ResetSignal, Value
from amaranth.lib import wiring

MODEL = "bshw_crossbar_model"


def model_verilog() -> str:
    """The text of the behavioral macro model (package data)."""
    return resources.files("bshw").joinpath("verilog", f"{MODEL}.v").read_text()


def device_parameters(device, layer: int) -> dict:
    """``p_*`` parameters of the macro model for the §16 device of weight layer ``layer`` (1-based);
    ``{}`` for the ideal device (``device`` None). Constants wider than 32 bits go as 64-bit Consts."""
    if device is None:
        return {}
    from bshw.golden.exact.device import ArrayDevice

    out = {}
    for k, v in ArrayDevice(device).verilog_parameters(layer).items():
        out[f"p_{k}"] = Const(v, 64) if k in ("KP", "CP", "KD", "CD", "SEED") else (
            Const(v, 33) if k == "STUCK_TH" else v)
    return out


def flat_value(value):
    """A port's value as a plain Value (a ``lib.data`` view flattened) for an ``Instance`` connection."""
    return value.as_value() if hasattr(value, "as_value") else Value.cast(value)


class BshwSystem(wiring.Component):
    """Periphery + behavioral crossbar macros (simulation only; not synthesizable).

    Parameters
    ----------
    periphery : bshw.periphery.BshwPeriphery
        The periphery whose module (named ``periphery_name``) the system instantiates.
    periphery_name : str
        Its Verilog module name.
    init_files : list of str or None
        Per layer, a ``$readmemh`` file of the macro's initial levels (``W[i][j]`` at ``i * fan_out + j``),
        or None for zero levels (the benches program them through the host port).
    """

    def __init__(self, periphery, periphery_name: str, init_files=None):
        self.periphery, self.periphery_name = periphery, periphery_name
        self.init_files = init_files or [None] * periphery.L
        members = {name: member for name, member in periphery.signature.members.items()
                   if not name.startswith("xb")}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        per = self.periphery
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in self.signature.flatten(self):  # the host sub-interface as host__<name>
            ports[("i_" if member.flow == wiring.In else "o_") + "__".join(map(str, path))] = flat_value(value)
        for li, mac in enumerate(per.macros):
            pins = mac.create(path=(f"xb{li + 1}",))
            model = {"i_clk": ClockSignal()}
            for path, member, value in mac.flatten(pins):
                pname = "__".join(map(str, path))
                # the periphery drives what is Out in the macro signature; the model drives the rest
                ports[("o_" if member.flow == wiring.Out else "i_") + f"xb{li + 1}__{pname}"] = flat_value(value)
                model[("i_" if member.flow == wiring.Out else "o_") + pname] = flat_value(value)
            if not mac.backward:  # the first layer's array has no backward read
                model.update(i_bwd=Const(0, 1), i_dy_en=Const(0, mac.fan_out), i_dy_neg=Const(0, mac.fan_out))
            params = {f"p_{k}": v for k, v in mac.verilog_parameters().items()}
            params["p_RW"] = len(pins.upd_row)
            device = per.params.device  # HwParams (bshw/hwparams.py): None for the ideal device
            params.update(device_parameters(None if device is None else dict(device), li + 1))
            if self.init_files[li]:
                params["p_INIT_FILE"] = str(self.init_files[li])
            m.submodules[f"macro{li + 1}"] = Instance(MODEL, **params, **model)
        m.submodules.periphery = Instance(self.periphery_name, **ports)
        return m
