"""Verilog of a configuration's periphery and system tops: ``bshw rtl`` / ``make rtl`` (docs/arithmetic.md
§15).

``generate(cfg, out_dir)`` builds :class:`bshw.periphery.BshwPeriphery` for the configuration's network
shape and resolved hardware parameters (:class:`bshw.hwparams.HwParams`), its LFSR reset states
:func:`bshw.core.initial_lfsr_states` for ``cfg.seed`` (the state the golden learner starts from, the
trace header's ``init``, §11), and writes into ``out_dir``:

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

from bshw.core import INPUT_LANES
from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.io import atomic_write_text

PREFIX = "bshw_"
MODEL_FILE = "bshw_crossbar_model.v"


def names(prefix: str = PREFIX) -> dict:
    """Module and file names of one generated design."""
    return {"periphery": f"{prefix}periphery", "system": f"{prefix}system",
            "json": f"{prefix}periphery.json", "model": MODEL_FILE}


def hardware(cfg: TrainConfig):
    """``(sizes, HwParams)`` of ``cfg``'s exact hardware (§12); bad parameters raise BshwError."""
    from bshw.golden.exact.params import ExactParams

    if cfg.mode != "exact":
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "mode": "exact"}, where="rtl")
    return cfg.sizes, ExactParams.from_dict(dict(cfg.hw)).resolve(cfg)


def build(cfg: TrainConfig, *, probes: bool = False, read_latency: int = 1, bank_cols=None, prefix: str = PREFIX,
          input_lanes: int = INPUT_LANES):
    """The :class:`bshw.periphery.BshwPeriphery` of ``cfg``, its LFSRs reset to the state the golden
    learner starts from (:func:`bshw.core.initial_lfsr_states`); bad parameters raise BshwError."""
    from bshw.core import initial_lfsr_states
    from bshw.periphery import BshwPeriphery

    sizes, P = hardware(cfg)
    if P.output != "onchip":
        raise BshwError("hw.output = 'host': the RTL implements the onchip output layer only (§7)")
    init = initial_lfsr_states(sizes, cfg.seed, P.output)
    try:
        return BshwPeriphery(sizes, P, seeds={"lfsr_in": init["lfsr_in"], "lfsr": init["lfsr"]},
                             probes=probes, read_latency=read_latency, bank_cols=bank_cols,
                             input_lanes=input_lanes)
    except (TypeError, ValueError) as e:
        raise BshwError(f"cannot build the RTL: {e}") from None


def describe(cfg, top, prefix: str = PREFIX) -> dict:
    """The bench-facing description written beside the Verilog (shape, parameters, widths of §2,
    clocks per operation of §15, and the ports from the component's metadata)."""
    from bshw.core import op_cycles
    from bshw.periphery import Op

    P, sizes, L = top.params, top.sizes, top.L
    layers = []
    for li, mac in enumerate(top.macros):
        hidden = li < L - 1
        layers.append({"fan_in": mac.fan_in, "fan_out": mac.fan_out, "yw": mac.yw, "wbits": mac.wbits,
                       "hidden": hidden, "dxw": top.macros[li + 1].dxw if hidden else None,
                       "macro_dxw": mac.dxw if mac.backward else None,
                       "bank_cols": top.counters[li].bank_cols, "banks": top.counters[li].n_banks})
    k, lat, lanes = top.k, top.read_latency, top.input_lanes
    return {"top": names(prefix)["periphery"], "system": names(prefix)["system"], "sizes": sizes, "params": P.as_dict(),
            "seed": cfg.seed, "config": cfg.to_dict(), "probes": top.probes, "read_latency": lat,
            "input_lanes": lanes,
            "ops": {op.name.lower(): op.value for op in Op},
            "cycles": {"carry": op_cycles("carry", sizes, k, lat), "infer": op_cycles("infer", sizes, k, lat, None, lanes),
                       "binary": op_cycles("binary", sizes, k, lat),
                       "train_no_rows": op_cycles("train", sizes, k, lat, [0] * L, lanes),
                       "train_all_rows": op_cycles("train", sizes, k, lat, sizes[:-1], lanes)},
            "layers": layers, "ports": top.metadata.as_json()["interface"]["members"]}


