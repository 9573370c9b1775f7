"""The CLI a newcomer expects (issue 23): resume from the run directory's own configuration, no silent
overwrite of a run, default folders named by mode, one ``--hidden`` syntax everywhere, flags that do
not apply to the chosen mode refused, a ``--skip``ped flow stage reported as skipped.

Speed: every case runs ``bshw.cli.main`` in this process on a 16-4-10 net of 100 training images
(~1 s per training); the whole file takes ~15 s on one loaded core.
"""

import json
from pathlib import Path

import pytest

from bshw.cli import main, parse_sizes
from bshw.errors import BshwError

TINY = ["--input-side", "4", "--batch", "50", "--train-limit", "100", "--test-limit", "50", "--votes", "1",
        "--threads", "1", "-q"]


def bshw(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def refused(rc, err, *needles):
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture
def int4_run(tmp_path, monkeypatch, capsys):
    """The README's INT4 command, shrunk: one epoch of a 16-4-10 net in runs/x."""
    monkeypatch.chdir(tmp_path)
    rc, out, err = bshw(["train", "--net", "fc", "--algo", "SSS", "--weights", "int4", "--hidden", "4", *TINY,
                         "--epochs", "1", "--seed", "3", "--out", "runs/x"], capsys)
    assert rc == 0, err
    return tmp_path / "runs" / "x"


def test_resume_takes_the_run_directory_config(int4_run, capsys):
    """The README's resume line, as written: the run's own config.json (weights int4, the limits, the
    seed), only the epochs changed."""
    rc, out, err = bshw(["train", "--out", "runs/x", "--epochs", "2", "--resume"], capsys)
    assert rc == 0, err
    cfg = json.loads((int4_run / "config.json").read_text())
    assert cfg["weights"] == "int4" and cfg["epochs"] == 2 and cfg["train_limit"] == 100 and cfg["seed"] == 3
    assert [e["epoch"] for e in json.loads((int4_run / "metrics.json").read_text())["epochs"]] == [1, 2]
    # flags equal to the run's are fine; spelled differently too
    rc, out, err = bshw(["train", "--out", "runs/x", "--epochs", "3", "--resume", "--weights", "INT4",
                         "--hidden", "4", "--seed", "3"], capsys)
    assert rc == 0, err


@pytest.mark.parametrize("flags, needle", [
    (["--weights", "int8"], "--weights int8 conflicts with the run's weights = 'int4'"),
    (["--hidden", "8"], "--hidden 8 conflicts with the run's hidden = [4]"),
    (["--data", "elsewhere"], "--data elsewhere conflicts"),
    (["--seed", "4"], "--seed 4 conflicts"),
])
def test_resume_refuses_a_conflicting_flag(int4_run, capsys, flags, needle):
    before = (int4_run / "checkpoint.pt").read_bytes()
    rc, out, err = bshw(["train", "--out", "runs/x", "--epochs", "2", "--resume", *flags], capsys)
    refused(rc, err, needle, "only --epochs, --device may change")
    assert (int4_run / "checkpoint.pt").read_bytes() == before


def test_resume_needs_more_epochs(int4_run, capsys):
    rc, out, err = bshw(["train", "--out", "runs/x", "--resume"], capsys)
    refused(rc, err, "has trained 1 epoch already", "--epochs N with N > 1")


def test_existing_run_directory_is_refused(int4_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in int4_run.iterdir()}
    rc, out, err = bshw(["train", "--hidden", "4", *TINY, "--epochs", "1", "--out", "runs/x"], capsys)
    refused(rc, err, "runs/x already holds a run", "--resume", "--force")
    assert {p.name: p.stat().st_mtime_ns for p in int4_run.iterdir()} == before
    # --force replaces it: the new run's configuration, no file of the old one left over
    rc, out, err = bshw(["train", "--hidden", "4", *TINY, "--epochs", "1", "--out", "runs/x", "--force"], capsys)
    assert rc == 0, err
    assert json.loads((int4_run / "config.json").read_text())["weights"] == "fp32"
    with pytest.raises(SystemExit) as e:  # argparse's usage error: one or the other
        main(["train", "--out", "runs/x", "--resume", "--force"])
    assert e.value.code == 2 and "not allowed with argument --resume" in capsys.readouterr().err


def test_default_run_folder_names_the_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for mode in ("float", "exact"):
        rc, out, err = bshw(["train", "--hidden", "4", *TINY, "--epochs", "1", "--weights", "int8",
                             "--mode", mode], capsys)
        assert rc == 0, err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["fc-SSS-int8-exact-s0", "fc-SSS-int8-float-s0"]


def test_zero_epochs_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = bshw(["train", "--hidden", "4", *TINY, "--epochs", "0", "--out", "r"], capsys)
    refused(rc, err, "epochs = 0", "at least 1")
    assert not (tmp_path / "r").exists()


def test_flags_of_the_other_mode_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc, out, err = bshw(["train", "--mode", "exact", "--tie", "plus", "--epochs", "1"], capsys)
    refused(rc, err, "--tie does not apply to --mode exact")
    rc, out, err = bshw(["train", "--hw", '{"deriv_k": 1}', "--epochs", "1"], capsys)
    refused(rc, err, "--hw does not apply to --mode float")
    rc, out, err = bshw(["train", "--mode", "exact", "--hw", "{nope", "--epochs", "1"], capsys)
    refused(rc, err, "--hw is not valid JSON")
    # train --hw works like rtl's and trace's
    rc, out, err = bshw(["train", "--mode", "exact", "--hw", '{"deriv_k": 1}', "--hidden", "4", *TINY,
                         "--epochs", "1", "--out", "e"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "e" / "config.json").read_text())["hw"] == {"deriv_k": 1}


# ---- one --hidden syntax ---------------------------------------------------------------------------

@pytest.mark.parametrize("words", [["32,16"], ["32", "16"], ["32,", "16"], ["32, 16"], ["32,16,"]])
def test_parse_sizes(words):
    assert parse_sizes(words) == (32, 16)


@pytest.mark.parametrize("words", [["a,b"], ["0"], [","], ["-3"], ["1.5"]])
def test_parse_sizes_refuses(words):
    with pytest.raises(BshwError, match="--hidden"):
        parse_sizes(words)


SPELLINGS = (["32,16"], ["32", "16"])


@pytest.mark.parametrize("command", ["train", "energy", "rtl", "trace"])
def test_hidden_accepted_the_same_way_everywhere(command, tmp_path, monkeypatch, capsys):
    """Each subcommand that takes a network shape parses ``--hidden 32,16`` and ``--hidden 32 16`` into
    the same configuration (its run function is replaced by one that records what it got)."""
    import importlib

    from bshw.cli import COMMANDS

    monkeypatch.chdir(tmp_path)
    mod = importlib.import_module(COMMANDS[command][0])
    seen = []
    monkeypatch.setattr(mod, "run", lambda args: seen.append(tuple(args.hidden)) or 0)
    rest = {"train": [], "energy": ["--net", "fc"], "rtl": ["--out", "o"], "trace": ["--out", "t.jsonl"]}[command]
    for words in SPELLINGS:
        rc, out, err = bshw([command, "--hidden", *words, *rest], capsys)
        assert rc == 0, err
    assert seen == [(32, 16), (32, 16)]
    rc, out, err = bshw([command, "--hidden", "3x2", *rest], capsys)
    refused(rc, err, f"bshw {command}: error: --hidden '3x2'")


def test_hidden_reaches_the_configuration(tmp_path, monkeypatch):
    """Not only parsed alike: the train, rtl and trace configurations and the energy estimate agree."""
    import argparse

    from bshw.golden.exact.params import config_from_args as exact_config
    from bshw.golden.train import add_arguments, config_from_args

    for words in SPELLINGS:
        p = argparse.ArgumentParser()
        add_arguments(p)
        assert config_from_args(p.parse_args(["--hidden", *words])).hidden == (32, 16)
        from bshw.rtl import add_arguments as rtl_args

        p = argparse.ArgumentParser()
        rtl_args(p)
        assert exact_config(p.parse_args(["--hidden", *words]), ("hidden",)).hidden == (32, 16)


# ---- flow ------------------------------------------------------------------------------------------

def test_flow_skip_is_reported_as_skipped(tmp_path, monkeypatch):
    """A stage left out with --skip is "skipped", even where an earlier run of the same configuration
    has its result (it used to read "ok (earlier run)")."""
    import importlib

    import test_flow
    from test_flow import NO_TRAIN, TINY as FLOW_TINY, fake_modules

    from bshw.golden.data import load_dataset

    F = importlib.import_module("bshw.flow")  # the module (bshw.flow may also name the API function)
    monkeypatch.setattr(test_flow, "F", F)

    data = load_dataset("mnist")
    fake_modules(monkeypatch)
    first = F.flow(FLOW_TINY, tmp_path, stages=NO_TRAIN, log=lambda line: None, progress=False, data=data)
    assert first["stages"]["synth"]["status"] == "ok"
    again = F.flow(FLOW_TINY, tmp_path, stages=NO_TRAIN, skip=["synth"], log=lambda line: None, progress=False,
                   data=data)
    assert again["stages"]["synth"] == {"status": "skipped", "reason": "--skip"}
    assert "synth" not in again["results"]


# ---- bshw rtl --config: the components follow the configuration ------------------------------------

def test_rtl_components_follow_the_config():
    """The example config's description sizes every component (bshw rtl passes it to bshw.emit), and
    without one the §1 default's components (the committed rtl/ files) come out."""
    from bshw.emit import components
    from bshw.golden.config import TrainConfig
    from bshw.rtl import build, describe

    REPO = Path(__file__).resolve().parents[1]
    d = TrainConfig.read_toml(REPO / "bshw" / "configs" / "rtl-example.toml")
    cfg = TrainConfig.from_dict({**d, "mode": "exact"}, where="rtl-example.toml")
    top = build(cfg)
    desc = json.loads(json.dumps(describe(cfg, top, "ex_")))
    made = {name: make() for name, make in components(desc, "ex_").items()}
    default = {name: make() for name, make in components().items()}
    for obj in (top, *top.counters, *made.values(), *default.values()):  # built to inspect, not to elaborate
        obj._MustUse__silence = True
    assert sorted(made) == ["ex_comparator_neuron", "ex_derivative_sampler", "ex_error_driver", "ex_lfsr_i16",
                            "ex_lfsr_n32", "ex_periodic_carry"]
    assert made["ex_error_driver"].tie == "zero" and made["ex_derivative_sampler"].k == 2
    assert (made["ex_periodic_carry"].wmin, made["ex_periodic_carry"].wmax) == (-8, 7)
    assert made["ex_comparator_neuron"].y_width == desc["layers"][0]["yw"] != 14
    assert sorted(default) == sorted(p.stem for p in (REPO / "rtl").glob("bshw_*.v")
                                     if p.stem not in ("bshw_periphery", "bshw_system", "bshw_crossbar_model", "bshw_host",
                                                   "bshw_host_system"))
    assert default["bshw_error_driver"].tie == "gated" and default["bshw_comparator_neuron"].y_width == 14


# ---- the docs agree with the code (issue 23, point 7) -----------------------------------------------

def test_cycle_formula_of_the_docs_is_the_code():
    """docs/arithmetic.md §15's clocks-per-operation formulas, evaluated as written, equal
    bshw.core.op_cycles (which the network bench checks against the counted clocks of every
    operation) on several shapes, read latencies, k and accumulate walks."""
    import re

    from bshw.core import op_cycles

    text = (Path(__file__).resolve().parents[1] / "docs" / "arithmetic.md").read_text()
    train = re.search(r"- train: `([^`]*)`, with `walk = ([^`]*)`", text.replace("\n  ", " "))
    rest = re.search(r"- carry: `([^`]*)`; infer: `([^`]*)`; binary: `([^`]*)`", text)
    assert train and rest, "the §15 formulas moved: update this test"

    def py(expr):  # the docs' notation as Python
        expr = expr.replace("sum_l (lat + draws_l)", "sum(lat + d for d in draws)")
        expr = expr.replace("max_l fan_in_l", "max(sizes[:-1])")
        expr = expr.replace("max_l (n_l + 2 if n_l > 0 else 1)", "max(n + 2 if n > 0 else 1 for n in rows)")
        expr = re.sub(r"\) ?(lat|\()", r") * \1", expr)
        expr = re.sub(r"\bL lat\b", "L * lat", expr)
        return expr

    words = re.search(r"`S = ceil\(n_0 / input_lanes\)`", text.replace("\n", " "))
    assert words, "§15's input-walk words S moved: update this test"
    for sizes, k, lat, rows, lanes in (([64, 32, 10], 4, 1, [10, 16], 16), ([64, 32, 10], 4, 1, [0, 0], 1),
                                       ([784, 500, 200, 10], 4, 2, [150, 0, 0], 16), ([16, 8, 10], 1, 3, [5, 0], 4),
                                       ([36, 10], 2, 1, [7], 64), ([784, 100, 10], 4, 1, [90, 3], 8)):
        L = len(sizes) - 1
        draws = [1 + 2 * k] * (L - 1) + [1]
        env = {"lat": lat, "L": L, "draws": draws, "sizes": sizes, "rows": rows, "S": -(-sizes[0] // lanes)}
        env["walk"] = eval(py(train.group(2)), env)
        assert eval(py(train.group(1)), env) == op_cycles("train", sizes, k, lat, rows, lanes)
        for expr, op in zip(rest.groups(), ("carry", "infer", "binary")):
            assert eval(py(expr), env) == op_cycles(op, sizes, k, lat, None, lanes), (op, expr)


def test_flow_refuses_a_run_of_another_configuration(tmp_path, capsys):
    """bshw flow over a run directory whose summary.json holds another configuration stops with one
    line before any stage runs (--force runs over it); the same configuration re-runs as before."""
    import importlib

    F = importlib.import_module("bshw.flow")
    toml = tmp_path / "f.toml"
    toml.write_text("[train]\nhidden = [4]\ninput_side = 4\nweights = 'int8'\n[flow]\njobs = 1\n")
    cfg, fcfg = F.load_config(toml)
    run = tmp_path / "run"
    run.mkdir()
    theirs = {"train": {**cfg.to_dict(), "seed": 1}, "flow": fcfg.to_dict()}
    (run / "summary.json").write_text(json.dumps({"config": json.loads(json.dumps(theirs, default=str))}))
    before = sorted(p.name for p in run.iterdir())
    rc, out, err = bshw(["flow", "--config", toml, "--out", run, "-q"], capsys)
    refused(rc, err, "holds a run of another configuration (train.seed differs", "--force")
    assert sorted(p.name for p in run.iterdir()) == before
    assert F.other_run(run, cfg, fcfg) == "train.seed"
    same = {"train": cfg.to_dict(), "flow": {**fcfg.to_dict(), "jobs": 2, "out": "elsewhere"}}
    (run / "summary.json").write_text(json.dumps({"config": json.loads(json.dumps(same, default=str))}))
    assert F.other_run(run, cfg, fcfg) is None  # execution settings and the folder change no figure
    assert F.other_run(tmp_path / "none", cfg, fcfg) is None
