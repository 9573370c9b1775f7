"""Energy and area of HP and BS learning on CMOS and on memristor crossbars (``bshw energy``).

Reproduces the paper's Methods "Estimation of the energy consumption and on-chip footprint" and
Extended Data Table II from the constants in ``bshw/energy_constants.toml`` (nothing printed is typed
in), then goes past the table: per network and per training step, with measured activity from a
trained run. Method, counting rules and the table: docs/energy.md.
"""

import json
import math
from pathlib import Path

import tomllib

from bshw.errors import BshwError

DEFAULT_CONSTANTS = Path(__file__).with_name("energy_constants.toml")

# Facts about the data sets for nominal first-layer activity (docs/energy.md): a binarized pixel is 1
# with probability equal to its intensity, so the active fraction is the mean intensity (the usual
# torchvision normalization means; CIFAR-10 averaged over its three channels).
# ``pixels``: input samplers of a conv net (one per input pixel and channel, docs/arithmetic.md §5); an
# fc net has one per input of its first layer.
DATASETS = {
    "mnist": {"train_samples": 60000, "input_mean": 0.1307, "pixels": 28 * 28},
    "fashion-mnist": {"train_samples": 60000, "input_mean": 0.2860, "pixels": 28 * 28},
    "cifar10": {"train_samples": 50000, "input_mean": (0.4914 + 0.4822 + 0.4465) / 3, "pixels": 3 * 32 * 32},
}

# key -> label; hp = dense FP/8-bit MACs, bs = binary inputs and ternary errors (docs/energy.md)
SCHEMES = {
    "hp-cmos-fp32": "HP  CMOS FP32",
    "bs-cmos-fp32": "BS  CMOS FP32",
    "bs-cmos-int8": "BS  CMOS INT8",
    "bs-cmos-int4": "BS  CMOS INT4",
    "bs-cmos-ternary": "BS  CMOS ternary",
    "hp-memristor": "HP  memristor 8b+ADC",
    "bs-memristor": "BS  memristor 1b",
}
PARTS = ("forward", "backward", "gradient", "write", "periphery")
LAYER_KEYS = {"name": str, "kind": str, "fan_in": int, "fan_out": int, "synapses": int, "macs": int,
              "neurons": int}


# -- constants -----------------------------------------------------------------------------------
def load_constants(path=None, overrides=None) -> dict:
    """Read and validate a constants TOML file.

    Parameters
    ----------
    path : path-like or None
        A full constants file (every numeric key of the default file); None: the default file.
    overrides : dict or None
        ``{"section.key": value}`` applied after reading (the CLI's ``--set``).

    Returns
    -------
    dict
        ``{section: {key: float}}`` without the ``source`` strings.
    """
    schema = _read_toml(DEFAULT_CONSTANTS)
    data = schema if path is None else _read_toml(Path(path))
    where = str(path or DEFAULT_CONSTANTS)
    out = {}
    for sec, table in data.items():
        if sec not in schema or not isinstance(table, dict):
            raise BshwError(f"{where}: unknown section [{sec}] (known: {', '.join(schema)})")
        for key in table:
            if key != "source" and key not in schema[sec]:
                raise BshwError(f"{where}: unknown key {sec}.{key}")
    for sec, table in schema.items():
        out[sec] = {}
        for key in table:
            if key == "source":
                continue
            if key not in data.get(sec, {}):
                raise BshwError(f"{where}: missing key {sec}.{key}")
            out[sec][key] = _number(data[sec][key], f"{where}: {sec}.{key}")
    for name, value in (overrides or {}).items():
        sec, _, key = name.partition(".")
        if key not in out.get(sec, {}):
            raise BshwError(f"--set {name}: unknown constant (e.g. cmos.fp32_add_pj, memristor.ns_per_bit)")
        out[sec][key] = _number(value, f"--set {name}")
    for sec, table in out.items():
        for key, v in table.items():
            name = f"{sec}.{key}"
            src = f"--set {name}" if name in (overrides or {}) else f"{where}: {name}"
            if (sec, key) in POSITIVE and v == 0:
                raise BshwError(f"{src} = {v:g} must be positive (the estimate divides by it)")
            if v != 0 and not CONSTANT_RANGE[0] <= v <= CONSTANT_RANGE[1]:
                raise BshwError(f"{src} = {v:g} is outside the sane range {CONSTANT_RANGE[0]:g} to "
                                f"{CONSTANT_RANGE[1]:g} (or 0)")
            if (sec, key) in FRACTIONS and v > 1:
                raise BshwError(f"{src} = {v:g} is a fraction, expected a number from 0 to 1")
    m = out["memristor"]
    if m["macro_pj_with_adc"] < m["macro_pj_without_adc"] or m["area_um2_with_adc"] < m["area_um2_without_adc"]:
        raise BshwError(f"{where}: the macro with ADCs cannot cost less than without (memristor.*_with_adc)")
    return out


# Constants the estimate divides by (directly or through a per-MAC figure): zero is refused.
POSITIVE = {("memristor", k) for k in ("macro_rows", "macro_cols", "macro_pj_with_adc", "macro_pj_without_adc",
                                       "area_um2_with_adc", "area_um2_without_adc", "ns_per_bit",
                                       "hp_input_bits")} | {("cmos", k) for k in ("int_add_ref_bits", "int8_add_pj",
                                                                                  "ternary_bits", "fp32_add_pj")}
