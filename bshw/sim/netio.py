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
    """First differing entry of two ``[fan_in][fan_out]`` matrices."""
    for i, (re_, rg) in enumerate(zip(rows_exp, rows_got)):
        for j, (e, g) in enumerate(zip(re_, rg)):
            if e != g:
                return f"{where}: {what} of layer {layer} [{i}][{j}] expected {e}, got {g}"
    return None
