"""``bshw sweep``: train a grid of configurations as Ray tasks, with energy and hardware figures.

``bshw sweep --config SWEEP.toml [--address ADDR] [--workers N] [--out DIR]`` expands the file's
grid (:mod:`bshw.sweep.spec`), runs every point not yet done as a Ray task
(:mod:`bshw.sweep.runner`; the point's work: :mod:`bshw.sweep.point`) and writes ``results.csv``,
``results.json`` and ``report.html`` (:mod:`bshw.sweep.report`). Usage, file format, outputs,
presets and restart rules: docs/sweep.md.

Exit status: 0 when every point is done, 1 when some failed (their errors are recorded), 2 for bad
input (one line, before anything starts), 130 after Ctrl-C (finished points kept).
"""

import os
from pathlib import Path

from bshw.errors import BshwError

PRESET_DIR = Path(__file__).resolve().parent.parent / "configs" / "sweeps"  # shipped as package data


def resolve_preset(name) -> Path:
    """A sweep file's path, or the name of a shipped preset (``ed-fig5``, ``weights``, ``hardware``,
    ``tiny``; bshw/configs/sweeps/)."""
    p = Path(name)
    if p.exists() or (p.suffix == ".toml" and len(p.parts) > 1):
        return p
    shipped = PRESET_DIR / (p.name if p.suffix == ".toml" else f"{p.name}.toml")
    return shipped if len(p.parts) == 1 and shipped.is_file() else p


def add_arguments(p):
    p.add_argument("--config", required=True, metavar="SWEEP.toml",
                   help="sweep file ([train], [grid], [zip], [sweep]) or a preset name: "
                        + ", ".join(sorted(f.stem for f in PRESET_DIR.glob("*.toml"))))
    p.add_argument("--address", metavar="ADDR", help="join a running Ray cluster (auto, HOST:PORT, ray://HOST:PORT); "
                                                     "default: start Ray here")
    p.add_argument("--workers", metavar="N", help="local Ray CPUs, one point per CPU (default: all cores); with "
                                                  "--address, the most points in flight")
    p.add_argument("--out", metavar="DIR", help="sweep folder (default runs/sweep-<name>); a rerun skips its done points")
    p.add_argument("--epochs", metavar="N", help="override [train] epochs on every point")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from bshw.io import check_writable
    from bshw.sweep.runner import check_address, check_workers, run_sweep
    from bshw.sweep.spec import load_sweep

    # every check before anything is created or started
    workers = check_workers(args.workers) if args.workers is not None else None
    overrides = {}
    if args.epochs is not None:
        try:
            overrides["epochs"] = int(args.epochs)
        except ValueError:
            raise BshwError(f"--epochs {args.epochs!r}: expected a whole number") from None
    sweep = load_sweep(resolve_preset(args.config), overrides)
    out = Path(args.out) if args.out is not None else Path("runs") / f"sweep-{sweep.path.stem}"
    if not str(out).strip() or "\0" in str(out):
        raise BshwError(f"--out {args.out!r}: expected a folder path")
    check_writable(out, folder=True, what="sweep folder")
    if (out / "points").exists() and not (out / "points").is_dir():
        raise BshwError(f"--out {out}: {out / 'points'} is a file, not a folder")
    address = check_address(args.address) if args.address is not None else None
    if address is None:
        workers = workers or os.cpu_count() or 1
        _check_local_devices(sweep)
    res = run_sweep(sweep, out, workers=workers, address=address, progress=not args.quiet)
    s = res["summary"]
    best = f"; best {s['best']['label']} ({100 * s['best']['test_error_hp']:.2f} % HP)" if s.get("best") else ""
    print(f"{out}: {res['ok']}/{res['points']} points ok ({res['skipped']} done earlier, {res['ran']} run now), "
          f"{res['failed']} failed{best}; {out / 'report.html'}")
    return 1 if res["failed"] else 0


def _check_local_devices(sweep):
    """A point on cuda needs a CUDA device on this machine when Ray runs here."""
    cuda = sorted({p.train["device"] for p in sweep.points if p.train["device"].startswith("cuda")})
    if cuda:
        import torch

        if not torch.cuda.is_available():
            raise BshwError(f"device = {cuda[0]!r}: no CUDA device on this machine (join a cluster with GPUs: --address)")
