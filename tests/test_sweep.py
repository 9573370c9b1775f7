"""``bshw sweep`` (issue 19): a tiny grid on local Ray, failures recorded, reruns skip, a killed worker
is retried, synthesis cached per module, bad grids refused before anything starts.

Ray starts once for the module (about 5 s); each sweep here trains 8x8 inputs on a few hundred
images for one epoch.
"""

import json
import os
import sys
from pathlib import Path

import pytest

from bshw.cli import main
from bshw.sweep.runner import run_sweep
from bshw.sweep.spec import load_sweep

ray = pytest.importorskip("ray")

TINY = """
[train]
hidden = [16]
input_side = 8
weights = "int8"
batch = 50
epochs = 1
train_limit = 200
test_limit = 100
votes = 3

[grid]
algo = ["HHH", "SSS"]
a = [2.0, 4.0]

[sweep]
name = "tiny-test"
metrics = ["test_error", "train_error", "energy"]
train_eval = 100
"""


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray for every sweep of this module (run_sweep uses a Ray that is already up)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import logging

    # the fault-injecting point functions below travel to the workers by value, not by module name
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
             object_store_memory=128 * 1024 * 1024)
    yield ray
    ray.shutdown()


def write_sweep(tmp_path, text=TINY, name="sweep.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def quiet(*_):
    pass


def fails_on_sss_a2(train, options):
    """A training that raises for one point (SSS, a = 2)."""
    from bshw.sweep.point import train_point

    if train["algo"] == "SSS" and train["a"] == 2.0:
        raise RuntimeError("injected failure")
    return train_point(train, options)


def make_dies_once(marker: str):
    """A point function whose worker process dies on its first attempt at SSS, a = 4."""
    def dies_once(train, options):
        from bshw.sweep.point import train_point

        if train["algo"] == "SSS" and train["a"] == 4.0 and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)  # no exception: the process is gone, as after a crash or the OOM killer
        return train_point(train, options)

    return dies_once


def make_fake_synth(calls_dir: str):
    """A stand-in for yowasp synthesis: records each call, returns fixed figures."""
    def fake_synth(spec, work):
        import uuid

        Path(calls_dir, f"{spec['module']}-{uuid.uuid4().hex}").write_text(json.dumps(spec))
        return {"luts": 10, "ffs": 4, "carries": 1, "brams": 0, "fmax_mhz": 50.0, "transistors": 100}

    return fake_synth