def write_design(out_dir, top, desc: dict, prefix: str = PREFIX) -> list:
    """Convert ``top`` (and its system top) and write the four files of a design into ``out_dir``:
    periphery (with its leaf cells), system, macro model, description. Returns the paths, in that order."""
    from amaranth.back import verilog

    from bshw.host_wrapper import write_host
    from bshw.system import BshwSystem, model_verilog

    n = names(prefix)
    periphery = verilog.convert(top, name=n["periphery"], emit_src=False)
    system = verilog.convert(BshwSystem(top, n["periphery"]), name=n["system"], emit_src=False)
    out = Path(out_dir)
    return [atomic_write_text(out / f"{n['periphery']}.v", periphery),
            atomic_write_text(out / f"{n['system']}.v", system),
            atomic_write_text(out / n["model"], model_verilog()),
            atomic_write_text(out / n["json"], json.dumps(desc, indent=1, sort_keys=True) + "\n"),
            *write_integration(out, desc, prefix),
            *write_host(out, top, prefix)]  # the host wrapper (streams + Wishbone), bshw/host_wrapper.py


LINT_WAIVERS = "bshw_lint.vlt"
VERSION = "0.1.0"


def write_integration(out: Path, desc: dict, prefix: str = PREFIX) -> list:
    """What a Verilog user needs beside the files of a design (issue 20): filelists, a FuseSoC core,
    the Verilator lint waivers, and the port reference generated from the design's own metadata."""
    from importlib import resources

    from bshw.host_wrapper import LINT_WAIVERS as HOST_WAIVERS
    from bshw.host_wrapper import names as host_names

    n = names(prefix)
    per, system, model = f"{n['periphery']}.v", f"{n['system']}.v", n["model"]
    host, host_system = f"{host_names(prefix)['host']}.v", f"{host_names(prefix)['host_system']}.v"
    core_name = f"{n['periphery']}"
    core = "\n".join([
        "CAPI=2:",
        f"# Generated by bshw rtl: the {'-'.join(map(str, desc['sizes']))} periphery (docs/arithmetic.md §15).",
        f"name: bshw:bshw:{core_name}:{VERSION}",
        "description: Binary stochastic learning periphery (input samplers, neurons, counter memories, "
        "sequencer) with one crossbar-macro interface per layer",
        "filesets:",
        "  rtl:",
        "    files:",
        f"      - {per}",
        f"      - {host}",
        "    file_type: verilogSource",
        "  model:",
        "    files:",
        f"      - {system}",
        f"      - {host_system}",
        f"      - {model}",
        "    file_type: verilogSource",
        "  lint_waivers:",
        "    files:",
        f"      - {LINT_WAIVERS}",
        "    file_type: vlt",
        "  tb:  # written by bshw rtl --testbench TRACE",
        "    files:",
        "      - bshw_tb.sv: {file_type: systemVerilogSource}",
        "      - bshw_tb.stim: {file_type: user, copyto: bshw_tb.stim}",
        "targets:",
        "  default:",
        "    filesets: [rtl]",
        f"    toplevel: {n['periphery']}",
        *_lint_target("lint", n["periphery"]),
        "  host:  # the periphery behind its host wrapper: sample/result streams, Wishbone registers",
        "    filesets: [rtl]",
        f"    toplevel: {host_names(prefix)['host']}",
        *_lint_target("lint_host", host_names(prefix)["host"]),
        "  sim:",
        "    default_tool: icarus",
        "    filesets: [rtl, model, tb]",
        "    tools:",
        "      icarus:",
        "        iverilog_options: [-g2012]",
        "    toplevel: bshw_tb",
        ""])
    waivers = resources.files("bshw").joinpath("verilog", LINT_WAIVERS).read_text() + HOST_WAIVERS
    return [atomic_write_text(out / f"{n['periphery']}.f", f"{per}\n{host}\n"),
            atomic_write_text(out / f"{n['system']}.f", f"{per}\n{system}\n{model}\n"),
            atomic_write_text(out / f"{core_name}.core", core),
            atomic_write_text(out / LINT_WAIVERS, waivers),
            atomic_write_text(out / f"{n['periphery']}.md", port_reference(desc))]


def _lint_target(name: str, toplevel: str) -> list:
    """A FuseSoC target that lints ``toplevel`` with Verilator -Wall and the waivers."""
    return [f"  {name}:", "    default_tool: verilator", "    filesets: [rtl, lint_waivers]", "    tools:",
            "      verilator:", "        mode: lint-only", "        verilator_options: [-Wall]",
            f"    toplevel: {toplevel}"]


