"""Verilog of a configuration's periphery and system tops: ``bshw rtl`` / ``make rtl`` (docs/arithmetic.md
§15).

``generate(cfg, out_dir)`` builds :class:`bshw.periphery.BshwPeriphery` for the configuration's network
shape and resolved hardware parameters, its LFSR reset states those of the exact golden learner for
``cfg.seed`` (the trace header's, §11), and writes into ``out_dir``:

- ``<prefix>periphery.v``: the synthesizable periphery top and its submodules (one bank of samplers or
  neurons per layer, one counter memory per layer), with one crossbar-macro interface per layer
  (bshw/macro.py);
- ``<prefix>system.v``: the system top, the periphery wired to one behavioral macro per layer;
- ``bshw_crossbar_model.v``: that behavioral Verilog macro model (the same file for every size);
- ``<prefix>periphery.json``: shape, parameters, widths, clocks per operation and the ports (from
  ``Component.metadata``) - what a bench reads.

Output is byte-identical between runs (no source locations); files are written atomically.
"""

import json
import sys
import time
from pathlib import Path

from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.io import atomic_write_text

PREFIX = "bshw_"
MODEL_FILE = "bshw_crossbar_model.v"


def names(prefix: str = PREFIX) -> dict:
    """Module and file names of one generated design."""
    return {"periphery": f"{prefix}periphery", "system": f"{prefix}system",
            "json": f"{prefix}periphery.json", "model": MODEL_FILE}


def build(cfg: TrainConfig, *, probes: bool = False, read_latency: int = 1, bank_cols=None, prefix: str = PREFIX):
    """``(BshwPeriphery, exact learner)`` for ``cfg``; bad parameters raise BshwError."""
    from bshw.golden.exact import make_learner
    from bshw.golden.exact.trace import header
    from bshw.periphery import BshwPeriphery

    if cfg.mode != "exact":
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "mode": "exact"}, where="rtl")
    learner = make_learner(cfg)
    if learner.P["output"] != "onchip":
        raise BshwError("hw.output = 'host': the RTL implements the onchip output layer only (§7)")
    init = header(learner, cfg.seed)["init"]
    try:
        top = BshwPeriphery(learner.sizes, learner.P, seeds={"lfsr_in": init["lfsr_in"], "lfsr": init["lfsr"]},
                            probes=probes, read_latency=read_latency, bank_cols=bank_cols)
    except (TypeError, ValueError) as e:
        raise BshwError(f"cannot build the RTL: {e}") from None
    return top, learner


def describe(learner, cfg, top, prefix: str = PREFIX) -> dict:
    """The bench-facing description written beside the Verilog (shape, parameters, widths of §2,
    clocks per operation of §15, and the ports from the component's metadata)."""
    from bshw.core import op_cycles
    from bshw.periphery import Op

    P, sizes, L = learner.P, learner.sizes, len(learner.sizes) - 1
    layers = []
    for li, mac in enumerate(top.macros):
        hidden = li < L - 1
        layers.append({"fan_in": mac.fan_in, "fan_out": mac.fan_out, "yw": mac.yw, "wbits": mac.wbits,
                       "hidden": hidden, "dxw": top.macros[li + 1].dxw if hidden else None,
                       "macro_dxw": mac.dxw if mac.backward else None,
                       "bank_cols": top.counters[li].bank_cols, "banks": top.counters[li].n_banks})
    k, lat = top.k, top.read_latency
    return {"top": names(prefix)["periphery"], "system": names(prefix)["system"], "sizes": sizes, "params": P,
            "seed": cfg.seed, "config": cfg.to_dict(), "probes": top.probes, "read_latency": lat,
            "ops": {op.name.lower(): op.value for op in Op},
            "cycles": {"carry": op_cycles("carry", sizes, k, lat), "infer": op_cycles("infer", sizes, k, lat),
                       "binary": op_cycles("binary", sizes, k, lat),
                       "train_no_rows": op_cycles("train", sizes, k, lat, [0] * L),
                       "train_all_rows": op_cycles("train", sizes, k, lat, sizes[:-1])},
            "layers": layers, "ports": top.metadata.as_json()["interface"]["members"]}


