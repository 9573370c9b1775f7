"""The periphery top's probes as the golden trace's numbers (docs/arithmetic.md §11; bshw/periphery.py).

Torch-free: used inside the simulator by bshw/sim/bench_network.py and by the Amaranth-sim tests. A
probe port is a flat bit vector; :func:`expected_probes` packs a trace sample's lists into the
integers the ports must show, :func:`unpack` turns a port value back into the trace's list, and
:func:`mismatch` names the first differing element.
"""

from __future__ import annotations


def pack(values, bits: int = 1) -> int:
    """Fields of ``bits`` bits, element 0 lowest (two's complement for negatives)."""
    word, mask = 0, (1 << bits) - 1
    for i, v in enumerate(values):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word: int, n: int, bits: int = 1, signed: bool = False) -> list:
    out, mask = [], (1 << bits) - 1
    for i in range(n):
        v = (word >> (i * bits)) & mask
        if signed and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return out


def ternary(values):
    """``[-1|0|+1]`` -> ``(en, neg)`` words on the §7 wire code."""
    return pack([v != 0 for v in values]), pack([v < 0 for v in values])


def acc_rows(rec: dict) -> list:
    """Rows each layer's accumulate walks for a trace sample (§15): ``popcount(x^{l-1})``, or 0 when
    the layer's error is all zero."""
    xs = [rec["x0"]] + [lay["x"] for lay in rec["layers"][:-1]]
    return [sum(x) if any(lay["dy"]) else 0 for x, lay in zip(xs, rec["layers"])]


def op_clocks(desc: dict, op: str, rec: dict | None = None) -> int:
    """The §15 clocks of operation ``op`` of the design ``desc`` (``bshw.core.op_cycles``); ``rec``, for
    ``train``: the trace's sample record (the rows each layer's accumulate walks)."""
    from bshw.core import op_cycles

    return op_cycles(op, desc["sizes"], desc["params"]["deriv_k"], desc["read_latency"],
                     acc_rows(rec) if rec is not None else None, desc["input_lanes"])


def probe_layout(desc: dict) -> dict:
    """``{port: (n, bits, signed)}`` of every probe, in comparison order (the §8 order of a sample)."""
    lay = {"x0": (desc["sizes"][0], 1, False)}
    k = desc["params"]["deriv_k"]
    for li, layer in enumerate(desc["layers"]):
        l, n = li + 1, layer["fan_out"]
        lay[f"y{l}"] = (n, layer["yw"], True)
        lay[f"x{l}"] = (n, 1, False)
        if layer["hidden"]:
            lay[f"a{l}"] = (k * n, 1, False)
            lay[f"b{l}"] = (k * n, 1, False)
            lay[f"d{l}"] = (n, 1, False)
    for li in reversed(range(len(desc["layers"]))):
        l, layer = li + 1, desc["layers"][li]
        n = layer["fan_out"]
        if layer["hidden"]:
            lay[f"dx{l}"] = (n, layer["dxw"], True)
            lay[f"dz_en{l}"] = (n, 1, False)
            lay[f"dz_neg{l}"] = (n, 1, False)
        lay[f"dy_en{l}"] = (n, 1, False)
        lay[f"dy_neg{l}"] = (n, 1, False)
    return lay


def expected_probes(desc: dict, sample: dict) -> dict:
    """``{port: int}`` the probes must hold after a training sample (a trace ``samples`` entry)."""
    exp = {"x0": pack(sample["x0"])}
    for li, (layer, rec) in enumerate(zip(desc["layers"], sample["layers"])):
        l = li + 1
        exp[f"y{l}"] = pack(rec["y"], layer["yw"])
        exp[f"x{l}"] = pack(rec["x"])
        if layer["hidden"]:
            exp[f"a{l}"] = pack([v for pair in rec["A"] for v in pair])  # A_m of neuron j at (m-1)*n + j
            exp[f"b{l}"] = pack([v for pair in rec["B"] for v in pair])
            exp[f"d{l}"] = pack(rec["d"])
            exp[f"dx{l}"] = pack(rec["dx"], layer["dxw"])
            exp[f"dz_en{l}"], exp[f"dz_neg{l}"] = ternary(rec["dz"])
        exp[f"dy_en{l}"], exp[f"dy_neg{l}"] = ternary(rec["dy"])
    return exp


def mismatch(layout: dict, expected: dict, got: dict, where: str) -> str | None:
    """The first differing probe element, as ``<where>: signal <port>[<index>] expected E, got G``."""
    for port, (n, bits, signed) in layout.items():
        if port not in expected:
            continue
        e, g = expected[port], got[port]
        if e != g:
            ev, gv = unpack(e, n, bits, signed), unpack(g, n, bits, signed)
            i = next(i for i in range(n) if ev[i] != gv[i])
            return f"{where}: signal {port}[{i}] expected {ev[i]}, got {gv[i]}"
    return None


def row_mismatch(what: str, layer: int, rows_exp, rows_got, where: str) -> str | None:
    """First differing entry of two ``[fan_in][fan_out]`` matrices, as ``<where>: signal
    <what><layer>[i][j] expected E, got G`` (e.g. ``signal counter1[3][4]``)."""
    for i, (re_, rg) in enumerate(zip(rows_exp, rows_got)):
        for j, (e, g) in enumerate(zip(re_, rg)):
            if e != g:
                return f"{where}: signal {what}{layer}[{i}][{j}] expected {e}, got {g}"
    return None


# -- the bench's model of the observable state between operations (§3, §8, §9, §15) -----------------
# The trace (§11) records the state at batch ends only; between operations the bench follows it with
# the rules below and, at every batch end, checks its own following against the trace's record, so
# a slip in this model is reported as a bench error, never as a pass.

