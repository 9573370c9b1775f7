"""Verilog emission of the neuron-periphery components (default: docs/arithmetic.md §1 configuration;
``bshw rtl`` passes its design's description, so the components follow its configuration).

``python -m bshw.emit --out rtl/`` writes one ``<name>.v`` per component, through
``amaranth.back.verilog.convert`` (no source-location attributes, so the output does not depend on
the checkout path and is byte-identical between runs). Files are written atomically.
"""

import argparse
import sys

from bshw.io import atomic_write_text


# the §1 default configuration (64-32-10, INT8, k = 4): what ``components()`` builds without a description
DEFAULT_DESC = {"params": {"noise_bits": 19, "noise_words": [7, 7, 5], "deriv_k": 4, "tie": "gated", "th": 8,
                           "counter_bits": 8, "wmin": -128, "wmax": 127},
                "layers": [{"yw": 14, "dxw": 12, "fan_out": 32}, {"fan_out": 10}]}


def components(desc: dict | None = None, prefix: str = "bshw_") -> dict:
    """``{module name: factory}`` of one design's components, sized by its description ``desc`` (the
    ``<prefix>periphery.json`` of :func:`bshw.rtl.describe`: hardware parameters, first layer's y and dx
    widths, the upper layer's width); None: the default configuration of §1 (64-32-10, INT8, k = 4).
    A single-layer net has no error driver (no hidden layer to drive)."""
    from bshw.derivative_sampler import DerivativeSampler
    from bshw.error_driver import ErrorDriver
    from bshw.hwparams import HwParams
    from bshw.lfsr import Lfsr
    from bshw.neuron import ComparatorNeuron
    from bshw.periodic_carry import PeriodicCarry

    d = desc or DEFAULT_DESC
    P, first = HwParams.from_dict(d["params"]), d["layers"][0]
    out = {
        f"{prefix}lfsr_n32": lambda: Lfsr.n32(P.noise_bits),  # §3/§4: W fresh bits per draw
        f"{prefix}lfsr_i16": lambda: Lfsr.i16(),  # §5
        f"{prefix}comparator_neuron": lambda: ComparatorNeuron(first["yw"], tuple(P.noise_words)),  # §4, layer-1 y
        f"{prefix}derivative_sampler": lambda: DerivativeSampler(P.deriv_k),  # §6
    }
    if first.get("dxw") and len(d["layers"]) > 1:  # §7, dx width of layer 1 (§2), fed by layer 2's neurons
        out[f"{prefix}error_driver"] = lambda: ErrorDriver(first["dxw"], d["layers"][1]["fan_out"], P.tie)
    out[f"{prefix}periodic_carry"] = lambda: PeriodicCarry(P.th, P.counter_bits, P.wmin, P.wmax)  # §9
    return out


def emit(out_dir, desc: dict | None = None, prefix: str = "bshw_") -> list:
    """Write every component's Verilog (of ``desc``'s design, None: the default) into ``out_dir``;
    return the paths written."""
    from amaranth.back import verilog

    from bshw.io import ensure_dir

    out_dir = ensure_dir(out_dir, "RTL folder")  # a bad folder fails before the slow conversion
    paths = []
    for name, make in components(desc, prefix).items():
        text = verilog.convert(make(), name=name, emit_src=False)
        paths.append(atomic_write_text(out_dir / f"{name}.v", text))
    return paths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="rtl", help="output folder (default: rtl/)")


def run(args) -> int:
    from bshw.io import check_writable

    check_writable(args.out, folder=True, what="RTL")  # before the slow conversion
    for p in emit(args.out):
        print(p)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bshw.emit", description=__doc__.splitlines()[0])
    add_arguments(parser)
    from bshw.errors import BshwError

    try:
        return run(parser.parse_args(argv))
    except BshwError as e:
        print(f"bshw.emit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