@pytest.fixture(scope="module")
def tiny_done(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    sweep = load_sweep(write_sweep(tmp))
    res = run_sweep(sweep, tmp / "out", progress=False, log=quiet)
    return sweep, tmp / "out", res


def test_tiny_sweep_runs_every_point(tiny_done):
    _sweep, out, res = tiny_done
    assert (res["points"], res["ok"], res["failed"], res["ran"]) == (4, 4, 0, 4)
    assert len(list((out / "points").glob("*.json"))) == 4
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 5 and rows[0].startswith("index,label,key,status,algo,a,test_error_hp")
    data = json.loads((out / "results.json").read_text())
    for rec in data["points"]:
        assert rec["status"] == "ok"
        r = rec["result"]
        assert set(r["test_error"]) == {"hp", "binary", "stochastic"} and set(r["train_error"]) == set(r["test_error"])
        assert r["train_eval_samples"] == 100 and r["wall_s"] > 0
        assert rec["derived"]["energy"]["pj_per_sample"] > 0
    sss = next(p for p in data["points"] if p["train"]["algo"] == "SSS")
    hhh = next(p for p in data["points"] if p["train"]["algo"] == "HHH")
    assert sss["derived"]["energy"]["pj_per_sample"] < hhh["derived"]["energy"]["pj_per_sample"]
    html = (out / "report.html").read_text()
    assert "Heat map" in html and "Pareto" in html and html.count("data:image/png;base64,") >= 2
    assert data["summary"]["ray_overhead"]["points"] == 4
    assert not list(out.rglob("*.tmp"))


def test_rerun_skips_every_done_point(tiny_done):
    sweep, out, _ = tiny_done
    before = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    res = run_sweep(load_sweep(sweep.path), out, progress=False, log=quiet)
    assert (res["skipped"], res["ran"], res["ok"]) == (4, 0, 4)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")} == before


def test_failing_point_is_recorded_and_the_sweep_goes_on(ray_local, tmp_path):
    sweep = load_sweep(write_sweep(tmp_path))
    res = run_sweep(sweep, tmp_path / "out", progress=False, log=quiet, point_fn=fails_on_sss_a2)
    assert (res["ok"], res["failed"]) == (3, 1)
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    bad = [p for p in data["points"] if p["status"] != "ok"]
    assert [p["label"] for p in bad] == ["algo=SSS a=2"]
    assert "RuntimeError: injected failure" in bad[0]["error"]
    assert "injected failure" in (tmp_path / "out" / "results.csv").read_text()
    # a rerun redoes only the failed point
    res = run_sweep(sweep, tmp_path / "out", progress=False, log=quiet)
    assert (res["skipped"], res["ran"], res["ok"], res["failed"]) == (3, 1, 4, 0)


def test_killed_worker_is_retried(ray_local, tmp_path):
    marker = tmp_path / "died-once"
    sweep = load_sweep(write_sweep(tmp_path))
    res = run_sweep(sweep, tmp_path / "out", progress=False, log=quiet, point_fn=make_dies_once(str(marker)))
    assert marker.exists(), "the injected crash did not happen"
    assert (res["ok"], res["failed"]) == (4, 0)
    rec = [json.loads(p.read_text()) for p in (tmp_path / "out" / "points").glob("*.json")]
    (killed,) = [r for r in rec if r["train"]["algo"] == "SSS" and r["train"]["a"] == 4.0]
    assert killed["result"]["pid"] != int(marker.read_text())  # finished by another worker process


def test_synthesis_is_cached_per_module(ray_local, tmp_path):
    text = TINY.replace('algo = ["HHH", "SSS"]', 'algo = ["SSS"]\n"hw.deriv_k" = [2, 4]').replace(
        '[train]', '[train]\nhw = { noise_words = [7, 7, 5] }').replace(
        'metrics = ["test_error", "train_error", "energy"]', 'metrics = ["test_error", "energy", "synth"]')
    sweep = load_sweep(write_sweep(tmp_path, text))
    assert len(sweep.points) == 4
    calls = tmp_path / "calls"
    calls.mkdir()
    res = run_sweep(sweep, tmp_path / "out", progress=False, log=quiet, synth_fn=make_fake_synth(str(calls)))
    assert res["ok"] == 4
    made = sorted(p.name.split("-")[0] for p in calls.iterdir())
    # a changes no module (the noise words are fixed); k changes the hidden neuron: 2 neurons, one each
    # of the rest, though 4 points use them
    assert made == ["counter", "input_sampler", "neuron", "neuron", "output_neuron"]
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    area = [p["derived"]["area"] for p in data["points"]]
    n_in, n_hid, n_out = 64, 16, 10
    cells = n_in + n_hid + n_out + n_in * n_hid + n_hid * n_out
    assert all(a["periphery_transistors"] == 100 * cells and a["periphery_luts"] == 10 * cells for a in area)
    assert all(p["derived"]["energy"]["periphery_counted"] for p in data["points"])
    # a rerun, or another sweep into the same folder with the same shapes, synthesizes nothing
    for p in calls.iterdir():
        p.unlink()
    res = run_sweep(load_sweep(sweep.path), tmp_path / "out", progress=False, log=quiet,
                    synth_fn=make_fake_synth(str(calls)))
    assert res["ran"] == 0 and not list(calls.iterdir())


# -- bad input: one line, exit status 2, nothing written --------------------------------------------
BAD_GRIDS = {
    "unknown field": ('[grid]\nalgo = ["SSS"]\nspeed = [1, 2]\n', "unknown field 'speed'"),
    "empty list": ('[grid]\na = []\n', "a = [] is empty"),
    "rejected value": ('[grid]\na = [4.0, -1.0]\n', "a = -1.0 is not valid"),
    "rejected combination": ('[train]\nmode = "exact"\n[grid]\nalgo = ["SSS", "HHS"]\n', "algo = 'HHS'"),
    "not a list": ('[grid]\na = 4.0\n', "a = 4.0 is not a list"),
    "zip lengths": ('[zip]\nweights = ["int8", "int4"]\nw_range = [1.0]\n', "lists of different lengths"),
    "unknown hw key": ('[grid]\n"hw.speed" = [1]\n', "hw: unknown key 'speed'"),
    "unknown metric": ('[grid]\na = [4.0]\n[sweep]\nmetrics = ["accuracy"]\n', "unknown metric 'accuracy'"),
    "unknown table": ('[grid]\na = [4.0]\n[grids]\nb = 1\n', "unknown top-level key 'grids'"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRIDS))
def test_bad_grid_is_one_line_exit_2(case, tmp_path, capsys):
    text, expect = BAD_GRIDS[case]
    cfg = write_sweep(tmp_path, text)
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("flags, expect", [
    (["--workers", "0"], "--workers '0'"),
    (["--workers", "two"], "--workers 'two'"),
    (["--address", "no-port"], "--address 'no-port'"),
    (["--address", "127.0.0.1:1"], "no Ray cluster answers there"),
    (["--epochs", "x"], "--epochs 'x'"),
    (["--epochs", "0"], "epochs = 0 is not valid"),
])
def test_bad_flags_are_one_line_exit_2(flags, expect, tmp_path, capsys):
    cfg = write_sweep(tmp_path, TINY)
    out = tmp_path / "out"
    assert main(["sweep", "--config", str(cfg), "--out", str(out), "-q", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expect in err, err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    cfg = write_sweep(tmp_path, TINY)
    (tmp_path / "out").write_text("not a folder")
    assert main(["sweep", "--config", str(cfg), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert (tmp_path / "out").read_text() == "not a folder"


def test_presets_load(tmp_path):
    """Every shipped preset parses and expands (the runs themselves are the measurements in docs/sweep.md)."""
    from bshw.sweep import PRESET_DIR

    sizes = {p.stem: len(load_sweep(p).points) for p in sorted(PRESET_DIR.glob("*.toml"))}
    assert sizes["ed-fig5"] == 40 and sizes["tiny"] == 4
    assert sizes["weights"] >= 10 and sizes["hardware"] == 36
