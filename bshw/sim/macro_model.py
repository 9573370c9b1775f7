"""numpy model of one crossbar macro, answering the periphery's macro pins from inside a cocotb bench
(docs/arithmetic.md §2, §9, §15 "Crossbar macro interface"; bshw/macro.py).

The same contract as the Verilog model ``bshw/verilog/bshw_crossbar_model.v``: reads sample their
inputs at the strobe's clock edge, see the levels from before that edge's update, and answer
``read_latency`` clocks later (held until the next answer); an update steps ``W[row, j]`` by
``pot_j - dep_j`` clamped to ``[wmin, wmax]``. The model sleeps until a strobe rises and then works
clock by clock only while a strobe is high or an answer is pending, so a sample costs a handful of
Python wake-ups, whatever the array's size.

With a device model (docs/arithmetic.md §16, ``device`` = the trace header's ``params.device``) the
array holds conductances ``G`` and answers as the Verilog model with ``DEVICE = 1``: ceil-rounded
column sums, sign-keeping row sums, Eq. 7 / 8 steps (scaled by each device's own factors with
device-to-device variation, ``d2d_fix``) with the Eq. 9 draw of each column's N32 stream, stuck
devices, read-back of the nearest level. It is written from the spec text, apart from the
golden model's code.
"""

from __future__ import annotations

import numpy as np
from cocotb.triggers import First, ReadOnly, RisingEdge