def port_reference(desc: dict) -> str:
    """The Markdown port reference of a design, built from its metadata (``desc['ports']``, Amaranth's
    ``Component.metadata.as_json()``) and its clock formula: no hand-kept copy."""
    from bshw.core import op_cycles  # noqa: F401  (the formula the table's figures come from)

    meaning = {
        "start": "pulse one clock (in IDLE) to start the operation on `op`",
        "op": "operation: " + ", ".join(f"{v} {k.upper()}" for k, v in sorted(desc["ops"].items(), key=lambda kv: kv[1])),
        "busy": "high from the clock after `start` until the operation ends",
        "done": "high for the operation's last clock; results hold until the next `start`",
        "pixels": f"{desc['sizes'][0]} input bytes, pixel i at bits [8i+7:8i]",
        "label": "the sample's class (TRAIN)",
        "pred": "the class of the last INFER/BINARY",
        "mem_layer": "host port: layer of the addressed row (0-based)", "mem_row": "host port: row (input index)",
        "mem_we_w": "host port: write the row's levels (programs the macro)",
        "mem_we_c": "host port: write the row's counters", "mem_re": "host port: read the row's levels and counters",
        "mem_rvalid": "host port: `mem_rdata_*` hold the row read", "mem_wdata_w": "host port: levels, column j at wbits*j",
        "mem_wdata_c": "host port: counters, column j at counter_bits*j", "mem_rdata_w": "host port: levels read",
        "mem_rdata_c": "host port: counters read",
        "lfsr_sel": "host port: LFSR stream (pixels, then the neurons layer by layer)", "lfsr_we": "host port: load it",
        "lfsr_wdata": "host port: state to load",
        "lfsr_rdata": "host port: the state of the stream `lfsr_sel` named on the clock before (synchronous read)",
    }
    rows = []
    for name, p in desc["ports"].items():
        if "width" in p:
            rows.append(f"| `{name}` | {p['dir']} | {p['width']} | {meaning.get(name, 'debug probe (docs/arithmetic.md §15)')} |")
        elif name == "host":  # the host sub-interface (bshw.periphery.HostSignature)
            for mname, m in p["members"].items():
                rows.append(f"| `{m['name']}` | {m['dir']} | {m['width']} | {meaning[mname]} |")
        else:  # a crossbar-macro interface (sub-signature)
            for mname, m in p["members"].items():
                rows.append(f"| `{m['name']}` | {m['dir']} | {m['width']} | crossbar macro of layer "
                            f"{name[2:]}: `{mname}` (docs/arithmetic.md §15 macro pins) |")
    cyc = desc["cycles"]
    ops = "\n".join(f"| {k} | {v} |" for k, v in sorted(cyc.items()))
    return (f"# `{desc['top']}`: ports (generated by bshw rtl from the design's metadata)\n\n"
            f"Network {'-'.join(map(str, desc['sizes']))}; hardware parameters "
            + ", ".join(f"{k} = {v}" for k, v in sorted(desc["params"].items()))
            + f"; macro read latency {desc['read_latency']} clock(s); input samplers {desc['input_lanes']} pixels a "
            f"clock; probes {'on' if desc['probes'] else 'off'}.\n\n"
            "| port | direction | bits | meaning |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "Clocks per operation (docs/arithmetic.md §15 formula; TRAIN depends on the rows walked):\n\n"
            "| operation | clocks |\n|---|---|\n" + ops + "\n")


def generate(cfg: TrainConfig, out_dir, *, probes: bool = False, read_latency: int = 1, bank_cols=None,
             prefix: str = PREFIX, input_lanes: int = INPUT_LANES) -> dict:
    """Write the periphery, system and macro-model Verilog and the description into ``out_dir``;
    return ``{"top", "system", "files", "verilog", "desc", "params", "sizes"}``."""
    top = build(cfg, probes=probes, read_latency=read_latency, bank_cols=bank_cols, input_lanes=input_lanes)
    n = names(prefix)
    files = write_design(out_dir, top, describe(cfg, top, prefix), prefix)
    return {"top": n["periphery"], "system": n["system"], "files": [str(f) for f in files],
            "verilog": [str(f) for f in files[:3]], "desc": str(files[3]), "params": top.params,
            "sizes": top.sizes}


