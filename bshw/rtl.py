"""Verilog of the network top for a configuration: ``bshw rtl`` / ``make rtl`` (docs/arithmetic.md §1).

``generate(cfg, out_dir)`` builds :class:`bshw.network.BshwNet` for the configuration's network shape
and resolved hardware parameters, with the exact golden learner's initial state for ``cfg.seed`` as
its reset state (the same weights, counters and LFSR seeds the trace header lists, §11), and writes
``<out_dir>/bshw_net.v`` and ``<out_dir>/bshw_net.json`` (shape, parameters, port widths: what a bench
needs). The periphery components of the default configuration go beside it (bshw/emit.py). Output is
byte-identical between runs (no source locations); files are written atomically.
"""

import json
import sys
import time
from pathlib import Path

from golden.config import TrainConfig
from golden.errors import BshwError
from golden.io import atomic_write_text

TOP = "bshw_net"
def build(cfg: TrainConfig):
    """``(BshwNet, exact learner)`` for ``cfg``; bad parameters raise BshwError."""
    from bshw.network import BshwNet
    from golden.exact import make_learner
    from golden.exact.trace import header

    if cfg.mode != "exact":
        cfg = TrainConfig.from_dict({**cfg.to_dict(), "mode": "exact"}, where="rtl")
    learner = make_learner(cfg)
    if learner.P["output"] != "onchip":
        raise BshwError("hw.output = 'host': the RTL implements the onchip output layer only (§7)")
    try:
        top = BshwNet(learner.sizes, learner.P, header(learner, cfg.seed)["init"])
    except (TypeError, ValueError) as e:
        raise BshwError(f"cannot build the RTL: {e}") from None
    return top, learner


def describe(learner, cfg, top=None) -> dict:
    """The bench-facing description written beside the Verilog (shape, parameters, widths of §2,
    and the port widths when ``top`` is given)."""
    from bshw.crossbar import dx_width, y_width
    from bshw.periodic_carry import weight_bits

    P, sizes = learner.P, learner.sizes
    b = weight_bits(P["wmin"], P["wmax"])
    L = len(sizes) - 1
    layers = [{"fan_in": sizes[li], "fan_out": sizes[li + 1], "yw": y_width(sizes[li], b), "wbits": b,
               "hidden": li < L - 1, "dxw": dx_width(sizes[li + 2], b) if li < L - 1 else None}
              for li in range(L)]
    desc = {"top": TOP, "sizes": sizes, "params": P, "seed": cfg.seed, "config": cfg.to_dict(),
            "ops": {"train": 0, "carry": 1, "infer": 2, "binary": 3}, "layers": layers}
    if top is not None:
        desc["ports"] = {name: {"width": len(getattr(top, name)), "dir": str(member.flow.value)}
                         for name, member in top.signature.members.items()}
    return desc


def generate(cfg: TrainConfig, out_dir) -> dict:
    """Write ``bshw_net.v`` and ``bshw_net.json`` into ``out_dir``; return ``{"top", "files", "params"}``."""
    from amaranth.back import verilog

    top, learner = build(cfg)
    desc = describe(learner, cfg, top)
    text = verilog.convert(top, name=TOP, emit_src=False)
    out = Path(out_dir)
    files = [atomic_write_text(out / f"{TOP}.v", text),
             atomic_write_text(out / f"{TOP}.json", json.dumps(desc, indent=1, sort_keys=True) + "\n")]
    return {"top": TOP, "files": [str(f) for f in files], "params": learner.P, "sizes": learner.sizes}


def add_arguments(p):
    p.add_argument("--config", help="TOML file with a [train] table (network shape, weights, hw); "
                                    "default: the §1 configuration, 64-32-10 on 8x8 MNIST, INT8")
    p.add_argument("--out", default="rtl", help="output folder (default rtl/)")
    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 32)")
    p.add_argument("--input-side", type=int, help="input images are side x side (default 8)")
    p.add_argument("--seed", type=int, help="reset state = the exact learner's initial state for this seed")
    p.add_argument("--hw", help='hardware parameters as JSON, e.g. \'{"tie": "zero", "deriv_k": 1}\'')
    p.add_argument("--no-components", action="store_true",
                   help="only the network top, not the per-component files of the default configuration")


def run(args) -> int:
    from golden.exact.params import config_from_args

    cfg = config_from_args(args, ("hidden", "input_side", "seed"), where="rtl")
    t0 = time.perf_counter()
    res = generate(cfg, args.out)
    paths = res["files"]
    if not args.no_components:
        from bshw.emit import emit

        paths += [str(p) for p in emit(args.out)]
    for p in paths:
        print(p)
    print(f"network {'-'.join(map(str, res['sizes']))}: {len(paths)} files in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return 0
