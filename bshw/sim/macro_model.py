"""numpy model of one crossbar macro, answering the periphery's macro pins from inside a cocotb bench
(docs/arithmetic.md §2, §9, §15 "Crossbar macro interface"; bshw/macro.py).

The same contract as the Verilog model ``bshw/verilog/bshw_crossbar_model.v``: reads sample their
inputs at the strobe's clock edge, see the levels from before that edge's update, and answer
``read_latency`` clocks later (held until the next answer); an update steps ``W[row, j]`` by
``pot_j - dep_j`` clamped to ``[wmin, wmax]``. The model sleeps until a strobe rises and then works
clock by clock only while a strobe is high or an answer is pending, so a sample costs a handful of
Python wake-ups, whatever the array's size.
"""

from __future__ import annotations

import numpy as np
from cocotb.triggers import First, ReadOnly, RisingEdge


def _u(handle) -> int:
    """Unsigned value of a pin; an undriven (X/Z) strobe before reset reads as 0."""
    v = handle.value
    if not v.is_resolvable:
        return 0
    return v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)


def bits(word: int, n: int) -> np.ndarray:
    """The low ``n`` bits of ``word`` as a 0/1 int64 vector, bit 0 first."""
    raw = np.frombuffer(word.to_bytes((n + 7) // 8 or 1, "little"), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[:n].astype(np.int64)


def pack(values, width: int) -> int:
    """Signed integers into ``width``-bit fields, element 0 lowest."""
    mask, word = (1 << width) - 1, 0
    for i, v in enumerate(values.tolist()):
        word |= (v & mask) << (i * width)
    return word


def unpack(word: int, n: int, width: int) -> np.ndarray:
    """``width``-bit two's complement fields of ``word`` as an int64 vector."""
    mask = (1 << width) - 1
    vals = np.array([(word >> (i * width)) & mask for i in range(n)], dtype=np.int64)
    return np.where(vals >> (width - 1) != 0, vals - (1 << width), vals)


class NumpyMacro:
    """One layer's array: ``W[fan_in, fan_out]`` int64 levels and the pins ``<prefix>fwd`` etc.

    Parameters
    ----------
    dut : cocotb handle of the periphery top.
    prefix : str
        Pin name prefix, e.g. ``"xb1__"``.
    layer : dict
        ``fan_in``, ``fan_out``, ``wbits``, ``yw`` and ``dxw`` (None: no backward read) of the layer.
    wmin, wmax, read_latency : int
    """

    def __init__(self, dut, prefix: str, layer: dict, wmin: int, wmax: int, read_latency: int):
        self.dut, self.clk = dut, dut.clk
        self.fan_in, self.fan_out = layer["fan_in"], layer["fan_out"]
        self.wb, self.yw, self.dxw = layer["wbits"], layer["yw"], layer.get("macro_dxw")
        self.wmin, self.wmax, self.lat = wmin, wmax, read_latency
        self.W = np.zeros((self.fan_in, self.fan_out), dtype=np.int64)
        self.pulses = []  # (row, pot word, dep word) of every update, in order
        self.reads = {"fwd": 0, "bwd": 0}
        pin = lambda name: getattr(dut, prefix + name)  # noqa: E731
        self.pin = pin
        names = ["fwd", "upd", "prog_we", "prog_re"] + (["bwd"] if self.dxw else [])
        self.strobes = {n: pin(n) for n in names}
        pin("y").value = 0
        pin("prog_rdata").value = 0
        if self.dxw:
            pin("dx").value = 0

    async def run(self):
        pending = []  # [clocks left, pin, value]
        while True:
            await ReadOnly()
            on = {n for n, h in self.strobes.items() if _u(h)}
            if not on and not pending:
                await First(*(RisingEdge(h) for h in self.strobes.values()))
                continue
            answers, updates = [], []
            if "fwd" in on:  # §2: y_j = sum_i x_i W[i, j]
                x = bits(_u(self.pin("x")), self.fan_in)
                answers.append(("y", pack(x @ self.W, self.yw)))
                self.reads["fwd"] += 1
            if "bwd" in on:  # §2, §7: dx_i = sum_j dy_j W[i, j], dy on the (en, neg) code
                en, neg = bits(_u(self.pin("dy_en")), self.fan_out), bits(_u(self.pin("dy_neg")), self.fan_out)
                answers.append(("dx", pack(self.W @ (en * (1 - 2 * neg)), self.dxw)))
                self.reads["bwd"] += 1
            if "prog_re" in on:
                answers.append(("prog_rdata", pack(self.W[_u(self.pin("prog_row"))], self.wb)))
            if "upd" in on:
                row, pot, dep = _u(self.pin("upd_row")), _u(self.pin("pot")), _u(self.pin("dep"))
                self.pulses.append((row, pot, dep))
                updates.append((row, bits(pot, self.fan_out) - bits(dep, self.fan_out)))
            if "prog_we" in on:
                updates.append((_u(self.pin("prog_row")), unpack(_u(self.pin("prog_wdata")), self.fan_out, self.wb),
                                "write"))
            await RisingEdge(self.clk)  # the strobe's clock edge: the array acts
            for u in updates:
                if len(u) == 3:
                    self.W[u[0]] = u[1]
                else:  # §9: one level per pulse, clamped to the device range
                    self.W[u[0]] = np.clip(self.W[u[0]] + u[1], self.wmin, self.wmax)
            for p in pending:
                p[0] -= 1
            pending += [[self.lat - 1, name, value] for name, value in answers]
            for p in [p for p in pending if p[0] <= 0]:
                self.pin(p[1]).value = p[2]
            pending = [p for p in pending if p[0] > 0]
