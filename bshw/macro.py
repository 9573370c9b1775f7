"""The crossbar-macro boundary: the pins by which the digital periphery drives one analog array
(docs/arithmetic.md §15 "Crossbar macro interface").

The memristor array sits outside the synthesized periphery, like an SRAM or an analog hard macro.
The periphery talks to each layer's array through one :class:`CrossbarMacroSignature`:

- **forward read** (§2): the binary row drive ``x`` and a one-clock ``fwd`` strobe; ``read_latency``
  clocks later the column sums ``y`` come back and hold until the next ``fwd``;
- **backward read** (§2, §7): the ternary column drive ``dy`` on the ``(en, neg)`` wire code and a
  ``bwd`` strobe; ``read_latency`` clocks later the row sums ``dx`` come back and hold;
- **update** (§9): ``upd`` with a row address ``upd_row`` and potentiation / depression column masks
  ``pot``, ``dep``; the array steps those devices at that clock edge (one level, clamped);
- **programming** (host access to the levels): ``prog_we`` writes row ``prog_row`` with
  ``prog_wdata``; ``prog_re`` reads it into ``prog_rdata`` ``read_latency`` clocks later.

Widths follow the integers of the contract (§2): ``y`` has ``y_width(fan_in, b)`` signed bits per
column, ``dx`` ``dx_width(fan_out, b)`` per row. Two behavioral models answer these pins: the Verilog
model ``bshw/verilog/bshw_crossbar_model.v`` (the system top, bshw/system.py) and the numpy model
inside the cocotb bench (bshw/sim/macro_model.py).

With a memristor device model (§16) the pins and their widths stay the same: the array's sums have
f more bits inside the macro, and its sense stage puts ``ceil(Y / 2^f)`` on ``y`` and
``sign(D) ceil(|D| / 2^f)`` on ``dx``, which the periphery's comparator, sign and zero tests use
exactly as at full resolution; ``prog_*`` carry levels (the nearest level of a conductance). The
device's parameters go to the models only (``bshw.system.device_parameters``).
"""

from amaranth.hdl import signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from bshw.core import check_int


def weight_bits(wmin: int, wmax: int) -> int:
    """Two's complement width holding ``[wmin, wmax]``."""
    return max((-wmin - 1).bit_length(), wmax.bit_length()) + 1


def y_width(fan_in: int, wbits: int) -> int:
    """Signed width of ``y = sum_i x_i W[i, j]`` (§2): ``b + ceil(log2(fan_in))``."""
    return wbits + ceil_log2(fan_in)


def dx_width(fan_out: int, wbits: int) -> int:
    """Signed width of ``dx = sum_j dy_j W[i, j]`` (§2): ``ceil(log2(fan_out 2^(b-1) + 1)) + 1``."""
    return ceil_log2(fan_out * (1 << (wbits - 1)) + 1) + 1


class CrossbarMacroSignature(wiring.Signature):
    """Pins of one crossbar macro, seen from the periphery (``Out`` = driven by the periphery).

    Parameters
    ----------
    fan_in, fan_out : int
        Rows (inputs) and columns (neurons) of the array, each >= 1.
    wmin, wmax : int
        Conductance-level range, ``wmin < 0 < wmax`` (INT8: -128, 127).
    backward : bool
        The array has the backward read (every layer but the first).
    read_latency : int
        Clocks from a ``fwd`` / ``bwd`` / ``prog_re`` strobe to valid data, >= 1.

    Members
    -------
    fwd : Out(1), x : Out(fan_in)
        Forward read strobe and the binary row drive (sampled at the strobe's clock edge).
    y : In(ArrayLayout(signed(yw), fan_out))
        Column sums, valid ``read_latency`` clocks after ``fwd`` and held until the next ``fwd``.
    bwd : Out(1), dy_en, dy_neg : Out(fan_out)
        Backward read strobe and the ternary column drive (§7 wire code).
    dx : In(ArrayLayout(signed(dxw), fan_in))
        Row sums, valid ``read_latency`` clocks after ``bwd`` and held.
    upd : Out(1), upd_row : Out(range(fan_in)), pot, dep : Out(fan_out)
        Update pulses of one row, applied at this clock edge: ``W[row, j] += pot_j - dep_j``, clamped.
    prog_we, prog_re : Out(1), prog_row : Out(range(fan_in))
    prog_wdata : Out(ArrayLayout(signed(b), fan_out)), prog_rdata : In(ArrayLayout(signed(b), fan_out))
        Host programming and read-back of one row of levels.
    """

    def __init__(self, fan_in: int, fan_out: int, wmin: int = -128, wmax: int = 127, *,
                 backward: bool = True, read_latency: int = 1):
        self.fan_in = check_int("fan_in", fan_in, 1)
        self.fan_out = check_int("fan_out", fan_out, 1)
        self.wmin = check_int("wmin", wmin, -(1 << 31), -1)
        self.wmax = check_int("wmax", wmax, 1, (1 << 31) - 1)
        self.read_latency = check_int("read_latency", read_latency, 1, 16)
        self.backward = bool(backward)
        self.wbits = b = weight_bits(wmin, wmax)
        self.yw, self.dxw = y_width(fan_in, b), dx_width(fan_out, b)
        if self.yw > 64 or self.dxw > 64:
            raise ValueError(f"a {fan_in}x{fan_out} array of {b}-bit levels needs sums wider than 64 bits")
        members = {
            "fwd": Out(1), "x": Out(fan_in), "y": In(data.ArrayLayout(signed(self.yw), fan_out)),
            "upd": Out(1), "upd_row": Out(range(max(fan_in, 2))), "pot": Out(fan_out), "dep": Out(fan_out),
            "prog_we": Out(1), "prog_re": Out(1), "prog_row": Out(range(max(fan_in, 2))),
            "prog_wdata": Out(data.ArrayLayout(signed(b), fan_out)),
            "prog_rdata": In(data.ArrayLayout(signed(b), fan_out)),
        }
        if self.backward:
            members.update(bwd=Out(1), dy_en=Out(fan_out), dy_neg=Out(fan_out),
                           dx=In(data.ArrayLayout(signed(self.dxw), fan_in)))
        super().__init__(members)

    def __eq__(self, other):
        return (type(other) is type(self) and self.params() == other.params())

    def __hash__(self):
        return hash(self.params())

    def params(self) -> tuple:
        return (self.fan_in, self.fan_out, self.wmin, self.wmax, self.backward, self.read_latency)

    def verilog_parameters(self) -> dict:
        """The Verilog model's parameters for this array (bshw/verilog/bshw_crossbar_model.v)."""
        return {"FAN_IN": self.fan_in, "FAN_OUT": self.fan_out, "WB": self.wbits, "YW": self.yw,
                "DXW": self.dxw, "WMIN": self.wmin, "WMAX": self.wmax, "LATENCY": self.read_latency,
                "BACKWARD": int(self.backward)}

    def __repr__(self):
        return (f"CrossbarMacroSignature({self.fan_in}, {self.fan_out}, {self.wmin}, {self.wmax}, "
                f"backward={self.backward}, read_latency={self.read_latency})")