from bshw.core import MASK64, splitmix64


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
    device : dict or None
        The resolved §16 device (``params["device"]``); None: ``layer.get("device")``, else the ideal
        integer levels.
    number : int or None
        The weight layer's number l (1-based) that seeds its noise streams and stuck devices (§16);
        None: ``layer.get("number", 1)``.
    """

    def __init__(self, dut, prefix: str, layer: dict, wmin: int, wmax: int, read_latency: int,
                 device: dict | None = None, number: int | None = None):
        self.dut, self.clk = dut, dut.clk
        self.fan_in, self.fan_out = layer["fan_in"], layer["fan_out"]
        self.wb, self.yw, self.dxw = layer["wbits"], layer["yw"], layer.get("macro_dxw")
        self.wmin, self.wmax, self.lat = wmin, wmax, read_latency
        self.W = np.zeros((self.fan_in, self.fan_out), dtype=np.int64)
        self.device = device if device is not None else layer.get("device")
        self.number = number if number is not None else layer.get("number", 1)
        if self.device is not None:
            self._init_device()
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

    # -- §16 device model --------------------------------------------------------------------------
    def _init_device(self):
        d, seed, l = self.device, self.device["seed"], self.number
        self.f, self.gref, self.grange = d["frac_bits"], d["g_ref"], d["g_range"]
        self.G = np.full((self.fan_in, self.fan_out), self.gref, dtype=np.int64)
        self.noise_state = [(splitmix64(((seed << 32) + (1 << 31) + (l << 20) + j) & MASK64) & 0xFFFFFFFF) or 1
                            for j in range(self.fan_out)]
        self.stuck = np.array([[(splitmix64(((seed << 32) + (1 << 30) + (l << 24) + i * self.fan_out + j) & MASK64)
                                 >> 32) < d["stuck_th"] for j in range(self.fan_out)] for i in range(self.fan_in)],
                              dtype=bool) if d["stuck_th"] else np.zeros((self.fan_in, self.fan_out), dtype=bool)
        # §16 d2d: per device z = splitmix64((seed << 32) + 2^29 + l 2^24 + i fan_out + j), factors
        # 2^16 + d2d_fix (2 (b0 + b1 + b2) - 765) (potentiation) and the same of b3..b5 (depression)
        self.m_pot = self.m_dep = None
        if d.get("d2d_fix", 0):
            z = [[splitmix64(((seed << 32) + (1 << 29) + (l << 24) + i * self.fan_out + j) & MASK64)
                  for j in range(self.fan_out)] for i in range(self.fan_in)]
            def factor(z: int, k: int) -> int:  # 2^16 + d2d_fix (2 (b_k + b_k+1 + b_k+2) - 765)
                return (1 << 16) + d["d2d_fix"] * (2 * sum((z >> (8 * b)) & 0xFF for b in range(k, k + 3)) - 765)

            self.m_pot = np.array([[factor(v, 0) for v in r] for r in z], dtype=np.int64)
            self.m_dep = np.array([[factor(v, 3) for v in r] for r in z], dtype=np.int64)

    def _levels(self, row: int) -> np.ndarray:
        """The row's read-back: ``(G - g_ref + 2^(f-1)) >> f`` (nearest level, half up)."""
        if self.device is None:
            return self.W[row]
        return (self.G[row] - self.gref + ((1 << self.f) >> 1)) >> self.f

    def _forward(self, x: np.ndarray) -> np.ndarray:
        if self.device is None:
            return x @ self.W
        Y = x @ (self.G - self.gref)
        return -((-Y) >> self.f)  # ceil(Y / 2^f)

    def _backward(self, dy: np.ndarray) -> np.ndarray:
        if self.device is None:
            return self.W @ dy
        D = (self.G - self.gref) @ dy
        return np.sign(D) * ((np.abs(D) + (1 << self.f) - 1) >> self.f)  # sign(D) ceil(|D| / 2^f)

    def _pulse(self, row: int, delta: np.ndarray):
        """One update of ``row``: +1 potentiation / -1 depression per column (§16)."""
        d, q = self.device, self.device["step_frac"]
        for j in np.flatnonzero(delta).tolist():
            g = int(self.G[row, j])
            if delta[j] > 0:  # Eq. 7
                mean = (d["cp"] - d["kp"] * g + (1 << (q - 1))) >> q
            else:  # Eq. 8
                mean = (d["cd"] + d["kd"] * g + (1 << (q - 1))) >> q
            if self.m_pot is not None:  # §16 d2d: this device's step, half up
                mean = (mean * int((self.m_pot if delta[j] > 0 else self.m_dep)[row, j]) + (1 << 15)) >> 16
            s = self.noise_state[j]
            for _ in range(24):  # the column's N32 stream, a 24-step leap (§3)
                s = ((s << 1) | (bin(s & 0x80200003).count("1") & 1)) & 0xFFFFFFFF
            self.noise_state[j] = s
            v = 2 * ((s & 0xFF) + ((s >> 8) & 0xFF) + ((s >> 16) & 0xFF)) - 765  # Eq. 9 draw
            e = d["gamma_fix"] * mean * v
            n = (abs(e) + (1 << 15)) >> 16
            new = g + (mean if delta[j] > 0 else -mean) + (n if e >= 0 else -n)
            if not self.stuck[row, j]:
                self.G[row, j] = min(max(new, 0), self.grange)

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
                answers.append(("y", pack(self._forward(x), self.yw)))
                self.reads["fwd"] += 1
            if "bwd" in on:  # §2, §7: dx_i = sum_j dy_j W[i, j], dy on the (en, neg) code
                en, neg = bits(_u(self.pin("dy_en")), self.fan_out), bits(_u(self.pin("dy_neg")), self.fan_out)
                answers.append(("dx", pack(self._backward(en * (1 - 2 * neg)), self.dxw)))
                self.reads["bwd"] += 1
            if "prog_re" in on:
                answers.append(("prog_rdata", pack(self._levels(_u(self.pin("prog_row"))), self.wb)))
            if "upd" in on:
                row, pot, dep = _u(self.pin("upd_row")), _u(self.pin("pot")), _u(self.pin("dep"))
                self.pulses.append((row, pot, dep))
                updates.append((row, bits(pot, self.fan_out) - bits(dep, self.fan_out)))
            if "prog_we" in on:
                updates.append((_u(self.pin("prog_row")), unpack(_u(self.pin("prog_wdata")), self.fan_out, self.wb),
                                "write"))
            await RisingEdge(self.clk)  # the strobe's clock edge: the array acts
            for u in updates:
                if len(u) == 3 and self.device is not None:  # §16: the level's grid conductance
                    self.G[u[0]] = self.gref + (u[1] << self.f)
                elif len(u) == 3:
                    self.W[u[0]] = u[1]
                elif self.device is not None:
                    self._pulse(u[0], u[1])
                else:  # §9: one level per pulse, clamped to the device range
                    self.W[u[0]] = np.clip(self.W[u[0]] + u[1], self.wmin, self.wmax)
            for p in pending:
                p[0] -= 1
            pending += [[self.lat - 1, name, value] for name, value in answers]
            for p in [p for p in pending if p[0] <= 0]:
                self.pin(p[1]).value = p[2]
            pending = [p for p in pending if p[0] > 0]
