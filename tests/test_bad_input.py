"""Bad input gets one line and exit status 2, and leaves no file behind (README; issue 18).

Every case asserts: exit status 2, at most 2 lines on stderr, no "Traceback", the expected words in
the message, and no new, partial or stale file under the case's folder (the output location).

Speed: a ``bshw`` subprocess that imports torch costs ~2 s here, so most CLI cases run
``bshw.cli.main`` in this process (same code path: main catches BshwError, anything else would
escape as a traceback and fail the test), and a representative case of each class runs as a real
subprocess (``sys.executable -m bshw.cli``, cwd in the case's folder, ``$BSHW_DATA`` unset). The
``energy`` and ``emit`` cases import no torch and all run as subprocesses.
"""

import copy
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bshw.cli import main
from bshw.errors import BshwError
from bshw.golden.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
TINY = ["--hidden", "4", "--input-side", "4", "--batch", "50", "--train-limit", "100", "--test-limit", "50",
        "--votes", "1", "-q"]
TINY_CFG = dict(hidden=(4,), input_side=4, batch=50, train_limit=100, test_limit=50, votes=1)


def _env():
    env = {k: v for k, v in os.environ.items() if k != "BSHW_DATA"}
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return env


def snapshot(root: Path) -> dict:
    """Every file and folder under ``root`` (hidden ones too): files with size and mtime, folders by
    name only (a lock file made and removed again touches a folder's mtime, not its contents)."""
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = ("dir",) if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def assert_refused(rc, err, before, after, needles=()):
    assert rc == 2, f"exit status {rc}, stderr: {err}"
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    for n in needles:
        assert n in err, f"{n!r} not in {err!r}"
    assert after == before, f"files changed: {sorted(set(after) ^ set(before))}"


def cli(argv, cwd, timeout=120, **kw):
    """``bshw ARGV`` as a subprocess in ``cwd``: ``(returncode, stdout, stderr)``."""
    p = subprocess.run([sys.executable, "-m", "bshw.cli", *argv], cwd=cwd, env=_env(), capture_output=True,
                       text=True, timeout=timeout, **kw)
    return p.returncode, p.stdout, p.stderr


def _setup(tmp_path: Path, files: dict):
    for name, content in (files or {}).items():
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(p)
        elif isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)


def run_case(tmp_path, argv, needles, files=None, subprocess_=False, capsys=None, monkeypatch=None):
    _setup(tmp_path, files)
    before = snapshot(tmp_path)
    if subprocess_:
        rc, _, err = cli(argv, tmp_path)
    else:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("BSHW_DATA", raising=False)
        capsys.readouterr()
        rc = main(list(argv))
        err = capsys.readouterr().err
    assert_refused(rc, err, before, snapshot(tmp_path), needles)


# ------------------------------------------------------------------------------ TrainConfig values
# One in-process validator call per case: (fields, words the one-line message must hold)
CONFIG_CASES = [
    ({"net": "rnn"}, "net = 'rnn'"), ({"net": 3}, "net = 3"), ({"hidden": 32}, "hidden = 32"),
    ({"hidden": "32"}, "hidden = '32'"), ({"hidden": [0]}, "hidden"), ({"hidden": [True]}, "hidden"),
    ({"hidden": [10**9]}, "hidden"), ({"hidden": [1.5]}, "hidden"), ({"algo": "SXS"}, "algo = 'SXS'"),
    ({"algo": 5}, "algo = 5"), ({"tie": "minus"}, "tie = 'minus'"), ({"tie": None}, "tie = None"),
    ({"deriv_k": 3}, "deriv_k = 3"), ({"deriv_k": True}, "deriv_k = True"), ({"a": 0}, "a = 0"),
    ({"a": float("nan")}, "a = nan"), ({"a": float("inf")}, "a = inf"), ({"a": True}, "a = True"),
    ({"a": "4"}, "a = '4'"), ({"weights": "int1"}, "weights = 'int1'"), ({"weights": "int99"}, "weights"),
    ({"weights": 8}, "weights = 8"), ({"weights": "int٣"}, "weights"), ({"w_range": 0}, "w_range = 0"),
    ({"w_range": -1.0}, "w_range"), ({"init_gain": float("inf")}, "init_gain"), ({"lr": 0}, "lr = 0"),
    ({"lr": "0.1"}, "lr = '0.1'"), ({"lr": 1e300}, "lr"), ({"batch": 0}, "batch = 0"),
    ({"batch": True}, "batch = True"), ({"batch": 2.0}, "batch = 2.0"), ({"epochs": -1}, "epochs = -1"),
    ({"epochs": True}, "epochs = True"), ({"epochs": "3"}, "epochs = '3'"), ({"seed": -1}, "seed = -1"),
    ({"seed": 2**63}, "seed = 9223372036854775808"), ({"seed": "0"}, "seed = '0'"), ({"seed": 1.0}, "seed = 1.0"),
    ({"seed": False}, "seed = False"), ({"dataset": "imagenet"}, "dataset"), ({"dataset": 1}, "dataset = 1"),
    ({"data": 5}, "data = 5"), ({"data": ["a"]}, "data = ['a']"), ({"data": ""}, "data = ''"),
    ({"train_limit": 0}, "train_limit = 0"), ({"test_limit": "9"}, "test_limit = '9'"),
    ({"votes": 0}, "votes = 0"), ({"votes": 1001}, "votes = 1001"), ({"device": "foo"}, "device = 'foo'"),
    ({"device": 0}, "device = 0"), ({"device": "cuda:x"}, "device"), ({"mode": "fast"}, "mode = 'fast'"),
    ({"out": 7}, "out = 7"), ({"out": False}, "out = False"), ({"input_side": 1}, "input_side = 1"),
    ({"input_side": 29}, "input_side = 29"), ({"hw": [1]}, "hw"), ({"hw": {"tie": []}}, "hw.tie"),
    ({"hw": {"bogus": 1}}, "unknown key 'bogus'"), ({"hw": {"th": 0}}, "hw.th"),
    ({"hw": {"noise_words": [0]}}, "hw.noise_words"), ({"hw": {"counter_bits": 99}}, "hw.counter_bits"),
    ({"memristor": 3}, "memristor"), ({"memristor": {"g_max": "big"}}, "memristor.g_max"),
    ({"memristor": {"n_p": 1.5}}, "memristor.n_p"), ({"memristor": {"bogus": 1}}, "unknown key 'bogus'"),
    ({"memristor": {"g_max": 0.0}}, "g_max"), ({"bogus": 1}, "unknown key 'bogus'"),
]