def add_arguments(p):
    p.add_argument("--config", help="TOML file with a [train] table (network shape, weights, hw); "
                                    "default: the §1 configuration, 64-32-10 on 8x8 MNIST, INT8")
    p.add_argument("--out", default="rtl", help="output folder (default rtl/)")
    from bshw.cli import add_hidden

    add_hidden(p, "hidden layer sizes, e.g. 32 or 500,200 (default 32)")
    p.add_argument("--input-side", type=int, help="input images are side x side (default 8)")
    p.add_argument("--seed", type=int, help="LFSR reset states = the exact learner's initial state for this seed")
    p.add_argument("--hw", help='hardware parameters as JSON, e.g. \'{"tie": "zero", "deriv_k": 1}\'')
    p.add_argument("--probes", action="store_true", help="add the debug probe ports the benches compare")
    p.add_argument("--read-latency", type=int, default=1, help="clocks from a macro read strobe to its data (default 1)")
    p.add_argument("--bank-cols", type=int, help="counter-memory columns per bank (must divide every layer's width)")
    p.add_argument("--input-lanes", type=int, default=INPUT_LANES,
                   help=f"pixels the input samplers draw per clock, a power of two (default {INPUT_LANES}; "
                        "the draw walks ceil(pixels / lanes) clocks)")
    p.add_argument("--prefix", default=PREFIX, help=f"module-name prefix (default {PREFIX})")
    p.add_argument("--no-components", action="store_true",
                   help="only the tops, not the per-component files (sized for this configuration)")
    p.add_argument("--testbench", metavar="TRACE",
                   help="also write a Python-free SystemVerilog bench (bshw_tb.sv, bshw_tb.stim, bshw_tb.f) that "
                        "replays this golden trace on the system top; implies --probes (bshw/testbench.py)")
    p.add_argument("--infer", type=int, default=0, metavar="N",
                   help="with --testbench: also N test images, binary and one stochastic vote (default 0)")
    p.add_argument("--tb-host", action="store_true",
                   help="with --testbench: the bench runs the host system top, loads and reads the state through "
                        "the host wrapper's Wishbone registers and runs every operation through its sample and "
                        "result streams (bshw/host_wrapper.py)")


def run(args) -> int:
    from bshw.golden.exact.params import config_from_args

    if not args.prefix.replace("_", "a").isalnum() or args.prefix[:1].isdigit():
        raise BshwError(f"--prefix {args.prefix!r}: letters, digits and _ only, not starting with a digit")
    from bshw.io import check_writable

    if args.infer < 0 or (args.infer and not args.testbench):
        raise BshwError(f"--infer {args.infer}: a whole number >= 0, with --testbench")
    if getattr(args, "tb_host", False) and not args.testbench:
        raise BshwError("--tb-host: only with --testbench TRACE")
    cfg = config_from_args(args, ("hidden", "input_side", "seed"), where="rtl")
    check_writable(args.out, folder=True, what="RTL")  # before the conversion, not after it
    t0 = time.perf_counter()
    probes = args.probes or bool(args.testbench)
    if args.testbench:  # refuse a trace of another design before anything is written
        from bshw.testbench import check_trace

        top = build(cfg, probes=True, read_latency=args.read_latency, bank_cols=args.bank_cols, prefix=args.prefix,
                    input_lanes=args.input_lanes)
        desc = describe(cfg, top, args.prefix)
        for obj in (top, *top.counters):  # only described here; generate() builds the one emitted
            obj._MustUse__silence = True
        check_trace(args.testbench, desc)
    res = generate(cfg, args.out, probes=probes, read_latency=args.read_latency, bank_cols=args.bank_cols,
                   prefix=args.prefix, input_lanes=args.input_lanes)
    paths = res["files"]
    if args.testbench:
        from bshw.testbench import commands, write_testbench

        tb = write_testbench(args.testbench, args.out, desc=json.loads(Path(res["desc"]).read_text()),
                             infer_samples=args.infer, via_host=getattr(args, "tb_host", False))
        paths += [str(tb["testbench"]), str(tb["stimulus"]), str(tb["filelist"])]
        print(f"testbench: {tb['steps']} steps, {tb['samples']} training samples, {tb['infer']} test images, "
              f"{tb['checks']} checks; run it with\n  {commands(args.out)['icarus']}\n  {commands(args.out)['verilator']}",
              file=sys.stderr)
    if not args.no_components:
        from bshw.emit import emit

        # the components of this design (its widths, tie rule, counter and weight range), not the default's
        paths += [str(p) for p in emit(args.out, json.loads(Path(res["desc"]).read_text()), args.prefix)]
    for p in paths:
        print(p)
    size = sum(Path(p).stat().st_size for p in res["verilog"][:1])
    print(f"network {'-'.join(map(str, res['sizes']))}: {len(paths)} files in {time.perf_counter() - t0:.1f} s "
          f"(periphery {size / 1e6:.2f} MB)", file=sys.stderr)
    return 0