def lfsr_leap(state: int, spec, steps: int) -> int:
    """``steps`` single steps of the §3 LFSR ``spec`` (bshw.core.LfsrSpec)."""
    mask, taps = spec.mask, spec.tapmask
    for _ in range(steps):
        state = ((state << 1) | (bin(state & taps).count("1") & 1)) & mask
    return state


def seed_states(sizes, seed: int) -> list:
    """The reset states of every LFSR in host-port order (``lfsr_in``, then ``lfsr`` layer by layer):
    :func:`bshw.core.initial_lfsr_states`, what `bshw rtl` gives the RTL for config seed ``seed``."""
    from bshw.core import initial_lfsr_states

    init = initial_lfsr_states(sizes, seed)
    return init["lfsr_in"] + [s for layer in init["lfsr"] for s in layer]


def stream_name(sizes, s: int) -> str:
    """Host-port stream ``s`` as a signal name: ``lfsr_in[i]`` or ``lfsr<l>[j]``."""
    if s < sizes[0]:
        return f"lfsr_in[{s}]"
    s -= sizes[0]
    for l, n in enumerate(sizes[1:], start=1):
        if s < n:
            return f"lfsr{l}[{s}]"
        s -= n
    return f"lfsr?[{s}]"


class StateModel:
    """Weights, counters and LFSR states the DUT must hold after each operation.

    ``train(rec, label)`` applies one trace sample: every I16 stream draws once (its new state is the
    sample's ``r``), every hidden N32 stream draws ``1 + 2k`` times and every output stream once
    (leaps of W steps), and ``c = clamp(c + x_i dy_j)`` (§9). ``infer()``: one I16 draw and one X draw
    per hidden layer (§8: the output layer draws nothing). ``binary()``: nothing changes. ``carry(up)``
    takes the trace's batch end. ``limits`` counts how often each limit was reached."""

    def __init__(self, desc: dict, weights, counters, lfsrs):
        from bshw.core import N32
        from bshw.hwparams import HwParams

        P = HwParams.from_dict(desc["params"])
        self.sizes, self.k, self.bits = desc["sizes"], P.deriv_k, P.noise_bits
        self.cmin, self.cmax = -(1 << (P.counter_bits - 1)), (1 << (P.counter_bits - 1)) - 1
        self.wmin, self.wmax, self.N32 = P.wmin, P.wmax, N32
        self.W = [[list(r) for r in w] for w in weights]
        self.C = [[list(r) for r in c] for c in counters]
        self.lfsr = list(lfsrs)
        self.limits = {"counter_saturated_max": 0, "counter_saturated_min": 0, "weight_clamped_max": 0,
                       "weight_clamped_min": 0, "weights_at_max": 0, "weights_at_min": 0}

    def _draw(self, layer: int, draws: int):
        """``draws`` N32 draws of every neuron of weight layer ``layer`` (1-based)."""
        off = sum(self.sizes[:layer])
        for s in range(off, off + self.sizes[layer]):
            self.lfsr[s] = lfsr_leap(self.lfsr[s], self.N32, draws * self.bits)

    def train(self, rec: dict):
        self.lfsr[:self.sizes[0]] = list(rec["r"])
        L = len(self.sizes) - 1
        for l in range(1, L + 1):
            self._draw(l, 1 + 2 * self.k if l < L else 1)
        xs = [rec["x0"]] + [lay["x"] for lay in rec["layers"][:-1]]
        for C, x, lay in zip(self.C, xs, rec["layers"]):
            dy = lay["dy"]
            for i, xi in enumerate(x):
                if not xi:
                    continue
                row = C[i]
                for j, g in enumerate(dy):
                    if g > 0 and row[j] == self.cmax:
                        self.limits["counter_saturated_max"] += 1
                    elif g < 0 and row[j] == self.cmin:
                        self.limits["counter_saturated_min"] += 1
                    row[j] = min(self.cmax, max(self.cmin, row[j] + g))

    def infer(self):
        from bshw.core import I16

        for s in range(self.sizes[0]):
            self.lfsr[s] = lfsr_leap(self.lfsr[s], I16, I16.width)
        for l in range(1, len(self.sizes) - 1):
            self._draw(l, 1)

    def carry(self, update: list, lfsrs) -> str | None:
        """Take the trace's batch end; first check this model's own following against it (a bench
        error, named so, when they differ)."""
        for li, up in enumerate(update):
            bad = row_mismatch("counter", li + 1, up["counter_pre"], self.C[li], "")
            if bad:
                return f"bench model error (the trace disagrees with the bench's §9 accumulate){bad}"
        if list(lfsrs) != self.lfsr:
            return "bench model error: the trace's LFSR states at the batch end differ from the bench's §3 draws"
        for li, up in enumerate(update):
            for wrow, step, new in zip(self.W[li], up["carry"], up["weights"]):
                for w, s, n in zip(wrow, step, new):
                    self.limits["weight_clamped_max"] += s > 0 and w == self.wmax
                    self.limits["weight_clamped_min"] += s < 0 and w == self.wmin
                    self.limits["weights_at_max"] += n == self.wmax
                    self.limits["weights_at_min"] += n == self.wmin
            self.W[li] = [list(r) for r in up["weights"]]
            self.C[li] = [list(r) for r in up["counter"]]
        return None


def check_layer_state(model, li: int, W, C, where: str) -> int:
    """Compare layer ``li``'s levels ``W`` and counters ``C`` read from the DUT with the state model's
    (AssertionError naming the first mismatch, counters first); return the values compared."""
    msg = row_mismatch("counter", li + 1, model.C[li], C, where) or row_mismatch("weight", li + 1, model.W[li], W, where)
    assert msg is None, msg
    return 2 * len(W) * len(W[0])
