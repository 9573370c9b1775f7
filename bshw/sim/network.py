"""Run the network bench (bshw/sim/bench_network.py) on a golden trace: ``run_network``.

Used by pytest (tests/test_sim_network.py), ``make sim`` and ``bshw flow``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bshw.errors import BshwError
from bshw.io import atomic_write_text


# the largest net whose whole state the bench reads after every operation by default (rows of every
# layer plus LFSR streams); the 784-input nets are read at batch ends (run_network ``state_check``)
STATE_EVERY_OP_ROWS = 512


def _rtl_for(header: dict, rtl_dir, build_dir, read_latency: int = 1) -> dict:
    """The probed RTL for the trace's shape and parameters: the one in ``rtl_dir`` if it was made
    for them (with probes), else generated into ``build_dir/rtl``. Returns the description's path and
    the Verilog files (``{"desc", "periphery", "system", "model", "top", "system_top"}``)."""
    from bshw.golden.config import TrainConfig

    sizes = [x["fan_in"] for x in header["layers"]] + [header["layers"][-1]["fan_out"]]
    folder = None
    if rtl_dir is not None:
        for j in sorted(Path(rtl_dir).glob("*periphery.json")):
            desc = json.loads(j.read_text())
            if (desc.get("sizes") == sizes and desc.get("params") == header["params"] and desc.get("probes")
                    and desc.get("read_latency") == read_latency and "input_lanes" in desc):  # else made before the input walk
                folder, top, system = Path(rtl_dir), desc["top"], desc["system"]
                break
    if folder is None:
        from bshw.rtl import generate

        cfg = TrainConfig.from_dict(header["config"], where="trace header")
        res = generate(cfg, Path(build_dir) / "rtl", probes=True, read_latency=read_latency)
        folder, top, system = Path(build_dir) / "rtl", res["top"], res["system"]
    return {"desc": folder / f"{top}.json", "periphery": folder / f"{top}.v", "system": folder / f"{system}.v",
            "model": folder / "bshw_crossbar_model.v", "top": top, "system_top": system}


def expected_inference(header: dict, last_step: dict | None, n_samples: int) -> dict:
    """The golden learner's predictions on the first ``n_samples`` test images from the state the
    trace ends in: ``last_step``'s weights, counters and LFSR states (§11), or the header's initial
    state when ``last_step`` is None. ``{"pixels", "binary", "stochastic" (one vote each)}``.

    The state comes from the trace itself, not from replaying training on the data set's images,
    so a trace of any stimulus (random images included) gives the right expectation."""
    import torch

    from bshw.golden.config import TrainConfig
    from bshw.golden.data import load_dataset
    from bshw.golden.exact import make_learner

    cfg = TrainConfig.from_dict(header["config"], where="trace header")
    data = load_dataset(cfg.dataset_name, cfg.data)
    learner = make_learner(cfg)
    init = header["init"]
    if last_step is None:
        W, C, lfsr_in, lfsr = init["weights"], init["counters"], init["lfsr_in"], init["lfsr"]
        G, dev_lfsr = init.get("conductance"), init.get("device_lfsr")
    else:
        W = [u["weights"] for u in last_step["update"]]
        C = [u["counter"] for u in last_step["update"]]
        lfsr_in, lfsr = last_step["lfsr_in_end"], last_step["lfsr_end"]
        G = [u["conductance"] for u in last_step["update"]] if "conductance" in last_step["update"][0] else None
        dev_lfsr = last_step.get("device_lfsr_end")
    T = torch.tensor
    state = {"kind": "bshw-exact", "version": 1, "params": header["params"],
             "weights": [T(w) for w in W], "counters": [T(c) for c in C],
             "lfsr_in": T(lfsr_in), "lfsr": [None if s is None else T(s) for s in lfsr],
             "host_lfsr": None if init.get("host_lfsr") is None else T(init["host_lfsr"])}
    if G is not None:  # §16: a device model's conductances and write-noise streams
        state.update(conductance=[T(g) for g in G], device_lfsr=[T(s) for s in dev_lfsr])
    learner.load_state_dict(state)
    x = data.test_x[:n_samples]
    with torch.no_grad():
        binary = learner.predict(x, "binary")
        stochastic = learner.predict(x, "stochastic", votes=1)
    end = learner.state_dict()  # after the votes: the LFSR states the hardware must hold at the end
    return {"pixels": learner._pixels(x).tolist(), "binary": binary.tolist(), "stochastic": stochastic.tolist(),
            "lfsr_end": end["lfsr_in"].tolist() + [v for b in end["lfsr"] for v in b.tolist()]}


def write_random_trace(path, over: dict, steps: int, batch: int, seed: int = 7) -> Path:
    """A golden trace of ``steps`` batches of uniformly random images and labels (random stimulus for
    the benches), for the exact-mode configuration ``over``; written once, atomically."""
    import torch

    from bshw.golden.config import TrainConfig
    from bshw.golden.exact.trace import make_trace

    path = Path(path)
    if not path.is_file():
        cfg = TrainConfig.from_dict({"weights": "int8", "mode": "exact", "batch": batch, "seed": seed, **over},
                                    where="random trace")
        g = torch.Generator().manual_seed(seed)
        n = steps * batch
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (n,), generator=g)
        atomic_write_text(path, make_trace(cfg, steps, images, labels))
    return path


def run_network(trace_path, *, rtl_dir=None, build_dir, infer_samples: int = 0, seed: int | None = None,
                waves: bool | None = None, simulator: str | None = None, steps: int | None = None,
                macro: str = "numpy", read_latency: int = 1, state_check: str = "auto") -> dict:
    """Run the RTL against a golden trace under Icarus (or Verilator).

    ``macro``: ``"numpy"`` runs the periphery top with a numpy model of each crossbar macro in the
    bench (every update pulse compared); ``"hdl"`` runs the system top with the Verilog macro model.

    ``state_check``: ``"op"`` compares every LFSR state, weight and counter after every operation
    (each training sample, carry, binary and stochastic inference); ``"step"`` only after loading,
    at every batch end and after the last inference (a read of the whole state costs about
    3 clocks per row of every layer); ``"auto"``: ``"op"`` when the layers have at most
    ``STATE_EVERY_OP_ROWS`` rows and streams together (64-32-10: 202), else ``"step"``. Every
    operation's probes, pulses, class and clock count are compared either way.

    Returns ``{"passed", "steps", "samples", "cycles", "wall_s", "cycles_per_s", "compared",
    "mismatch" (None or the first mismatch), "infer": {"samples", "agree" (counted: both classes
    equal the golden ones)}, "limits" (how often the bench saw counters saturate, carries clamped at
    a weight limit, and weights at a limit after a carry), "state_every_op", "seed", "log"}``.
    Raises BshwError when the simulator is missing or the trace is unreadable.
    """
    from bshw.golden.exact.trace import load_trace
    from bshw.sim.runner import run_bench

    path = Path(trace_path)
    header, records = load_trace(path, steps)  # a bad trace is bad input (exit 2), never a mismatch
    n_steps, last = len(records), records[-1]
    del records
    build = Path(build_dir)
    if macro not in ("numpy", "hdl"):
        raise BshwError(f"macro model {macro!r}: choose numpy or hdl")
    if state_check not in ("auto", "op", "step"):
        raise BshwError(f"state check {state_check!r}: choose auto, op or step")
    if state_check == "auto":
        rows = sum(x["fan_in"] for x in header["layers"]) + len(header["init"]["lfsr_in"]) + \
            sum(len(s) for s in header["init"]["lfsr"])
        state_check = "op" if rows <= STATE_EVERY_OP_ROWS else "step"
    rtl = _rtl_for(header, rtl_dir, build, read_latency)
    env = {"BSHW_NET_DESC": str(rtl["desc"].resolve()), "BSHW_NET_TRACE": str(path.resolve()),
           "BSHW_NET_STEPS": str(n_steps), "BSHW_NET_MACRO": macro, "BSHW_NET_STATE": state_check}
    if infer_samples:
        inf = build / "infer.json"
        atomic_write_text(inf, json.dumps(expected_inference(header, last, infer_samples)))
        env["BSHW_NET_INFER"] = str(inf.resolve())
    if macro == "numpy":
        toplevel, sources = rtl["top"], [rtl["periphery"]]
    else:
        toplevel, sources = rtl["system_top"], [rtl["system"], rtl["periphery"], rtl["model"]]
    res = run_bench(toplevel, sources, "bshw.sim.bench_network", build_dir=build / f"bench-{macro}", seed=seed,
                    waves=waves, simulator=simulator, extra_env=env)
    m = res["metrics"].get("network_matches_golden", {})
    return {"passed": res["passed"], "steps": m.get("steps", 0), "samples": m.get("samples", 0),
            "cycles": m.get("cycles", 0), "wall_s": res["wall_s"], "build_s": res["build_s"],
            "cycles_per_s": m.get("cycles_per_s", 0.0), "compared": m.get("compared", 0),
            "mismatch": (res["failures"] or [None])[0],
            "infer": {"samples": m.get("infer", 0), "agree": m.get("infer_agree", 0)},
            "limits": m.get("limits", {}), "state_every_op": m.get("state_every_op", state_check == "op"),
            "op_cycles": m.get("op_cycles", {}), "train_cycles": m.get("train_cycles", 0),
            "train_wall_s": m.get("train_wall_s", 0.0), "macro": macro,
            "seed": res["seed"], "log": res["log"], "simulator": res["simulator"]}


# -- CLI: bshw sim ---------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("trace", help="golden trace (bshw trace, docs/arithmetic.md §11)")
    p.add_argument("--rtl", default="rtl", help="folder with probed RTL (bshw rtl --probes; default rtl/); "
                                                "generated for the trace's configuration when none matches")
    p.add_argument("--macro", choices=("numpy", "hdl"), default="numpy",
                   help="crossbar macro model: numpy inside the bench (default) or the Verilog model (system top)")
    p.add_argument("--build-dir", default="sim_build/network", help="build and run folder")
    p.add_argument("--steps", type=int, help="only the first N training steps of the trace")
    p.add_argument("--infer", type=int, default=0, metavar="N",
                   help="then classify the first N test images (binary and one stochastic vote), checked")
    p.add_argument("--seed", type=int, help="regression seed (default $SEED, else random; logged)")
    p.add_argument("--waves", action="store_true", help="write a waveform (also WAVES=1)")
    p.add_argument("--sim", choices=("icarus", "verilator"), help="simulator (default $SIM, else icarus)")
    p.add_argument("--state", choices=("auto", "op", "step"), default="auto",
                   help="compare every LFSR, weight and counter after every operation (op) or at batch ends "
                        "and after the last inference (step); auto: op up to 512 rows and streams")


def run(args) -> int:
    if args.steps is not None and args.steps < 1:
        raise BshwError(f"--steps {args.steps}: a positive whole number")
    if args.infer < 0:
        raise BshwError(f"--infer {args.infer}: zero or a positive whole number")
    import os

    from bshw.sim.runner import PROGRESS_ENV

    os.environ.setdefault(PROGRESS_ENV, "10")  # a progress line every 10 s while the bench runs (stderr)
    print(f"bshw sim: {args.trace}: building and running the network bench in {args.build_dir} "
          "(progress every 10 s)", file=sys.stderr, flush=True)
    r = run_network(args.trace, rtl_dir=args.rtl, build_dir=args.build_dir, infer_samples=args.infer,
                    seed=args.seed, waves=args.waves or None, simulator=args.sim, steps=args.steps, macro=args.macro,
                    state_check=args.state)
    if not r["passed"]:
        print(f"MISMATCH ({r['simulator']}, seed {r['seed']}): {(r['mismatch'] or '').splitlines()[0]}; log {r['log']}")
        return 1
    print(f"bit-exact ({r['simulator']}, {r['macro']} macros, seed {r['seed']}): {r['steps']} steps, {r['samples']} samples, "
          f"{r['compared']} values, {r['cycles']} cycles in {r['wall_s']:.1f} s ({r['cycles_per_s']:.0f} cycles/s); "
          f"inference {r['infer']['agree']}/{r['infer']['samples']} agree; state compared after every "
          f"{'operation' if r['state_every_op'] else 'batch'}")
    return 0