FRACTIONS = {("periphery", "toggle_rate"), ("nominal", "x_active_hidden"), ("nominal", "dy_nonzero")}
# Every nonzero constant lies in this range (pJ, fJ, um2, ns, bits, counts): products and quotients of
# a dozen of them stay finite and nonzero in double precision.
CONSTANT_RANGE = (1e-12, 1e12)
# Options of `bshw energy` and the ranges accepted (name: (low, high, unit))
OPTION_RANGES = {
    "--ns-per-bit": (1e-3, 1e6, "ns"),  # 1 ps to 1 ms per input bit
    "--input-bits": (1, 64, "bits"),
    "--array-size": (1, 65536, "rows and columns"),
    "--batch": (1, 10**9, "samples"),
    "--train-samples": (1, 10**12, "samples"),
}


def check_option(name: str, value, whole: bool = False):
    """``value`` of CLI option ``name`` within :data:`OPTION_RANGES` (finite; a whole number if
    ``whole``), else a one-line BshwError naming the option."""
    lo, hi, unit = OPTION_RANGES[name]
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (not whole or float(value).is_integer()) and lo <= value <= hi)
    if not ok:
        kind = "a whole number" if whole else "a finite number"
        raise BshwError(f"{name} {value!r}: expected {kind} from {lo:g} to {hi:g} ({unit})")
    return value


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BshwError(f"constants file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BshwError(f"constants file {path} is not valid TOML: {e}") from None


def _number(value, where: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise BshwError(f"{where} = {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(v) or v < 0:
        raise BshwError(f"{where} = {value!r} must be a finite number >= 0")
    return v


# -- per MAC and per macro -----------------------------------------------------------------------
def macro(c: dict, array_size: int = 128, input_bits: int | None = None, ns_per_bit: float | None = None) -> dict:
    """Energy, throughput and area of one N x N memristor macro (paper Methods).

    The array part (the macro without ADCs) scales with the N*N cells, the ADC and shift & add part
    with the N columns (docs/energy.md); at the constants' own size the paper's figures come back.

    Returns
    -------
    dict
        ``macs`` per pass, ``pass_pj_adc``/``pass_pj`` per 1-bit pass, ``hp_mac_pj``/``bs_mac_pj``,
        ``bs_tops_per_w``, ``area_um2_adc``/``area_um2``, ``hp_gops_mm2``/``bs_tops_mm2``.
    """
    m = c["memristor"]
    lo, hi, _ = OPTION_RANGES["--array-size"]
    if isinstance(array_size, bool) or not isinstance(array_size, int) or not lo <= array_size <= hi:
        raise BshwError(f"array size {array_size!r} must be a whole number from {lo} to {hi}")
    bits = m["hp_input_bits"] if input_bits is None else input_bits
    ns = m["ns_per_bit"] if ns_per_bit is None else ns_per_bit
    if input_bits is not None:
        check_option("--input-bits", input_bits, whole=True)
    if ns_per_bit is not None:
        check_option("--ns-per-bit", ns_per_bit)
    if not bits > 0 or not ns > 0:
        raise BshwError(f"input bits {bits!r} and ns per bit {ns!r} must be positive")
    cells, cols = array_size**2 / (m["macro_rows"] * m["macro_cols"]), array_size / m["macro_cols"]
    pass_pj = m["macro_pj_without_adc"] * cells
    pass_pj_adc = pass_pj + (m["macro_pj_with_adc"] - m["macro_pj_without_adc"]) * cols
    area = m["area_um2_without_adc"] * cells
    area_adc = area + (m["area_um2_with_adc"] - m["area_um2_without_adc"]) * cols
    macs = array_size**2
    t_bit = ns * 1e-9
    return {
        "macs": macs, "input_bits": bits, "ns_per_bit": ns,
        "pass_pj_adc": pass_pj_adc, "pass_pj": pass_pj,
        "hp_mac_pj": pass_pj_adc * bits / macs,  # 371.89 pJ x 8 / 16,384
        "bs_mac_pj": pass_pj / macs,  # 29.23 pJ / 16,384
        "bs_tops_per_w": macs / pass_pj,  # ops per pJ = TOPS/W
        "area_um2_adc": area_adc, "area_um2": area,
        "hp_gops_mm2": macs / (bits * t_bit * area_adc * 1e-6) / 1e9,
        "bs_tops_mm2": macs / (t_bit * area * 1e-6) / 1e12,
    }


def mac_energies(c: dict, array_size: int = 128, input_bits: int | None = None) -> dict:
    """Energy per elementary operation in pJ (Extended Data Table II and the update terms)."""
    k, mem = c["cmos"], macro(c, array_size, input_bits)
    per_bit = k["int8_add_pj"] / k["int_add_ref_bits"]  # add energy proportional to bit width
    return {
        "fp32_mac": k["fp32_mult_pj"] + k["fp32_add_pj"],
        "fp32_add": k["fp32_add_pj"],
        "int8": per_bit * 8, "int4": per_bit * 4, "ternary": per_bit * k["ternary_bits"],
        "counter": per_bit * k["counter_bits"],
        "int8_mac": k["int8_mult_pj"] + k["int8_add_pj"],
        "hp_mem": mem["hp_mac_pj"], "bs_mem": mem["bs_mac_pj"],
        "write": c["memristor"]["write_pulse_pj"],
    }


def _paper_round(x: float) -> float:
    """Two significant figures: how the paper prints per-MAC energies (4.6 pJ, 0.18 pJ, 5.6 fJ)."""
    return float(f"{x:.2g}")


def paper_table(c: dict, array_size: int = 128, input_bits: int | None = None,
                ns_per_bit: float | None = None) -> list[dict]:
    """The paper's figures, computed: one dict per figure.

    Each row has ``key``, ``label``, ``value`` (exact, in ``unit``), ``unit`` and ``printed`` (the
    figure at the paper's rounding). Ratios and TOPS/W follow the paper's chain: they are taken from
    the per-MAC energies already rounded to two significant figures (``note`` says so).
    """
    e, mem = mac_energies(c, array_size, input_bits), macro(c, array_size, input_bits, ns_per_bit)
    r = _paper_round
    rows = [
        ("cmos_hp_fp32", "CMOS HP MAC, FP32 (mult + add)", e["fp32_mac"], "pJ", ".2g", ""),
        ("cmos_bs_fp32", "CMOS BS MAC, FP32 weight (add)", e["fp32_add"], "pJ", ".2g", ""),
        ("cmos_bs_int8", "CMOS BS MAC, INT8 weight", e["int8"], "pJ", ".2g", ""),
        ("cmos_bs_int4", "CMOS BS MAC, INT4 weight", e["int4"] * 1e3, "fJ", ".2g", ""),
        ("cmos_bs_ternary", "CMOS BS MAC, ternary weight", e["ternary"] * 1e3, "fJ", ".2g", ""),
        ("cmos_ratio_int4", "HP FP32 / BS INT4", e["fp32_mac"] / e["int4"], "x", ".0f",
         r(e["fp32_mac"]) / r(e["int4"])),
        ("cmos_ratio_ternary", "HP FP32 / BS ternary", e["fp32_mac"] / e["ternary"], "x", ".0f",
         r(e["fp32_mac"]) / r(e["ternary"])),
        ("mem_macs", "memristor MACs per pass", mem["macs"], "MAC", ",.0f", ""),
        ("mem_hp_mac", f"memristor HP MAC, {mem['input_bits']:g}-bit input + ADC", mem["hp_mac_pj"], "pJ", ".2g", ""),
        ("mem_bs_mac", "memristor BS MAC, 1-bit input, no ADC", mem["bs_mac_pj"] * 1e3, "fJ", ".2g", ""),
        ("mem_bs_tops_w", "memristor BS energy efficiency", mem["bs_tops_per_w"], "TOPS/W", ".0f",
         1e3 / r(mem["bs_mac_pj"] * 1e3)),
        ("mem_ratio", "memristor HP / BS per MAC", mem["hp_mac_pj"] / mem["bs_mac_pj"], "x", ".0f",
         r(mem["hp_mac_pj"]) / r(mem["bs_mac_pj"])),
        ("mem_hp_area_eff", "memristor HP area efficiency", mem["hp_gops_mm2"], "GOPS/mm2", ".2f", ""),
        ("mem_bs_area_eff", "memristor BS area efficiency", mem["bs_tops_mm2"], "TOPS/mm2", ".2f", ""),
        ("mem_area_ratio", "memristor area efficiency BS / HP", mem["bs_tops_mm2"] * 1e3 / mem["hp_gops_mm2"],
         "x", ".1f", ""),
    ]
    out = []
    for key, label, value, unit, fmt, chained in rows:
        shown = value if chained == "" else chained
        out.append({"key": key, "label": label, "value": value, "unit": unit, "printed": format(shown, fmt),
                    "note": "" if chained == "" else "from the rounded per-MAC figures, as the paper"})
    return out


# -- networks and training steps -------------------------------------------------------------------
def validate_layers(layers, where: str = "network") -> list[dict]:
    """Check a layer list (bshw.golden.model.describe_network's contract); return it."""
    if not isinstance(layers, list) or not layers:
        raise BshwError(f"{where}: expected a non-empty list of layer dicts")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise BshwError(f"{where}: layer {i} is not a dict")
        for key, typ in LAYER_KEYS.items():
            v = layer.get(key)
            if not isinstance(v, typ) or isinstance(v, bool) or (typ is int and v < 1):
                want = "a positive whole number" if typ is int else "a string"
                raise BshwError(f"{where}: layer {i} {key} = {v!r} is not {want}")
        if layer["kind"] not in ("fc", "conv"):
            raise BshwError(f"{where}: layer {i} kind = {layer['kind']!r} is not fc or conv")
    return layers


def count_macs(layers: list[dict]) -> list[dict]:
    """MACs per sample of each training step, per layer (docs/energy.md, counting rules).

    forward: the layer's ``macs``; backward: the same count through the transposed weights, none for
    the first layer (no error is needed at the input); gradient: one x*dy product per forward MAC.
    """
    validate_layers(layers)
    return [{"name": L["name"], "forward": L["macs"], "backward": L["macs"] if i else 0,
             "gradient": L["macs"], "synapses": L["synapses"], "neurons": L["neurons"]}
            for i, L in enumerate(layers)]


def nominal_activity(layers: list[dict], c: dict, dataset: str = "mnist") -> list[dict]:
    """Activity without a trained run: the data set's mean intensity at the input, [nominal] elsewhere."""
    n = c["nominal"]
    first = DATASETS[dataset]["input_mean"]
    return [{"x_active": first if i == 0 else n["x_active_hidden"], "dy_nonzero": n["dy_nonzero"],
             "carries_per_weight": n["carries_per_weight"]} for i in range(len(layers))]


def _check_activity(activity, n_layers: int, c: dict, where: str) -> list[dict]:
    if not isinstance(activity, list) or len(activity) != n_layers:
        raise BshwError(f"{where}: activity must list one entry per layer ({n_layers})")
    out = []
    for i, a in enumerate(activity):
        if not isinstance(a, dict):
            raise BshwError(f"{where}: activity[{i}] is not a dict")
        row = {}
        for key in ("x_active", "dy_nonzero"):
            v = a.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise BshwError(f"{where}: activity[{i}].{key} = {v!r} is not a fraction in [0, 1]")
            row[key] = float(v)
        v = a.get("carries_per_weight")
        if v is None:  # fp32 runs: no carries measured, the nominal bound stands in
            v = c["nominal"]["carries_per_weight"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
            raise BshwError(f"{where}: activity[{i}].carries_per_weight = {v!r} is not a number >= 0 or null")
        row["carries_per_weight"] = float(v)
        # write pulses driven per batch (exact-mode runs, docs/energy.md section 4): both or neither
        pulses = [a.get(k) for k in ("pulses_pot", "pulses_dep")]
        if any(p is not None for p in pulses):
            for key, p in zip(("pulses_pot", "pulses_dep"), pulses):
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not p >= 0 or p == float("inf"):
                    raise BshwError(f"{where}: activity[{i}].{key} = {p!r} is not a pulse count >= 0 "
                                    "(pulses_pot and pulses_dep go together)")
                row[key] = float(p)
        out.append(row)
    return out


def write_pulses(counts: list[dict], act: list[dict], batch: int, train_samples: int) -> list[dict]:
    """Per layer, the write pulses per sample that the write column charges (docs/energy.md section 3).

    Measured (``pulses_pot`` + ``pulses_dep`` of an exact-mode run: the pulses the carries drove per
    batch, averaged over the epoch's batches): ``(pot + dep) * ceil(train_samples / batch) /
    train_samples``, the epoch's pulses per sample. Otherwise ``carries_per_weight * synapses /
    batch`` (one pulse per carry)."""
    out = []
    batches = -(-train_samples // batch)
    for n, a in zip(counts, act):
        if "pulses_pot" in a:
            pot, dep = a["pulses_pot"], a["pulses_dep"]
            out.append({"measured": True, "pot_per_batch": pot, "dep_per_batch": dep,
                        "per_epoch": (pot + dep) * batches, "per_sample": (pot + dep) * batches / train_samples})
        else:
            per_batch = a["carries_per_weight"] * n["synapses"]
            out.append({"measured": False, "pot_per_batch": None, "dep_per_batch": None,
                        "per_epoch": per_batch * batches, "per_sample": per_batch / batch})
    return out


def network_energy(layers: list[dict], c: dict, activity: list[dict] | None = None, *, batch: int = 100,
                   train_samples: int = 60000, array_size: int = 128, input_bits: int | None = None,
                   synth: dict | None = None, dataset: str = "mnist", deriv_k: int = 4, hw=None) -> dict:
    """Energy per sample and per epoch of one training step, for every scheme of :data:`SCHEMES`.

    Parameters
    ----------
    layers : list of dict
        Layer dicts (bshw.golden.model.describe_network's contract).
    c : dict
        Constants from :func:`load_constants`.
    activity : list of dict or None
        Per layer ``x_active``, ``dy_nonzero``, ``carries_per_weight`` (None: the nominal ones).
    batch, train_samples : int
        Samples per weight write and per epoch.
    array_size, input_bits : int
        Crossbar size N (N x N) and HP input bits of the memristor schemes.
    synth : dict or None
        Synthesis figures (``{"neuron": {"luts", "ffs"}, ...}``); None: periphery not counted.
    deriv_k : int
        Derivative pairs k of the hidden neurons (§6): the neuron's clocked evaluations per sample,
        :func:`neuron_passes`.
    hw : bshw.hwparams.HwParams or None
        The resolved hardware parameters of the network (the flow's, an exact run's); when given,
        its ``deriv_k`` is the one counted.

    Returns
    -------
    dict
        ``schemes`` (per scheme: pJ per sample per part, ``total_pj``, ``epoch_j``, ``vs_hp_cmos``),
        ``layers`` (MAC counts), ``activity``, ``area`` (crossbar tiles and mm2), ``periphery``.
    """
    if hw is not None:
        deriv_k = hw.deriv_k
    counts = count_macs(layers)
    if not isinstance(batch, int) or batch < 1 or not isinstance(train_samples, int) or train_samples < 1:
        raise BshwError(f"batch {batch!r} and train samples {train_samples!r} must be positive whole numbers")
    act = _check_activity(activity if activity is not None else nominal_activity(layers, c, dataset),
                          len(layers), c, "activity")
    e = mac_energies(c, array_size, input_bits)
    neuron_pj = periphery_per_neuron_pj(c, synth, deriv_k)
    input_pj = periphery_per_input_pj(c, synth)
    n_inputs = input_samplers(layers, dataset)
    res = {k: dict.fromkeys(PARTS, 0.0) for k in SCHEMES}
    pulses = write_pulses(counts, act, batch, train_samples)
    for n, a, wp in zip(counts, act, pulses):
        F, B, G, S = n["forward"], n["backward"], n["gradient"], n["synapses"]
        xa, dn = a["x_active"], a["dy_nonzero"]
        p = xa * dn  # nonzero x*dy, x and dy taken independent (docs/energy.md)
        writes = wp["per_sample"]  # pulses (carries) per sample: measured in an exact run, else car * S / batch
        add = {
            # HP on CMOS: every MAC is FP32 mult + add; per batch one FP32 mult-add per weight
            "hp-cmos-fp32": (F * e["fp32_mac"], B * e["fp32_mac"], G * e["fp32_mac"], S * e["fp32_mac"] / batch),
            # BS with FP32 weights: one FP32 add per active input / nonzero error; +-lr added per nonzero x*dy
            "bs-cmos-fp32": (F * xa * e["fp32_add"], B * dn * e["fp32_add"], G * p * e["fp32_add"], 0.0),
            # HP on memristors: 8-bit inputs + ADC both ways; INT8 gradient; one pulse per weight per batch
            "hp-memristor": (F * e["hp_mem"], B * e["hp_mem"], G * e["int8_mac"], S * e["write"] / batch),
            # BS on memristors: 1-bit passes; counter increments; one pulse per carry (Fig. 5a)
            "bs-memristor": (F * xa * e["bs_mem"], B * dn * e["bs_mem"], G * p * e["counter"],
                             writes * e["write"]),
        }
        for w in ("int8", "int4", "ternary"):  # periodic carry: counter per x*dy, +-1 weight add per carry
            add[f"bs-cmos-{w}"] = (F * xa * e[w], B * dn * e[w], G * p * e["counter"], writes * e[w])
        for k, parts in add.items():
            for part, v in zip(PARTS, parts):
                res[k][part] += v
    n_neurons = sum(n["neurons"] for n in counts)
    bs_periphery = hp_periphery = None
    if neuron_pj is not None:  # comparators, LFSRs and flip-flops of Extended Data Fig. 1
        bs_periphery = n_neurons * neuron_pj
        if input_pj is not None:  # one stochastic input sampler per input, one draw per sample (§5, §8)
            bs_periphery += n_inputs * input_pj
        # every BS scheme samples its neurons the same way, whatever holds the weights
        for k in res:
            if k.startswith("bs-"):
                res[k]["periphery"] = bs_periphery
    hp_neuron_pj = periphery_per_hp_neuron_pj(c, synth)
    if hp_neuron_pj is not None:  # activation lookup and error multiply of an HP neuron
        hp_periphery = n_neurons * hp_neuron_pj
        for k in res:
            if k.startswith("hp-"):
                res[k]["periphery"] = hp_periphery
    hp = sum(res["hp-cmos-fp32"].values())
    for k, r in res.items():
        r["total_pj"] = sum(r[p] for p in PARTS)
        r["epoch_j"] = r["total_pj"] * 1e-12 * train_samples
        r["vs_hp_cmos"] = hp / r["total_pj"] if r["total_pj"] else None
        r["label"] = SCHEMES[k].replace("8b", f"{macro(c, array_size, input_bits)['input_bits']:g}b")
    return {"schemes": res, "layers": counts, "activity": act, "write_pulses": pulses,
            "batch": batch, "train_samples": train_samples,
            "area": crossbar_area(layers, c, array_size), "periphery_counted": neuron_pj is not None,
            "periphery": {"neurons": n_neurons, "neuron_pj": neuron_pj, "neuron_passes": neuron_passes(deriv_k),
                          "input_samplers": n_inputs,
                          "input_sampler_pj": input_pj if neuron_pj is not None else None,
                          "bs_pj": bs_periphery, "hp_neuron_pj": hp_neuron_pj, "hp_pj": hp_periphery}}


def tops_per_w(res: dict, c: dict, array_size: int) -> dict:
    """Energy efficiency of the memristor BS scheme on this net (one MAC = one operation, as the paper).

    ``array_reads``: forward and backward MACs per sample over the forward and backward array energy
    (the paper's 556 TOPS/W counts array passes only, docs/energy.md §1); ``training_sample``: every
    MAC of a training step (forward, backward, gradient) over the whole sample's energy, counters,
    weight writes and periphery included. Both count every MAC of a layer, also those whose 0 input
    drives no current (the estimate charges driven rows only, docs/energy.md §3).
    ``per_driven_mac``: the constants' figure, one fully driven pass (the paper's 556 before its
    rounding); ``paper``: the paper's printed figure, recomputed by its rounding chain.

    Returns
    -------
    dict
        ``macs`` (forward, backward, gradient per sample), ``array_reads``, ``training_sample``,
        ``per_driven_mac``, ``paper`` (TOPS/W; None where an energy is zero), ``pass_pj`` and
        ``array_size`` (the macro pass behind ``per_driven_mac``), ``paper_mac_fj`` (the paper's
        printed energy of a 1-bit MAC, fJ).
    """
    macs = {k: sum(layer[k] for layer in res["layers"]) for k in ("forward", "backward", "gradient")}
    bs = res["schemes"]["bs-memristor"]
    reads_pj = bs["forward"] + bs["backward"]
    paper = {r["key"]: r for r in paper_table(c)}  # at the paper's 128x128 macro
    mem = macro(c, array_size)
    # MACs per pJ is 1e12 operations per joule: TOPS/W
    return {"macs": macs,
            "array_reads": (macs["forward"] + macs["backward"]) / reads_pj if reads_pj else None,
            "training_sample": sum(macs.values()) / bs["total_pj"] if bs["total_pj"] else None,
            "per_driven_mac": mem["bs_tops_per_w"], "pass_pj": mem["pass_pj"], "array_size": array_size,
            "paper": float(paper["mem_bs_tops_w"]["printed"]), "paper_mac_fj": paper["mem_bs_mac"]["printed"]}


def crossbar_area(layers: list[dict], c: dict, array_size: int = 128) -> dict:
    """Tiles of N x N macros holding each layer's fan_in x fan_out weights, and their area in mm2."""
    mem = macro(c, array_size)
    tiles = sum(math.ceil(L["fan_in"] / array_size) * math.ceil(L["fan_out"] / array_size) for L in layers)
    return {"tiles": tiles, "array_size": array_size, "hp_mm2": tiles * mem["area_um2_adc"] * 1e-6,
            "bs_mm2": tiles * mem["area_um2"] * 1e-6}


# -- periphery from synthesis ----------------------------------------------------------------------
# Top-level keys of synth.json that describe the flow, not a module (bshw/synth.py writes them).
SYNTH_META_KEYS = ("device", "tool_versions")


def read_synth(path) -> dict | None:
    """Synthesis figures ``{"neuron": {"luts": int, "ffs": int, ...}, ..., "device": str, ...}`` (the
    layout ``bshw synth`` writes; :data:`SYNTH_META_KEYS` are not modules); None when the file is absent."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise BshwError(f"synthesis file {path} is not valid JSON: {e}") from None
    if not isinstance(d, dict):
        raise BshwError(f"synthesis file {path}: expected an object of modules")
    for mod, v in d.items():
        if mod in SYNTH_META_KEYS:
            continue
        if not isinstance(v, dict) or any(
                isinstance(v.get(k), bool) or not isinstance(v.get(k), int) or v[k] < 0 for k in ("luts", "ffs")):
            raise BshwError(f"synthesis file {path}: {mod} needs whole numbers luts and ffs >= 0")
    return d


def neuron_passes(deriv_k: int) -> int:
    """Clocked evaluations of a hidden neuron per training sample (docs/arithmetic.md §6, §8): its
    ``1 + 2k`` draws (X, A_1, B_1, ..., A_k, B_k) plus the backward sign (§7): 10 at k = 4, 4 at k = 1."""
    from bshw.core import check_deriv_k

    try:
        check_deriv_k(deriv_k)
    except (TypeError, ValueError) as e:
        raise BshwError(str(e)) from None
    return 1 + 2 * deriv_k + 1


def deriv_k_of(cfg) -> int:
    """The derivative pairs k of a TrainConfig or its dict (§6, as the exact mode resolves it,
    ``ExactParams.resolve``: ``hw.deriv_k``, else ``cfg.deriv_k``, else 4)."""
    get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k, None)
    hw = get("hw") or {}
    return int(hw.get("deriv_k") or get("deriv_k") or 4)


def periphery_per_neuron_pj(c: dict, synth: dict | None, deriv_k: int = 4) -> float | None:
    """Energy of one neuron per sample from its synthesized cells, over :func:`neuron_passes` clocked
    evaluations for ``deriv_k`` pairs; None without a ``neuron`` entry."""
    if not synth or "neuron" not in synth:
        return None
    p, cells = c["periphery"], synth["neuron"]["luts"] + synth["neuron"]["ffs"]
    return cells * p["toggle_rate"] * neuron_passes(deriv_k) * p["cell_toggle_fj"] * 1e-3


def periphery_per_hp_neuron_pj(c: dict, synth: dict | None) -> float | None:
    """Energy of one high-precision neuron's digital periphery per sample (``hp_neuron``: activation
    lookup forward, derivative lookup and error multiply backward) from its synthesized cells."""
    if not synth or "hp_neuron" not in synth:
        return None
    p, cells = c["periphery"], synth["hp_neuron"]["luts"] + synth["hp_neuron"]["ffs"]
    return cells * p["toggle_rate"] * p["hp_passes"] * p["cell_toggle_fj"] * 1e-3


def periphery_per_input_pj(c: dict, synth: dict | None) -> float | None:
    """Energy of one input sampler per sample (one I16 draw, docs/arithmetic.md §5, §8) from its
    synthesized cells; None without an ``input_sampler`` entry."""
    if not synth or "input_sampler" not in synth:
        return None
    p, cells = c["periphery"], synth["input_sampler"]["luts"] + synth["input_sampler"]["ffs"]
    return cells * p["toggle_rate"] * p["cell_toggle_fj"] * 1e-3


def input_samplers(layers: list[dict], dataset: str = "mnist") -> int:
    """Stochastic input samplers of a net: the first layer's fan-in (fc), else the data set's pixels."""
    first = layers[0]
    return first["fan_in"] if first["kind"] == "fc" else DATASETS[dataset]["pixels"]


# -- trained runs ----------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise BshwError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        raise BshwError(f"{path} is not valid JSON: {e}") from None


def read_run(run_dir, c: dict) -> dict:
    """Layers, last-epoch activity, train samples, batch and data set of a trained run directory."""
    from bshw.golden.config import TrainConfig

    d = Path(run_dir)
    if not d.is_dir():
        raise BshwError(f"run directory {d} does not exist")
    cfg_d = _read_json(d / "config.json")
    if not isinstance(cfg_d, dict):
        raise BshwError(f"{d / 'config.json'}: expected an object")
    cfg = TrainConfig.from_dict(cfg_d, where=str(d / "config.json"))
    net = _read_json(d / "network.json")
    layers = validate_layers(net.get("layers") if isinstance(net, dict) else None, str(d / "network.json"))
    met = _read_json(d / "metrics.json")
    epochs = met.get("epochs") if isinstance(met, dict) else None
    if not isinstance(epochs, list) or not epochs or not isinstance(epochs[-1], dict):
        raise BshwError(f"{d / 'metrics.json'}: expected a non-empty list 'epochs'")
    last = epochs[-1]
    where = f"{d / 'metrics.json'} (last epoch)"
    act = _check_activity(last.get("activity"), len(layers), c, where)
    n = last.get("train_samples")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise BshwError(f"{where}: train_samples = {n!r} is not a positive whole number")
    return {"layers": layers, "activity": act, "train_samples": n, "batch": cfg.batch, "config": cfg,
            "dataset": cfg.dataset_name}


def describe(net: str, hidden=None, dataset=None):
    """Layers of a named network from bshw.golden.model.describe_network (imported only here)."""
    from bshw.golden.config import TrainConfig

    kw = {"net": net} | ({"hidden": tuple(hidden)} if hidden else {}) | ({"dataset": dataset} if dataset else {})
    cfg = TrainConfig(**kw)
    try:
        from bshw.golden.model import describe_network
    except ImportError as e:
        raise BshwError(f"--net needs bshw.golden.model.describe_network, which is not available: {e}") from None
    return validate_layers(describe_network(cfg), f"describe_network({net})"), cfg


# -- output ----------------------------------------------------------------------------------------
def si(x: float, unit: str) -> str:
    """``x`` in base units with an SI prefix and 3 significant figures."""
    if x == 0:
        return f"0 {unit}"
    for p, s in ((1e3, "k"), (1, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p"), (1e-15, "f")):
        if abs(x) >= p * 0.9995:
            return f"{x / p:.3g} {s}{unit}"
    return f"{x:.3g} {unit}"


def _ratio(x) -> str:
    return "-" if x is None else f"{x:.1f}x"


def format_paper(rows: list[dict], mem: dict) -> str:
    head = (f"Extended Data Table II and Methods, computed (memristor: {mem['macs']:,} MACs per pass, "
            f"{mem['pass_pj_adc']:.2f} pJ with ADC, {mem['pass_pj']:.2f} pJ without)")
    lines = [head, f"  {'figure':40s} {'exact':>12s} {'paper rounding':>15s}  unit"]
    for r in rows:
        lines.append((f"  {r['label']:40s} {r['value']:12.5g} {r['printed']:>15s}  {r['unit']:8s}"
                      + (f" ({r['note']})" if r["note"] else "")).rstrip())
    return "\n".join(lines)


def format_network(res: dict, title: str) -> str:
    lines = [title, f"  {'scheme':22s}" + "".join(f"{p:>11s}" for p in PARTS)
             + f"{'per sample':>12s}{'per epoch':>11s}{'vs HP CMOS':>12s}"]
    for r in res["schemes"].values():
        lines.append(f"  {r['label']:22s}" + "".join(f"{si(r[p] * 1e-12, 'J'):>11s}" for p in PARTS)
                     + f"{si(r['total_pj'] * 1e-12, 'J'):>12s}{si(r['epoch_j'], 'J'):>11s}{_ratio(r['vs_hp_cmos']):>12s}")
    wp = res.get("write_pulses") or []
    if wp and all(w["measured"] for w in wp):
        pot = sum(w["pot_per_batch"] for w in wp)
        dep = sum(w["dep_per_batch"] for w in wp)
        lines.append(f"  write: measured pulses, {pot:,.1f} potentiation + {dep:,.1f} depression per batch "
                     f"({sum(w['per_sample'] for w in wp):,.2f} per sample, {sum(w['per_epoch'] for w in wp):,.0f} "
                     "per epoch), every driven pulse charged")
    a = res["area"]
    lines.append(f"  crossbars: {a['tiles']} tiles of {a['array_size']}x{a['array_size']}, "
                 f"{a['hp_mm2']:.3f} mm2 with ADCs, {a['bs_mm2']:.3f} mm2 without")
    per = res.get("periphery") or {}
    if res["periphery_counted"]:
        text = f"{per['neurons']} neurons x {si(per['neuron_pj'] * 1e-12, 'J')}"
        total = per["neurons"] * per["neuron_pj"]
        if per.get("input_sampler_pj") is not None:
            text += f" + {per['input_samplers']} input samplers x {si(per['input_sampler_pj'] * 1e-12, 'J')}"
            total += per["input_samplers"] * per["input_sampler_pj"]
        else:
            text += " (input samplers not counted: no 'input_sampler' synthesis entry)"
        lines.append(f"  periphery (every BS scheme, synthesized cells, docs/energy.md section 5): {text} "
                     f"= {si(total * 1e-12, 'J')} per sample")
        if per.get("hp_pj") is not None:
            lines.append(f"  periphery (every HP scheme, 'hp_neuron' cells): {per['neurons']} neurons x "
                         f"{si(per['hp_neuron_pj'] * 1e-12, 'J')} = {si(per['hp_pj'] * 1e-12, 'J')} per sample")
    else:
        lines.append("  periphery (comparators, flip-flops) NOT counted: no synthesis figures for 'neuron' "
                     "(run `make synth` or pass --synth FILE), as in the paper's Methods")
    return "\n".join(lines)


def plot(path, rows: list[dict] | None, res: dict | None):
    """Bar chart on a log scale: per-sample energy per scheme, or the per-MAC energies of the table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bshw.io import atomic_savefig

    if res is not None:
        labels = [r["label"] for r in res["schemes"].values()]
        vals = [r["total_pj"] for r in res["schemes"].values()]
        ylabel = "energy per training sample (pJ)"
    else:
        per_mac = [r for r in rows if r["unit"] in ("pJ", "fJ")]
        labels = [r["label"] for r in per_mac]
        vals = [r["value"] * (1e-3 if r["unit"] == "fJ" else 1) for r in per_mac]
        ylabel = "energy per MAC (pJ)"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = ["tab:red" if "HP" in lab.split(",")[0] else "tab:blue" for lab in labels]
    ax.bar(range(len(vals)), vals, color=colors)
    ax.set_yscale("log")
    ax.set_xticks(range(len(vals)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title("bshw energy: HP (red) vs BS (blue)")
    fig.tight_layout()
    atomic_savefig(path, fig, dpi=120)
    plt.close(fig)


# -- CLI -------------------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--constants", metavar="FILE", help="technology constants TOML (default: the built-in file)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one constant, e.g. cmos.fp32_add_pj=0.9 (repeatable)")
    p.add_argument("--array-size", type=int, default=128, metavar="N", help="memristor crossbar N x N (128)")
    p.add_argument("--input-bits", type=int, default=None, metavar="B", help="HP memristor input bits (8)")
    p.add_argument("--ns-per-bit", type=float, default=None, metavar="NS", help="time per input bit (50 ns)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--net", choices=("fc", "cnn", "vgg"), help="per-sample/epoch energy of a network, nominal activity")
    g.add_argument("--run", metavar="DIR", help="per-sample/epoch energy of a trained run (measured activity)")
    from bshw.cli import add_hidden

    add_hidden(p, "hidden sizes for --net fc, e.g. 500,200 or 500 200")
    p.add_argument("--batch", type=int, help="samples per weight write for --net (TrainConfig default)")
    p.add_argument("--train-samples", type=int, help="samples per epoch for --net (data set size)")
    p.add_argument("--synth", metavar="FILE", default="rtl/synth.json",
                   help="synthesis figures for the periphery (default rtl/synth.json, if it exists)")
    p.add_argument("--json", metavar="FILE", help="write all figures as JSON (- for stdout)")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the schemes (log scale)")


def run(args) -> int:
    try:
        return _run(args)
    except (ZeroDivisionError, OverflowError) as e:  # a safety net behind the range checks
        raise BshwError(f"the constants and options give no finite estimate ({e}); check --set, "
                        "--constants, --ns-per-bit, --input-bits and --array-size") from None


def _run(args) -> int:
    from bshw.io import atomic_write_json, check_writable, plot_format

    check_option("--array-size", args.array_size, whole=True)
    for name, value, whole in (("--input-bits", args.input_bits, True), ("--ns-per-bit", args.ns_per_bit, False),
                               ("--batch", args.batch, True), ("--train-samples", args.train_samples, True)):
        if value is not None:
            check_option(name, value, whole)
    if (args.batch is not None or args.train_samples is not None) and not args.net:
        raise BshwError("--batch and --train-samples apply to --net only (a --run has its own)")
    if args.plot:  # before anything is computed or written
        plot_format(args.plot, "--plot")
        check_writable(args.plot, what="plot")
    if args.json and args.json != "-":
        check_writable(args.json, what="JSON")
    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise BshwError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        overrides[key.strip()] = value.strip()
    c = load_constants(args.constants, overrides)
    mem = macro(c, args.array_size, args.input_bits, args.ns_per_bit)
    rows = paper_table(c, args.array_size, args.input_bits, args.ns_per_bit)
    out = {"constants": c, "macro": mem, "paper_table": rows}
    text = [format_paper(rows, mem)]
    if args.hidden and args.net != "fc":
        raise BshwError("--hidden applies to --net fc only")
    res = None
    if args.net or args.run:
        synth = read_synth(args.synth)
        if args.run:
            r = read_run(args.run, c)
            title = f"Training energy of run {args.run} (measured activity of the last epoch)"
            if r["config"].algo != "SSS":
                title += f"; note: the run is {r['config'].algo}, its activity stands in for BS"
        else:
            hidden = None
            if args.hidden:
                hidden = list(args.hidden)  # parsed by bshw.cli.add_hidden
                if any(not 1 <= h <= 100_000 for h in hidden):
                    raise BshwError(f"--hidden {','.join(map(str, hidden))}: layer sizes from 1 to 100000")
            layers, cfg = describe(args.net, hidden)
            ds = cfg.dataset_name
            r = {"layers": layers, "activity": None, "dataset": ds,
                 "batch": cfg.batch if args.batch is None else args.batch,
                 "train_samples": (args.train_samples if args.train_samples is not None
                                   else cfg.train_limit or DATASETS[ds]["train_samples"])}
            title = f"Training energy of --net {args.net} on {ds} (nominal activity, docs/energy.md)"
        res = network_energy(r["layers"], c, r["activity"], batch=r["batch"], train_samples=r["train_samples"],
                             array_size=args.array_size, input_bits=args.input_bits, synth=synth, dataset=r["dataset"],
                             deriv_k=deriv_k_of(r["config"]) if r.get("config") is not None else 4)
        title += f", batch {res['batch']}, {res['train_samples']} samples per epoch"
        text.append(format_network(res, title))
        out["network"] = res
    if args.json == "-":
        print(json.dumps(out, indent=2, default=str))
    else:
        print("\n\n".join(text))
        if args.json:
            atomic_write_json(args.json, json.loads(json.dumps(out, default=str)))
    if args.plot:
        plot(args.plot, rows, res)
    return 0
