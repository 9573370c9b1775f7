"""What one sweep point computes: its training, its energy per sample and its periphery's hardware.

:func:`train_point` runs inside a Ray task (one torch thread); :func:`point_energy` and
:func:`shape_area` run in the driver on the task's result, so they need no worker and are redone
cheaply whenever the sweep's results are assembled. :func:`synth_module` synthesizes one periphery
module (a Ray task of its own, cached per module: docs/sweep.md).
"""

import itertools
import os
import socket
import time

from bshw.errors import BshwError

_DATA = {}  # (data set, folder) -> Dataset: a Ray worker process keeps its data between tasks


def _dataset(name: str, folder):
    from bshw.golden.data import load_dataset

    key = (name, folder)
    if key not in _DATA:
        _DATA.clear()  # one data set at a time: a worker's memory stays bounded
        _DATA[key] = load_dataset(name, folder)
    return _DATA[key]


def train_point(train: dict, options: dict) -> dict:
    """Train one point and evaluate it; the result the driver stores.

    Parameters
    ----------
    train : dict
        A resolved TrainConfig as a dict (:attr:`bshw.sweep.spec.Point.train`).
    options : dict
        ``final_votes`` (votes of the last evaluation or None) and ``train_eval`` (training samples
        the train error is measured on; 0: none).

    Returns
    -------
    dict
        ``test_error`` and ``train_error`` (``{"hp", "binary", "stochastic"}``), ``epochs`` (loss and
        test error per epoch), ``activity`` (last epoch, per layer), ``layers``, ``train_samples``,
        ``wall_s`` (training and evaluation), ``load_s`` (data), ``host``, ``pid``.
    """
    import torch

    from bshw.golden.config import TrainConfig
    from bshw.golden.model import describe_network
    from bshw.golden.train import fit

    torch.set_num_threads(1)  # one core per task: Ray runs one task per CPU it was given
    cfg = TrainConfig.from_dict(dict(train, hidden=tuple(train["hidden"])), "sweep point")
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise BshwError(f"device {cfg.device}: no CUDA device on the node that ran this point ({socket.gethostname()})")
    t0 = time.perf_counter()
    data = _dataset(cfg.dataset_name, cfg.data)
    t1 = time.perf_counter()
    m = fit(cfg, None, progress=False, data=data, final_votes=options.get("final_votes"),
            train_eval=options.get("train_eval") or 0)
    wall = time.perf_counter() - t1
    if not m["epochs"]:
        raise BshwError("epochs = 0: nothing was trained")
    last = m["epochs"][-1]
    return {
        "test_error": last["test_error"], "train_error": last.get("train_error"),
        "train_eval_samples": last.get("train_eval_samples"),
        "epochs": [{"epoch": e["epoch"], "train_loss": e["train_loss"], "test_error": e["test_error"],
                    "samples_per_s": e["samples_per_s"]} for e in m["epochs"]],
        "vote_curve": last.get("vote_curve"), "activity": last["activity"], "train_samples": last["train_samples"],
        "layers": describe_network(cfg), "wall_s": wall, "load_s": t1 - t0,
        "host": socket.gethostname(), "pid": os.getpid(),
    }


# -- energy ------------------------------------------------------------------------------------------
def _technology(weights: str) -> tuple:
    """(HP scheme, BS scheme) of bshw.energy for a weight format: memristor arrays or CMOS, BS at the
    weight's width (an intN as the nearest INT8 / INT4 / ternary adder)."""
    if weights == "memristor":
        return "hp-memristor", "bs-memristor"
    if weights == "fp32":
        return "hp-cmos-fp32", "bs-cmos-fp32"
    bits = {"ternary": 2}.get(weights) or int(weights[3:])
    return "hp-cmos-fp32", "bs-cmos-int8" if bits >= 6 else "bs-cmos-int4" if bits >= 3 else "bs-cmos-ternary"


