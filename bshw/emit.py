"""Verilog emission of the neuron-periphery RTL (docs/arithmetic.md §1 default configuration).

``python -m bshw.emit --out rtl/`` writes one ``<name>.v`` per component, through
``amaranth.back.verilog.convert`` (no source-location attributes, so the output does not depend on
the checkout path and is byte-identical between runs). Files are written atomically.
"""

import argparse
import sys

from bshw.io import atomic_write_text


def components() -> dict:
    """``{module name: factory}`` of the default configuration of §1 (64-32-10, INT8, k = 4)."""
    from bshw.derivative_sampler import DerivativeSampler
    from bshw.error_driver import ErrorDriver
    from bshw.lfsr import Lfsr
    from bshw.neuron import ComparatorNeuron
    from bshw.periodic_carry import PeriodicCarry

    return {
        "bshw_lfsr_n32": lambda: Lfsr.n32(19),  # §3/§4: W = 7 + 7 + 5 fresh bits per draw
        "bshw_lfsr_i16": lambda: Lfsr.i16(),  # §5
        "bshw_comparator_neuron": lambda: ComparatorNeuron(14, (7, 7, 5)),  # §4, layer-1 y width (§2)
        "bshw_derivative_sampler": lambda: DerivativeSampler(4),  # §6
        "bshw_error_driver": lambda: ErrorDriver(12, 10, "gated"),  # §7, dx width of layer 1 (§2)
        "bshw_periodic_carry": lambda: PeriodicCarry(8, 8, -128, 127),  # §9: th = 8, 8-bit counter
    }


def emit(out_dir) -> list:
    """Write every component's Verilog into ``out_dir``; return the paths written."""
    from amaranth.back import verilog

    from bshw.io import ensure_dir

    out_dir = ensure_dir(out_dir, "RTL folder")  # a bad folder fails before the slow conversion
    paths = []
    for name, make in components().items():
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