def write_design(out_dir, top, desc: dict, prefix: str = PREFIX) -> list:
    """Convert ``top`` (and its system top) and write the four files of a design into ``out_dir``:
    periphery (with its leaf cells), system, macro model, description. Returns the paths, in that order."""
    from amaranth.back import verilog

    from bshw.system import BshwSystem, model_verilog

    n = names(prefix)
    periphery = verilog.convert(top, name=n["periphery"], emit_src=False)
    system = verilog.convert(BshwSystem(top, n["periphery"]), name=n["system"], emit_src=False)
    out = Path(out_dir)
    return [atomic_write_text(out / f"{n['periphery']}.v", periphery),
            atomic_write_text(out / f"{n['system']}.v", system),
            atomic_write_text(out / n["model"], model_verilog()),
            atomic_write_text(out / n["json"], json.dumps(desc, indent=1, sort_keys=True) + "\n")]


def generate(cfg: TrainConfig, out_dir, *, probes: bool = False, read_latency: int = 1, bank_cols=None,
             prefix: str = PREFIX) -> dict:
    """Write the periphery, system and macro-model Verilog and the description into ``out_dir``;
    return ``{"top", "system", "files", "verilog", "desc", "params", "sizes"}``."""
    top, learner = build(cfg, probes=probes, read_latency=read_latency, bank_cols=bank_cols)
    n = names(prefix)
    files = write_design(out_dir, top, describe(learner, cfg, top, prefix), prefix)
    return {"top": n["periphery"], "system": n["system"], "files": [str(f) for f in files],
            "verilog": [str(f) for f in files[:3]], "desc": str(files[3]), "params": learner.P,
            "sizes": learner.sizes}


def add_arguments(p):
    p.add_argument("--config", help="TOML file with a [train] table (network shape, weights, hw); "
                                    "default: the §1 configuration, 64-32-10 on 8x8 MNIST, INT8")
    p.add_argument("--out", default="rtl", help="output folder (default rtl/)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 32)")
    p.add_argument("--input-side", type=int, help="input images are side x side (default 8)")
    p.add_argument("--seed", type=int, help="LFSR reset states = the exact learner's initial state for this seed")
    p.add_argument("--hw", help='hardware parameters as JSON, e.g. \'{"tie": "zero", "deriv_k": 1}\'')
    p.add_argument("--probes", action="store_true", help="add the debug probe ports the benches compare")
    p.add_argument("--read-latency", type=int, default=1, help="clocks from a macro read strobe to its data (default 1)")
    p.add_argument("--bank-cols", type=int, help="counter-memory columns per bank (must divide every layer's width)")
    p.add_argument("--prefix", default=PREFIX, help=f"module-name prefix (default {PREFIX})")
    p.add_argument("--no-components", action="store_true",
                   help="only the tops, not the per-component files of the default configuration")


def run(args) -> int:
    from bshw.golden.exact.params import config_from_args

    if not args.prefix.replace("_", "a").isalnum() or args.prefix[:1].isdigit():
        raise BshwError(f"--prefix {args.prefix!r}: letters, digits and _ only, not starting with a digit")
    from bshw.io import check_writable

    cfg = config_from_args(args, ("hidden", "input_side", "seed"), where="rtl")
    check_writable(args.out, folder=True, what="RTL")  # before the conversion, not after it
    t0 = time.perf_counter()
    res = generate(cfg, args.out, probes=args.probes, read_latency=args.read_latency, bank_cols=args.bank_cols,
                   prefix=args.prefix)
    paths = res["files"]
    if not args.no_components:
        from bshw.emit import emit

        paths += [str(p) for p in emit(args.out)]
    for p in paths:
        print(p)
    size = sum(Path(p).stat().st_size for p in res["verilog"][:1])
    print(f"network {'-'.join(map(str, res['sizes']))}: {len(paths)} files in {time.perf_counter() - t0:.1f} s "
          f"(periphery {size / 1e6:.2f} MB)", file=sys.stderr)
    return 0