def point_energy(train: dict, result: dict, constants: dict, array_size: int = 128, synth: dict | None = None) -> dict:
    """Energy per training sample of a point from :func:`bshw.energy.network_energy`.

    The estimator prices high-precision (HP) and binary stochastic (BS) learning part by part
    (forward, backward, gradient, write, periphery) with the run's measured activity. A point takes
    each part from the scheme its algorithm uses there: forward from BS when F is S; backward and
    gradient from BS when the error that reaches the weights is ternary (E and D both S), else HP;
    the weight write and the periphery from BS when the algorithm is SSS (periodic carry and the
    sampling neurons), else HP. Technology by the weight format: memristor weights use the memristor
    schemes, others CMOS (BS at the format's width; intN as the nearest of INT8 / INT4).

    Returns
    -------
    dict
        ``pj_per_sample``, ``parts`` (pJ per part), ``schemes`` (the scheme of each part),
        ``crossbar_mm2`` (BS arrays, no ADCs, when the weights are memristors; else the HP figure),
        ``periphery_counted``.
    """
    from bshw import energy as E

    algo, weights = train["algo"], train["weights"]
    hp, bs = _technology(weights)
    ternary_dy = algo[1] == "S" and algo[2] == "S"
    pick = {"forward": bs if algo[0] == "S" else hp, "backward": bs if ternary_dy else hp,
            "gradient": bs if ternary_dy else hp, "write": bs if algo == "SSS" else hp,
            "periphery": bs if algo == "SSS" else hp}
    res = E.network_energy(result["layers"], constants, result["activity"], batch=train["batch"],
                           train_samples=result["train_samples"], array_size=array_size, synth=synth,
                           dataset=train.get("dataset") or ("cifar10" if train["net"] == "vgg" else "mnist"),
                           deriv_k=E.deriv_k_of(train))  # the neuron's 1 + 2k + 1 evaluations, k of this point
    parts = {p: res["schemes"][s][p] for p, s in pick.items()}
    area = res["area"]
    return {"pj_per_sample": sum(parts.values()), "parts": parts, "schemes": pick,
            "crossbar_mm2": area["bs_mm2"] if algo == "SSS" else area["hp_mm2"],
            "periphery_counted": res["periphery_counted"]}


# -- periphery hardware -------------------------------------------------------------------------------
def hardware_shape(train: dict) -> dict | None:
    """The BS periphery that runs a point (the RTL of bshw.periphery), or None where there is none.

    The RTL implements SSS learning of fc nets with integer weights; such a point (float or exact
    mode) has the hardware parameters the exact mode resolves for it (docs/arithmetic.md §12).

    Returns
    -------
    dict or None
        ``sizes`` (layer sizes) and ``modules``: a list of ``(spec, count)``, one spec per distinct
        module (``{"module": "neuron" | "output_neuron" | "counter" | "input_sampler", ...}``).
    """
    from bshw.golden.config import TrainConfig
    from bshw.golden.exact.params import ExactParams

    cfg = TrainConfig.from_dict(dict(train, hidden=tuple(train["hidden"])), "sweep point")
    if cfg.net != "fc" or cfg.algo != "SSS" or cfg.bits is None:
        return None
    P = ExactParams.from_dict(dict(cfg.hw)).resolve(cfg)
    from bshw.macro import dx_width, weight_bits, y_width

    sizes = cfg.sizes
    wb = weight_bits(P.wmin, P.wmax)
    modules = [({"module": "input_sampler"}, sizes[0])]
    for li in range(1, len(sizes)):
        yw = y_width(sizes[li - 1], wb)
        if li < len(sizes) - 1:
            spec = {"module": "neuron", "y_width": yw, "dx_width": dx_width(sizes[li + 1], wb), "k": P.deriv_k,
                    "tie": P.tie, "noise_words": list(P.noise_words), "n_upper": 1}
        else:
            spec = {"module": "output_neuron", "y_width": yw, "noise_words": list(P.noise_words)}
        modules.append((spec, sizes[li]))
    synapses = sum(a * b for a, b in itertools.pairwise(sizes))
    modules.append(({"module": "counter", "th": P.th, "counter_bits": P.counter_bits, "wmin": P.wmin,
                     "wmax": P.wmax}, synapses))
    merged = {}
    for spec, n in modules:  # hidden layers of one width share a module
        k = module_key(spec)
        merged[k] = (spec, merged.get(k, (spec, 0))[1] + n)
    return {"sizes": sizes, "modules": list(merged.values())}