@pytest.mark.parametrize("fields, needle", CONFIG_CASES, ids=[f"cfg-{i}" for i in range(len(CONFIG_CASES))])
def test_config_value_refused(fields, needle):
    with pytest.raises(BshwError) as e:
        TrainConfig.from_dict(fields, "c.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("c.toml: ") and needle in msg, msg


def test_config_good_values_still_accepted():
    cfg = TrainConfig.from_dict({"hidden": [32], "seed": 2**63 - 1, "device": "cuda:1", "hw": {"tie": "zero"},
                                 "memristor": {"g_max": 30}, "data": "d", "out": "o", "epochs": 0}, "x")
    assert cfg.hidden == (32,) and cfg.seed == 2**63 - 1


# ----------------------------------------------------------------------------- TOML config files
TOMLS = {
    "train-not-table": ("train = 5\n", "train = 5"),
    "epochs-bool": ("[train]\nepochs = true\n", "epochs = True"),
    "seed-string": ("[train]\nseed = 'x'\n", "seed = 'x'"),
    "device-int": ("[train]\ndevice = 3\n", "device = 3"),
    "data-int": ("[train]\ndata = 3\n", "data = 3"),
    "out-list": ("[train]\nout = ['a']\n", "out = ['a']"),
    "extra-table": ("[train]\nseed = 1\n[other]\nx = 1\n", "unknown top-level table 'other'"),
    "extra-key": ("[train]\nseed = 1\nlearning = 3\n", "unknown key 'learning'"),
    "top-extra-table": ("seed = 1\n[foo]\nx = 1\n", "unknown table [foo]"),
    "not-toml": ("[train\n", "not valid TOML"),
    "hw-not-table": ("[train]\nhw = 3\n", "hw = 3"),
    "huge-seed": ("[train]\nseed = 9223372036854775807\nepochs = -2\n", "epochs = -2"),
}
TOML_CMDS = {"train": ["train"], "rtl": ["rtl", "--out", "rtl"], "trace": ["trace", "--out", "t.jsonl"]}
SUBPROCESS_TOML = {("train", "train-not-table"), ("rtl", "train-not-table")}


TOML_PAIRS = [(c, k) for k in TOMLS for c in TOML_CMDS]


@pytest.mark.parametrize("case, cmd", [(k, c) for c, k in TOML_PAIRS], ids=[f"{k}-{c}" for c, k in TOML_PAIRS])
def test_bad_config_file(case, cmd, tmp_path, capsys, monkeypatch):
    text, needle = TOMLS[case]
    run_case(tmp_path, [*TOML_CMDS[cmd], "--config", "c.toml"], ["c.toml", needle], {"c.toml": text},
             (cmd, case) in SUBPROCESS_TOML, capsys, monkeypatch)


def test_missing_and_folder_config(tmp_path, capsys, monkeypatch):
    run_case(tmp_path, ["train", "--config", "nope.toml"], ["does not exist"], None, False, capsys, monkeypatch)
    (tmp_path / "d.toml").mkdir()
    run_case(tmp_path, ["rtl", "--config", "d.toml"], ["is a folder"], None, False, capsys, monkeypatch)


# --------------------------------------------------------------------------------- bshw train flags
def _file(p):
    p.write_text("not a folder\n")


TRAIN_CASES = {
    "device-foo": (["--device", "foo"], ["device = 'foo'"]),
    "seed-huge": (["--seed", str(2**63)], ["seed = 9223372036854775808"]),
    "seed-negative": (["--seed", "-1"], ["seed = -1"]),
    "epochs-negative": (["--epochs", "-1"], ["epochs = -1"]),
    "batch-zero": (["--batch", "0"], ["batch = 0"]),
    "votes-zero": (["--votes", "0"], ["votes = 0"]),
    "votes-huge": (["--votes", "5000"], ["votes = 5000"]),
    "hidden-zero": (["--hidden", "0"], ["hidden"]),
    "hidden-text": (["--hidden", "a,b"], ["--hidden 'a,b'"]),
    "input-side": (["--input-side", "1"], ["input_side = 1"]),
    "lr-zero": (["--lr", "0"], ["lr = 0"]),
    "lr-nan": (["--lr", "nan"], ["lr = nan"]),
    "lr-inf": (["--lr", "inf"], ["lr = inf"]),
    "a-negative": (["--a", "-1"], ["a = -1"]),
    "w-range-zero": (["--w-range", "0"], ["w_range = 0"]),
    "init-gain-inf": (["--init-gain", "inf"], ["init_gain = inf"]),
    "weights-int1": (["--weights", "int1"], ["weights = 'int1'"]),
    "weights-bogus": (["--weights", "float16"], ["weights = 'float16'"]),
    "train-limit-zero": (["--train-limit", "0"], ["train_limit = 0"]),
    "test-limit-negative": (["--test-limit", "-5"], ["test_limit = -5"]),
    "threads-zero": (["--threads", "0"], ["--threads 0"]),
    "deriv-k": (["--deriv-k", "3"], ["deriv_k = 3"]),
    "algo": (["--algo", "QQQ"], ["algo = 'QQQ'"]),
    "exact-tie": (["--mode", "exact", "--tie", "plus"], ["--tie does not apply to --mode exact"]),
    "exact-init-gain": (["--mode", "exact", "--init-gain", "1"], ["--init-gain does not apply"]),
    "exact-fp32": (["--mode", "exact", "--weights", "fp32"], ["needs integer weights"]),
    "exact-hhh": (["--mode", "exact", "--algo", "HHH"], ["algo SSS"]),
    "exact-lr-tiny": (["--mode", "exact", "--lr", "1e-12"], ["counter"]),
    "out-is-file": (["--out", "afile"], ["afile", "not a folder"], {"afile": _file}),
    "out-under-file": (["--out", "afile/run"], ["afile", "not a folder"], {"afile": _file}),
    "data-missing": (["--data", "nodata"], ["nodata", "does not exist"]),
    "data-empty": (["--data", "empty"], ["holds no mnist files"], {"empty/x.txt": "x"}),
    "resume-nothing": (["--resume", "--out", "run"], ["no checkpoint"]),
    "net-vgg-mnist": (["--net", "vgg", "--dataset", "mnist"], ["needs CIFAR-10"]),
}
SUBPROCESS_TRAIN = {"device-foo"}


@pytest.mark.parametrize("case", list(TRAIN_CASES))
def test_bad_train_flags(case, tmp_path, capsys, monkeypatch):
    argv, needles, *files = TRAIN_CASES[case]
    run_case(tmp_path, ["train", *TINY, "--epochs", "1", *argv], needles, files[0] if files else None,
             case in SUBPROCESS_TRAIN, capsys, monkeypatch)


def test_cuda_without_cuda(tmp_path, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    run_case(tmp_path, ["train", *TINY, "--device", "cuda"], ["no CUDA device"], None, False, capsys, monkeypatch)


# ------------------------------------------------------------------------------------ checkpoints
def _checkpoint(mode: str, edit):
    """A checkpoint.pt writer for the TINY run of ``mode``, changed by ``edit(dict)``."""
    def write(p):
        from bshw.golden.model import make_learner

        cfg = TrainConfig(**TINY_CFG, epochs=1, mode=mode, weights="int8" if mode == "exact" else "fp32")
        ck = {"config": cfg.to_dict(), "epoch": 1, "learner": make_learner(cfg).state_dict(),
              "metrics": {"epochs": [{"epoch": 1}]}}
        ck = copy.deepcopy(ck)
        edit(ck)
        torch.save(ck, p)
    return write


def _w(ck, i=0):
    """Layer i's weight tensor of either learner."""
    w = ck["learner"]["weights"][i]
    return w["w"] if isinstance(w, dict) else w


def _set_w(ck, value, i=0):
    if isinstance(ck["learner"]["weights"][i], dict):
        ck["learner"]["weights"][i]["w"] = value
    else:
        ck["learner"]["weights"][i] = value


CHECKPOINTS = {
    "wrong-shape": (lambda ck: _set_w(ck, torch.zeros(4, 1, dtype=_w(ck).dtype)), ["has shape [4, 1], expected"]),
    "missing-layer": (lambda ck: ck["learner"]["weights"].pop(), ["learner.weights has 1 entries, expected 2"]),
    "negative-epoch": (lambda ck: ck.update(epoch=-1), ["epoch = -1 is negative"]),
    "string-epoch": (lambda ck: ck.update(epoch="1"), ["epoch = '1' is a str"]),
    "bool-epoch": (lambda ck: ck.update(epoch=True), ["epoch = True"]),
    "nan-weights": (lambda ck: _set_w(ck, torch.full_like(_w(ck), float("nan"), dtype=torch.float32)),
                    ["learner.weights[0]"]),
    "missing-key": (lambda ck: ck.pop("metrics"), ["metrics is missing"]),
    "not-a-dict": (lambda ck: ck.clear(), ["config is missing"]),
    "other-network": (lambda ck: ck["config"].update(hidden=[5]), ["from another network: hidden"]),
    "metrics-mismatch": (lambda ck: ck.update(epoch=2), ["metrics.epochs has 1 entries"]),
    "learner-extra-key": (lambda ck: ck["learner"].update(extra=1), ["learner.extra is unexpected"]),
    "learner-not-dict": (lambda ck: ck.update(learner=[1]), ["learner is a list"]),
}
EXACT_ONLY = {
    "weights-out-of-range": (lambda ck: ck["learner"]["weights"][0].fill_(500), ["holds values in [500, 500]"]),
    "lfsr-zero": (lambda ck: ck["learner"]["lfsr_in"].fill_(0), ["learner.lfsr_in holds values"]),
    "other-params": (lambda ck: ck["learner"]["params"].update(th=99), ["learner.params.th = 99"]),
    "counters-float": (lambda ck: ck["learner"]["counters"].__setitem__(0, ck["learner"]["counters"][0].float()),
                       ["learner.counters[0] has dtype float32"]),
}
CK_CASES = [(m, k) for m in ("float", "exact") for k in CHECKPOINTS] + [("exact", k) for k in EXACT_ONLY]
SUBPROCESS_CK = {("float", "wrong-shape")}


@pytest.mark.parametrize("mode, case", CK_CASES, ids=[f"{m}-{k}" for m, k in CK_CASES])
def test_bad_checkpoint(mode, case, tmp_path, capsys, monkeypatch):
    edit, needles = {**CHECKPOINTS, **EXACT_ONLY}[case]
    if mode == "float" and case == "nan-weights":
        needles = ["holds NaN"]
    elif case == "nan-weights":
        needles = ["learner.weights[0] has dtype float32"]
    run_case(tmp_path, ["train", *TINY, "--epochs", "2", "--mode", mode, "--out", "run", "--resume"],
             ["run/checkpoint.pt", *needles], {"run/checkpoint.pt": _checkpoint(mode, edit)},
             (mode, case) in SUBPROCESS_CK, capsys, monkeypatch)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04truncated"])
def test_unreadable_checkpoint(content, tmp_path, capsys, monkeypatch):
    run_case(tmp_path, ["train", *TINY, "--epochs", "2", "--out", "run", "--resume"], ["cannot be read"],
             {"run/checkpoint.pt": content}, False, capsys, monkeypatch)


def test_good_checkpoint_resumes(tmp_path, capsys, monkeypatch):
    """The validation passes a checkpoint of the learner's own layout (the real resume is in test_golden)."""
    from bshw.golden.model import make_learner
    from bshw.golden.train import check_checkpoint

    for mode in ("float", "exact"):
        cfg = TrainConfig(**TINY_CFG, epochs=2, mode=mode, weights="int8" if mode == "exact" else "fp32")
        learner = make_learner(cfg)
        p = tmp_path / f"{mode}.pt"
        _checkpoint(mode, lambda ck: None)(p)
        epoch, metrics = check_checkpoint(torch.load(p, weights_only=True), cfg, learner, p)
        assert epoch == 1 and len(metrics["epochs"]) == 1


# ------------------------------------------------------------------------------------- bshw trace
TRACE_CASES = {
    "steps-zero": (["--steps", "0"], ["--steps 0"]),
    "steps-negative": (["--steps", "-3"], ["--steps -3"]),
    "hw-not-json": (["--hw", "{bad"], ["--hw is not valid JSON"]),
    "hw-list": (["--hw", "[1]"], ["hw = [1]"]),
    "hw-tie-list": (["--hw", '{"tie": []}'], ["hw.tie = []"]),
    "hw-unknown": (["--hw", '{"bogus": 1}'], ["unknown key 'bogus'"]),
    "hw-th-float": (["--hw", '{"th": 1e400}'], ["hw.th = inf"]),
    "weights-fp32": (["--weights", "fp32"], ["needs integer weights"]),
    "hidden-zero": (["--hidden", "0"], ["hidden"]),
    "batch-zero": (["--batch", "0"], ["batch = 0"]),
    "seed-negative": (["--seed", "-1"], ["seed = -1"]),
    "seed-huge": (["--seed", str(2**64)], ["seed = 18446744073709551616"]),
    "input-side": (["--input-side", "40"], ["input_side = 40"]),
    "too-many-samples": (["--steps", "700", "--batch", "100"], ["need 70000 samples"]),
    "data-missing": (["--data", "nodata"], ["nodata"]),
}
SUBPROCESS_TRACE = {"steps-zero"}


@pytest.mark.parametrize("case", list(TRACE_CASES))
def test_bad_trace_args(case, tmp_path, capsys, monkeypatch):
    argv, needles = TRACE_CASES[case]
    run_case(tmp_path, ["trace", "--out", "t.jsonl", "--steps", "1", "--batch", "2", *argv], needles, None,
             case in SUBPROCESS_TRACE, capsys, monkeypatch)


@pytest.mark.parametrize("where", ["folder", "under-file"])
def test_trace_out_unwritable(where, tmp_path, capsys, monkeypatch):
    out = {"folder": "adir", "under-file": "afile/t.jsonl"}[where]
    files = {"afile": _file, "adir/keep": "x"}
    run_case(tmp_path, ["trace", "--out", out, "--steps", "1", "--batch", "2"], ["cannot write", out.split("/")[0]],
             files, False, capsys, monkeypatch)


# --------------------------------------------------------------------------- golden trace loader
@pytest.fixture(scope="module")
def good_trace() -> list:
    """A valid 2-step trace (batch 2, 16-4-10) as its lines."""
    from bshw.golden.exact.trace import make_trace

    cfg = TrainConfig(hidden=(4,), input_side=4, batch=2, weights="int8", mode="exact", seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, 28, 28), generator=g, dtype=torch.uint8)
    return make_trace(cfg, 2, x, torch.tensor([1, 2, 3, 4])).splitlines()


def _edit(line: int, f, replace=False):
    """Change line ``line`` (0 = header) of the trace: ``f(obj)`` edits the JSON object in place, or
    with ``replace`` returns the value written instead."""
    def go(lines):
        obj = json.loads(lines[line])
        r = f(obj)
        lines[line] = json.dumps(r if replace else obj)
        return "\n".join(lines) + "\n"
    return go


def _pop(key):
    return lambda o: o.pop(key)


TRACE_FAULTS = {
    "missing-file": (None, "line", "cannot read it"),
    "empty": (lambda ls: "", "line 1", "empty file"),
    "blank-only": (lambda ls: "\n\n", "line 2", "empty file"),
    "header-not-object": (lambda ls: "[1, 2]\n" + "\n".join(ls[1:]) + "\n", "line 1", "expected an object"),
    "header-not-json": (lambda ls: "{oops\n" + "\n".join(ls[1:]) + "\n", "line 1", "not JSON"),
    "binary": (lambda ls: b"\xff\xfe\x00", "line 1", "not UTF-8"),
    **{f"header-no-{k}": (_edit(0, _pop(k)), "line 1", f"lacks {k}")
       for k in ("format", "version", "seed", "config", "params", "layers", "init")},
    "wrong-format": (_edit(0, lambda o: o.update(format="other")), "line 1", "format = 'other'"),
    "wrong-version": (_edit(0, lambda o: o.update(version=2)), "line 1", "version = 2"),
    "header-bad-config": (_edit(0, lambda o: o["config"].update(batch=0)), "line 1", "batch = 0"),
    "header-layers-chain": (_edit(0, lambda o: o["layers"][1].update(fan_in=5)), "line 1", "layers[1].fan_in"),
    "header-init-shape": (_edit(0, lambda o: o["init"]["weights"][0].pop()), "line 1", "init.weights[0]"),
    "step-not-json": (lambda ls: "\n".join([ls[0], "{nope", ls[2]]) + "\n", "line 2", "not JSON"),
    "step-not-object": (_edit(1, lambda o: [o], replace=True), "line 2", "expected an object"),
    **{f"step-no-{k}": (_edit(1, _pop(k)), "line 2", f"lacks {k}")
       for k in ("step", "labels", "samples", "update", "lfsr_in_end", "lfsr_end")},
    "pixels-length": (_edit(1, lambda o: o["samples"][0]["pixels"].pop()), "line 2", "samples[0].pixels has 15"),
    "labels-count": (_edit(1, lambda o: o["labels"].append(0)), "line 2", "one per label (3)"),
    "label-range": (_edit(2, lambda o: o["labels"].__setitem__(0, 10)), "line 3", "labels"),
    "update-count": (_edit(1, lambda o: o["update"].pop()), "line 2", "update has 1 entries, expected one per layer (2)"),
    "update-shape": (_edit(2, lambda o: o["update"][1]["weights"][0].pop()), "line 3", "update[1].weights[0]"),
    "update-missing": (_edit(1, lambda o: o["update"][0].pop("carry")), "line 2", "update[0] lacks carry"),
    "lfsr-end-length": (_edit(1, lambda o: o["lfsr_end"].pop()), "line 2", "lfsr_end"),
    "step-order": (_edit(2, lambda o: o.update(step=5)), "line 3", "step = 5, expected 1"),
    "truncated": (lambda ls: "\n".join(ls[:2]) + "\n" + ls[2][: len(ls[2]) // 2], "line 3", "truncated"),
    "no-steps": (lambda ls: ls[0] + "\n", "line 2", "a trace with no training steps compares nothing"),
}


@pytest.mark.parametrize("case", list(TRACE_FAULTS))
def test_bad_trace_file(case, good_trace, tmp_path):
    from bshw.golden.exact.trace import load_trace

    make, line, needle = TRACE_FAULTS[case]
    path = tmp_path / "t.jsonl"
    if make is not None:
        content = make(list(good_trace))
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(BshwError) as e:
        load_trace(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"bad trace {path}: ") and needle in msg, msg
    if make is not None:
        assert f": {line}:" in msg, msg


def test_trace_loader_good_and_steps(good_trace, tmp_path):
    from bshw.golden.exact.trace import load_trace, read_trace

    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(good_trace) + "\n")
    hd, steps = load_trace(path)
    assert hd["format"] == "bshw-exact-trace" and [s["step"] for s in steps] == [0, 1]
    assert [s["step"] for s in load_trace(path, steps=1)[1]] == [0]
    assert read_trace(path)[1] == steps
    with pytest.raises(BshwError, match="steps = 0"):
        load_trace(path, steps=0)
    (tmp_path / "d").mkdir()
    with pytest.raises(BshwError, match="is a folder"):
        load_trace(tmp_path / "d")


# -------------------------------------------------------------------------- bshw energy (no torch)
ENERGY_CASES = {
    "ns-inf": (["--ns-per-bit", "inf"], ["--ns-per-bit inf"]),
    "ns-denormal": (["--ns-per-bit", "1e-320"], ["--ns-per-bit 1e-320"]),
    "ns-nan": (["--ns-per-bit", "nan"], ["--ns-per-bit nan"]),
    "ns-zero": (["--ns-per-bit", "0"], ["--ns-per-bit 0"]),
    "ns-huge": (["--ns-per-bit", "1e30"], ["--ns-per-bit 1e+30"]),
    "input-bits-zero": (["--input-bits", "0"], ["--input-bits 0"]),
    "input-bits-huge": (["--input-bits", "1000"], ["--input-bits 1000"]),
    "array-zero": (["--array-size", "0"], ["--array-size 0"]),
    "array-huge": (["--array-size", "10000000"], ["--array-size 10000000"]),
    "batch-zero": (["--net", "fc", "--batch", "0"], ["--batch 0"]),
    "batch-negative": (["--net", "fc", "--batch", "-5"], ["--batch -5"]),
    "train-samples-zero": (["--net", "fc", "--train-samples", "0"], ["--train-samples 0"]),
    "batch-without-net": (["--batch", "10"], ["apply to --net only"]),
    "set-divisor-zero": (["--set", "memristor.macro_pj_without_adc=0"], ["memristor.macro_pj_without_adc = 0",
                                                                          "must be positive"]),
    "set-area-zero": (["--set", "memristor.area_um2_without_adc=0"], ["area_um2_without_adc = 0"]),
    "set-ns-zero": (["--set", "memristor.ns_per_bit=0"], ["ns_per_bit = 0"]),
    "set-int8-zero": (["--set", "cmos.int8_add_pj=0"], ["int8_add_pj = 0"]),
    "set-huge": (["--set", "cmos.fp32_add_pj=1e300"], ["sane range"]),
    "set-tiny": (["--set", "memristor.ns_per_bit=1e-320"], ["sane range"]),
    "set-inf": (["--set", "cmos.fp32_add_pj=inf"], ["must be a finite number"]),
    "set-nan": (["--set", "cmos.fp32_add_pj=nan"], ["must be a finite number"]),
    "set-text": (["--set", "cmos.fp32_add_pj=abc"], ["is not a number"]),
    "set-fraction": (["--set", "periphery.toggle_rate=2"], ["is a fraction"]),
    "set-unknown": (["--set", "cmos.nope=1"], ["unknown constant"]),
    "set-no-equals": (["--set", "cmos.fp32_add_pj"], ["expected SECTION.KEY=VALUE"]),
    "plot-suffix": (["--plot", "e.xyz"], ["unsupported image format .xyz"]),
    "plot-folder": (["--plot", "adir"], ["it is a folder"], {"adir/keep": "x"}),
    "plot-under-file": (["--plot", "afile/e.png"], ["afile is a file"], {"afile": _file}),
    "json-under-file": (["--json", "afile/e.json"], ["afile is a file"], {"afile": _file}),
    "json-folder": (["--json", "adir"], ["it is a folder"], {"adir/keep": "x"}),
    "constants-missing": (["--constants", "nope.toml"], ["does not exist"]),
    "constants-zero-divisor": (["--constants", "c.toml"], ["macro_rows = 0"],
                               {"c.toml": lambda p: p.write_text(
                                   (REPO / "bshw/energy_constants.toml").read_text().replace(
                                       "macro_rows = 128", "macro_rows = 0"))}),
    "hidden-zero": (["--net", "fc", "--hidden", "0"], ["--hidden '0'"]),
    "run-missing": (["--run", "norun"], ["does not exist"]),
}


@pytest.mark.parametrize("case", list(ENERGY_CASES))
def test_bad_energy(case, tmp_path):
    argv, needles, *files = ENERGY_CASES[case]
    run_case(tmp_path, ["energy", "--synth", "none.json", *argv], needles, files[0] if files else None,
             subprocess_=True)


# ------------------------------------------------------------------------------ bshw emit / data
EMIT_CASES = {
    "out-is-file": (["--out", "afile"], ["afile", "not a folder"]),
    "out-under-file": (["--out", "afile/rtl"], ["afile is a file"]),
    "out-deep-under-file": (["--out", "afile/a/b"], ["afile is a file"]),
}


@pytest.mark.parametrize("case", list(EMIT_CASES))
def test_bad_emit(case, tmp_path):
    argv, needles = EMIT_CASES[case]
    run_case(tmp_path, ["emit", *argv], needles, {"afile": _file}, subprocess_=True)


DATA_CASES = {
    "check-missing": (["check", "--data", "nodata"], ["nodata", "does not exist"]),
    "check-file": (["check", "--data", "afile"], ["afile"]),
    "check-empty": (["check", "--data", "empty"], ["holds no mnist files"]),
    "check-cifar-empty": (["check", "--name", "cifar10", "--data", "empty"], ["holds no cifar10 files"]),
    "subset-src-missing": (["make-subset", "--src", "nodata", "--out", "sub"], ["nodata"]),
    "subset-out-under-file": (["make-subset", "--src", str(REPO / "bshw/golden/data/mnist-subset"), "--out", "afile/sub",
                               "--train", "10", "--test", "10"], ["afile", "not a folder"]),
    "subset-too-big": (["make-subset", "--src", str(REPO / "bshw/golden/data/mnist-subset"), "--out", "sub",
                        "--train", "999999"], ["subset size"]),
}
SUBPROCESS_DATA = {"check-missing"}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data(case, tmp_path, capsys, monkeypatch):
    argv, needles = DATA_CASES[case]
    run_case(tmp_path, ["data", *argv], needles, {"afile": _file, "empty/x.txt": "x"},
             case in SUBPROCESS_DATA, capsys, monkeypatch)


# ------------------------------------------------------------------------------------ fault tests
PAUSE = r"""
import os, sys, time
real = os.replace
def paused(src, dst, *a, **k):
    if str(dst).endswith(os.environ["PAUSE_AT"]):
        print("PAUSED", flush=True)
        time.sleep(600)
    return real(src, dst, *a, **k)
os.replace = paused
from bshw.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _paused_train(tmp_path, out, pause_at):
    """A ``bshw train`` that stops (holding its lock) inside the atomic write of ``pause_at``."""
    env = {**_env(), "PAUSE_AT": pause_at}
    p = subprocess.Popen([sys.executable, "-c", PAUSE, "train", *TINY, "--epochs", "1", "--threads", "1",
                          "--out", out], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 1.0)
        if r and "PAUSED" in p.stdout.readline():
            return p
        if p.poll() is not None:
            break
    p.kill()
    pytest.fail(f"the paused run did not pause: {p.stderr.read()}")


def test_two_trains_into_one_folder(tmp_path):
    first = _paused_train(tmp_path, "run", "config.json")
    try:
        before = snapshot(tmp_path)
        rc, _, err = cli(["train", *TINY, "--epochs", "1", "--threads", "1", "--out", "run"], tmp_path)
        assert_refused(rc, err, before, snapshot(tmp_path), ["run", "in use by another bshw run",
                                                              f"pid {first.pid}"])
    finally:
        first.kill()
        first.wait()


def test_kill_during_write_then_rerun_cleans(tmp_path):
    first = _paused_train(tmp_path, "run", "config.json")
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    run = tmp_path / "run"
    names = sorted(os.listdir(run))
    assert any(n.startswith(".config.json.") and n.endswith(".tmp") for n in names), names
    assert ".bshw.lock" in names  # left by the kill, but its flock died with the process
    # the rerun (one epoch; --epochs 0 is refused since issue 23)
    rc, out, err = cli(["train", *TINY, "--epochs", "1", "--threads", "1", "--out", "run"], tmp_path)
    assert rc == 0, err
    names = sorted(os.listdir(run))
    assert names == ["activation_cdf.png", "checkpoint.pt", "config.json", "learning_curves.png", "metrics.json",
                     "network.json", "weight_density.png"], names


def test_stale_temp_rules(tmp_path):
    """Dead writer or older than 10 minutes: removed; a live writer's fresh file and others: kept."""
    from bshw.io import _host_tag, atomic_write_text

    host = _host_tag()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    names = {f".a.json.{host}-{dead}.abcd1234.tmp": False, f".a.json.{host}-{os.getpid()}.abcd1234.tmp": True,
             ".b.json.xyzw5678.tmp": True, ".notes.tmp": True, "keep.tmp": True}
    for n in names:
        (tmp_path / n).write_text("x")
    old = tmp_path / ".c.pt.0000-1.qwer1234.tmp"
    old.write_text("x")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    names[old.name] = False
    atomic_write_text(tmp_path / "z.txt", "z")
    for n, kept in names.items():
        assert (tmp_path / n).exists() == kept, n


def _can_mount() -> str:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return "needs root and unshare for a private tmpfs"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt && umount /mnt"],
                           capture_output=True)
    return "" if probe.returncode == 0 else "cannot mount a tmpfs in a private mount namespace here"


FS_SCRIPT = r"""
set -e
mount -t tmpfs -o size=64k tmpfs "$D"
mkdir -p "$D/keep"
if [ "$MODE" = full ]; then dd if=/dev/zero of="$D/filler" bs=1k count=100 2>/dev/null || true; fi
if [ "$MODE" = ro ]; then mount -o remount,ro "$D"; fi
set +e
"$PY" -m bshw.cli "$@" >/dev/null 2>"$ERR"
rc=$?
cd "$D" && find . | sort
exit $rc
"""
FS_CASES = {
    "full-energy-json": ("full", ["energy", "--synth", "none.json", "--json", "{D}/e.json"], "No space left"),
    "ro-emit": ("ro", ["emit", "--out", "{D}/rtl"], "read-only"),
    "ro-energy-plot": ("ro", ["energy", "--synth", "none.json", "--plot", "{D}/e.png"], "read-only"),
    "ro-train": ("ro", ["train", *TINY, "--epochs", "1", "--out", "{D}/run"], "read-only"),
}


@pytest.mark.parametrize("case", list(FS_CASES))
def test_full_or_read_only_disk(case, tmp_path):
    why = _can_mount()
    if why:
        pytest.skip(why)
    mode, argv, needle = FS_CASES[case]
    d = tmp_path / "mnt"
    d.mkdir()
    err = tmp_path / "err.txt"
    env = {**_env(), "D": str(d), "MODE": mode, "PY": sys.executable, "ERR": str(err)}
    p = subprocess.run(["unshare", "-m", "sh", "-c", FS_SCRIPT, "sh", *[a.format(D=d) for a in argv]],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    text = err.read_text()
    want = [".", "./filler", "./keep"] if mode == "full" else [".", "./keep"]
    assert_refused(p.returncode, text, want, p.stdout.split(), [needle, str(d)])


# ------------------------------------------------------------------------------ sim, rtl, synth, flow
def _trace_files(good_trace, edit=None):
    lines = list(good_trace)
    return {"t.jsonl": "\n".join(edit(lines) if edit else lines) + "\n"}


SIM_CASES = {  # argv (after `sim`), needles, trace edit (None: the good trace)
    "missing-trace": (["nope.jsonl"], ["bad trace", "nope.jsonl"], None),
    "header-only": (["t.jsonl"], ["compares nothing"], lambda ls: ls[:1]),
    "header-not-object": (["t.jsonl"], ["bad trace", "line 1"], lambda ls: ["[1, 2]"] + ls[1:]),
    "cut-line": (["t.jsonl"], ["bad trace", "line 2"], lambda ls: ls[:1] + [ls[1][: len(ls[1]) // 2]]),
    "steps-zero": (["t.jsonl", "--steps", "0"], ["--steps 0"], None),
    "infer-negative": (["t.jsonl", "--infer", "-1"], ["--infer -1"], None),
    "folder-trace": (["."], ["bad trace"], None),
}


@pytest.mark.parametrize("case", list(SIM_CASES))
def test_bad_sim(case, good_trace, tmp_path, capsys, monkeypatch):
    """A bad trace or value is bad input (exit 2), never a verification result."""
    argv, needles, edit = SIM_CASES[case]
    run_case(tmp_path, ["sim", *argv, "--build-dir", "b"], needles, _trace_files(good_trace, edit),
             capsys=capsys, monkeypatch=monkeypatch)


RTL_CASES = {
    "latency-0": (["--read-latency", "0"], ["read_latency"]),
    "bank-not-dividing": (["--bank-cols", "3"], ["does not divide"]),
    "input-lanes-not-power-of-two": (["--input-lanes", "3"], ["input_lanes = 3", "power of two"]),
    "input-lanes-0": (["--input-lanes", "0"], ["input_lanes"]),
    "prefix": (["--prefix", "9bad-"], ["--prefix"]),
    "hidden-0": (["--hidden", "0"], ["hidden"]),
    "host-output": (["--hw", '{"output": "host"}'], ["onchip"]),
    "bad-hw-json": (["--hw", "{bad"], ["--hw"]),
}


@pytest.mark.parametrize("case", list(RTL_CASES))
def test_bad_rtl(case, tmp_path, capsys, monkeypatch):
    argv, needles = RTL_CASES[case]
    run_case(tmp_path, ["rtl", "--out", "x", "--no-components", *argv], needles, capsys=capsys,
             monkeypatch=monkeypatch)


def test_rtl_out_under_a_file(tmp_path, capsys, monkeypatch):
    run_case(tmp_path, ["rtl", "--out", "f/x", "--no-components"], ["f"], files={"f": "a file"}, capsys=capsys,
             monkeypatch=monkeypatch)


SYNTH_CASES = {
    "unknown-target": (["--targets", "bogus"], ["unknown synthesis target 'bogus'"]),
    "bad-layer-size": (["--layer-sizes", "8by4"], ["layer size"]),
    "zero-layer": (["--layer-sizes", "0x4"], [">= 1"]),
    "bad-network": (["--network", "784-x-10"], ["--network"]),
    "short-network": (["--network", "784"], ["--network"]),
}


@pytest.mark.parametrize("case", list(SYNTH_CASES))
def test_bad_synth(case, tmp_path, capsys, monkeypatch):
    argv, needles = SYNTH_CASES[case]
    run_case(tmp_path, ["synth", "--out", "s", *argv], needles, capsys=capsys, monkeypatch=monkeypatch)


FLOW_CASES = {
    "missing-config": ([], ["does not exist"], {}, "nope.toml"),
    "train-not-table": ([], ["must be tables"], {"c.toml": "train = 5\n"}, "c.toml"),
    "flow-not-table": ([], ["must be tables"], {"c.toml": "flow = 5\n"}, "c.toml"),
    "unknown-table": ([], ["unknown table"], {"c.toml": "[extra]\nx = 1\n"}, "c.toml"),
    "unknown-flow-key": ([], ["flow.bogus"], {"c.toml": "[flow]\nbogus = 1\n"}, "c.toml"),
    "bad-toml": ([], ["not valid TOML"], {"c.toml": "[train\n"}, "c.toml"),
    "bad-epochs": ([], ["epochs"], {"c.toml": "[train]\nepochs = true\n"}, "c.toml"),
}


@pytest.mark.parametrize("case", list(FLOW_CASES))
def test_bad_flow_config(case, tmp_path, capsys, monkeypatch):
    argv, needles, files, config = FLOW_CASES[case]
    run_case(tmp_path, ["flow", "--config", config, "--out", "run", *argv], needles, files, capsys=capsys,
             monkeypatch=monkeypatch)