def module_key(spec: dict) -> str:
    """A module's cache name: its kind and parameters, e.g. ``neuron-y14-dx12-k4-gated-7-7-5-u1``."""
    from bshw.sweep.spec import fmt_value

    short = {"y_width": "y", "dx_width": "dx", "k": "k", "tie": "", "noise_words": "nw", "n_upper": "u",
             "th": "th", "counter_bits": "cb", "wmin": "min", "wmax": "max"}
    return "-".join([spec["module"]] + [f"{short[k]}{fmt_value(v)}" for k, v in spec.items() if k != "module"])


def build_module(spec: dict):
    """The Amaranth component of a module spec (:func:`hardware_shape`)."""
    kind = spec["module"]
    if kind == "input_sampler":
        from bshw.input_sampler import InputSampler

        return InputSampler()
    if kind == "neuron":
        from bshw.neuron_periphery import NeuronPeriphery

        return NeuronPeriphery(y_width=spec["y_width"], dx_width=spec["dx_width"], k=spec["k"], tie=spec["tie"],
                               noise_words=tuple(spec["noise_words"]), n_upper=spec["n_upper"])
    if kind == "output_neuron":
        from bshw.neuron_periphery import OutputNeuron

        return OutputNeuron(y_width=spec["y_width"], noise_words=tuple(spec["noise_words"]))
    if kind == "counter":
        from bshw.periodic_carry import PeriodicCarry

        return PeriodicCarry(spec["th"], spec["counter_bits"], spec["wmin"], spec["wmax"])
    raise BshwError(f"unknown periphery module {kind!r}")


def synth_module(spec: dict, work: str) -> dict:
    """Synthesize one module with bshw.synth (iCE40 cells, Fmax, the CMOS transistor proxy).

    ``work``: the module's work folder (Verilog, scripts, logs); where it cannot be created (a worker
    on another machine) a temporary folder is used and removed. bshw.synth keeps its own result there
    and skips the tools when the Verilog is unchanged.
    """
    import tempfile
    from pathlib import Path

    from bshw.io import ensure_dir
    from bshw.synth import find_tools, synth_one, tool_versions

    tools = find_tools()
    versions = tool_versions(tools)
    name = "m_" + module_key(spec).replace("-", "_")
    try:
        folder = ensure_dir(work, "synthesis work folder")
        tmp = None
    except BshwError:
        tmp = tempfile.TemporaryDirectory(prefix="bshw-sweep-synth-")
        folder = Path(tmp.name)
    try:
        res = synth_one(name, build_module(spec), folder, tools, versions, asic=True, log=lambda s: None)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {**res, "tool_versions": versions}


def shape_area(shape: dict | None, modules: dict) -> dict | None:
    """Cells and the transistor proxy of a whole periphery from its modules' synthesis figures.

    ``modules``: module key -> :func:`synth_module` result. Every module of the shape counts once per
    instance: input samplers, neurons, and one gradient counter per synapse (the RTL keeps the
    counters in block RAM; a per-synapse counter bounds that from above). None when a module's
    figures are missing.
    """
    if shape is None:
        return None
    totals = {"luts": 0, "ffs": 0, "transistors": 0}
    per = {}
    for spec, n in shape["modules"]:
        r = modules.get(module_key(spec))
        if r is None or r.get("error"):
            return None
        per[module_key(spec)] = {"count": n, **{k: r.get(k) for k in ("luts", "ffs", "transistors", "fmax_mhz")}}
        for k in totals:
            totals[k] += n * (r.get(k) or 0)
    fmax = [r["fmax_mhz"] for r in per.values() if r.get("fmax_mhz")]
    return {"periphery_luts": totals["luts"], "periphery_ffs": totals["ffs"],
            "periphery_transistors": totals["transistors"], "fmax_mhz": min(fmax) if fmax else None,
            "modules": per}


def energy_synth(shape: dict | None, modules: dict) -> dict | None:
    """The ``synth`` argument of bshw.energy for a shape: its first hidden neuron and input sampler."""
    if shape is None:
        return None
    out = {}
    for spec, _ in shape["modules"]:
        r = modules.get(module_key(spec))
        if r is None or r.get("error"):
            continue
        if spec["module"] == "neuron" and "neuron" not in out:
            out["neuron"] = r
        elif spec["module"] == "input_sampler":
            out["input_sampler"] = r
    return out if "neuron" in out else None

