"""Walk every command shown in README.md, in the README's order (issue 23).

:func:`test_readme_lists_these_commands` reads the ```sh blocks of README.md and checks that their
commands are exactly :data:`WALK`'s, in order: a command added to (or changed in) the README fails
here until the walk says how to check it. :func:`test_readme_walk` then runs them one after another in
one temporary folder (with ``bshw`` -> the checkout's ``bshw/``, so ``bshw/configs/...`` resolves and
every ``runs/...`` lands in the folder; ``$BSHW_DATA`` is the committed MNIST subset, ``DIR`` too). Each
must succeed, or fail with the one-line error the README promises.

How each command is checked (the README command itself, unless said here):

- ``run``: run as written, with the placeholders filled (``DIR``: the MNIST subset).
- ``tiny``: run as written plus the listed flags that shrink it (``--train-limit`` etc.), or with
  the listed flags replacing the README's (a 1-step trace of 10 samples instead of 10 steps of 100,
  through a fixture config ``net10.toml`` that the testbench's ``bshw rtl`` takes too, since the
  counter threshold follows the batch; ``--infer 5`` instead of 100; ``--sim icarus`` for the
  README's ``--sim verilator``, whose C++ build of the system top takes minutes: the same system top
  and Verilog macro model under Icarus, while tests/test_sim_network.py and ``make regress-paper``
  build it under Verilator): same code path, seconds instead of minutes.
- ``flow``: the flow commands run on a tiny flow configuration written by the test (a 16-4-10 net,
  one epoch of 100 samples, a 1-step trace of 10 samples, no synthesis), in ``runs/t``, so the first
  one makes the run directory the later ones re-run stages of; ``flow-tiny.toml`` itself (~1 min
  with its simulation) runs for real in tests/test_flow.py.
- ``refused``: must fail with exit status 2 and the README's one-line error (``--device cuda`` on a
  machine without CUDA; run as ``dry`` where torch sees a GPU).
- ``dry``: too long for CI, checked without running: the configuration loads and the command line
  parses into the README's network (``flow --config paper.toml --epochs 20``; ``bshw rtl`` of the
  paper's 784-500-200-10 periphery, ~1 min and 4.9 MB).
- ``make``: ``make -n TARGET`` (the target exists and its recipe expands; demo, test, sim, mutants,
  synth, regress-paper and the benches take minutes to hours).
- ``help``: ``--help`` of the subcommand (``bshw sweep``: a Ray grid of hours, or a cluster address).

Simulator commands need Icarus (Verilator for ``--sim verilator``, from the ``test`` extra); without
one they must fail with the one-line "not found" error instead. The walk takes ~3 min on 2 shared
cores (marked ``slow``).
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bshw" / "golden" / "data" / "mnist-subset"
LIMITS = ["--train-limit", "200", "--test-limit", "100", "--votes", "1"]
FLOW_TOML = """
[train]
hidden = [4]
input_side = 4
batch = 10
epochs = 1
train_limit = 100
test_limit = 50
votes = 1
seed = 0
weights = "int8"

[flow]
trace_steps = 1
infer_samples = 2
firing_points = 3
firing_draws = 50
synth = false
jobs = 1
threads = 1
"""
FLOW = ["--config", "tiny-flow.toml", "--out", "runs/t"]
# the README's trace net (64-32-10, 8x8, INT8) with batches of 10: th (and the counter width) follow
# the batch, so the trace and the testbench's RTL both take this file
NET10_TOML = "[train]\nhidden = [32]\ninput_side = 8\nweights = \"int8\"\nbatch = 10\n"
B = ".venv/bin/bshw"

# (README command, how, extra) in README order; extra: flags appended (tiny), or {old: new} replacements
WALK = [
    ("make demo", "make", None),
    ("make test", "make", None),
    (f"{B} flow --config bshw/configs/flow-tiny.toml --out runs/t", "flow",
     {"--config bshw/configs/flow-tiny.toml --out runs/t": " ".join(FLOW)}),
    (f"{B} flow --skip synth --skip-missing", "flow", FLOW),
    (f"{B} flow --stages sim,report", "flow", FLOW),
    (f"{B} flow --config bshw/configs/paper.toml --epochs 20", "dry", None),
    (f"{B} flow --config bshw/configs/paper.toml --device cuda", "refused", "no CUDA device"),
    (f"{B} train --config bshw/configs/demo.toml", "tiny", [*LIMITS, "--epochs", "1"]),
    (f"{B} train --net fc --algo SSS --weights int4 --epochs 10 --data DIR --seed 0 --out runs/x", "run", LIMITS),
    (f"{B} train --config bshw/configs/demo.toml --epochs 5 --force", "tiny", LIMITS),
    (f"{B} train --out runs/x --epochs 20 --resume", "run", None),
    (f"{B} train --mode exact --weights int8 --hidden 32 --input-side 8", "tiny", [*LIMITS, "--epochs", "1"]),
    (f"{B} trace --steps 10 --seed 1 --out runs/trace.jsonl", "tiny", {"--steps 10": "--steps 1 --config net10.toml"}),
    (f"{B} energy", "run", None),
    (f"{B} energy --run runs/x --plot runs/x/energy.png", "run", None),
    (f"{B} data check --data DIR", "run", None),
    ("make bench-accuracy", "make", None),
    ("make bench-exact", "make", None),
    ("make rtl", "make", None),
    (f"{B} rtl --input-side 28 --hidden 500 200 --out rtl/paper", "dry", None),
    (f"{B} rtl --config bshw/configs/rtl-example.toml --out build/my --prefix my_ --probes", "run", None),
    (f"{B} sim runs/trace.jsonl --infer 100", "tiny", {"--infer 100": "--infer 5"}),
    (f"{B} sim runs/trace.jsonl --macro hdl --sim verilator", "tiny", {"--sim verilator": "--sim icarus"}),
    (f"{B} rtl --out build/tb --testbench runs/trace.jsonl --infer 100", "tiny",
     {"--infer 100": "--infer 5 --config net10.toml"}),
    ("make sim", "make", None),
    ("SEED=123 WAVES=1 make sim", "make", None),
    ("make mutants", "make", None),
    ("make synth", "make", None),
    ("make regress-paper", "make", None),
    ("make bench-sim", "make", None),
    (f"{B} sweep --config ed-fig5 --workers 2", "help", None),
    (f"{B} sweep --config my.toml --address HOST:6379", "help", None),
]


def readme_commands() -> list:
    text = (REPO / "README.md").read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            cmd = " ".join(line.split(" #")[0].split())
            if cmd:
                out.append(cmd)
    return out


def test_readme_lists_these_commands():
    assert readme_commands() == [c for c, _, _ in WALK], \
        "README.md's commands changed: update WALK in tests/test_readme_walk.py (how to check each)"


def _argv(cmd: str, how: str, extra) -> list:
    if isinstance(extra, dict):
        for old, new in extra.items():
            assert old in cmd, (old, cmd)
            cmd = cmd.replace(old, new)
    words = cmd.replace("DIR", str(DATA)).split()
    assert words[0] == B, cmd
    argv = words[1:]
    if isinstance(extra, list):
        argv += extra
    return argv


def _bshw(argv, cwd, env):
    return subprocess.run([sys.executable, "-m", "bshw.cli", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def _dry(cmd: str):
    import argparse

    if " flow " in cmd:
        import importlib

        F = importlib.import_module("bshw.flow")  # the module (bshw.flow may also name the API function)
        cfg, fcfg = F.load_config(REPO / "bshw" / "configs" / "paper.toml", {"train": {"epochs": 20}})
        assert cfg.hidden == (500, 200) and cfg.epochs == 20 and cfg.weights == "int8"
    else:
        from bshw.golden.exact.params import config_from_args
        from bshw.rtl import add_arguments

        p = argparse.ArgumentParser()
        add_arguments(p)
        args = p.parse_args(cmd.split()[2:])
        cfg = config_from_args(args, ("hidden", "input_side", "seed"), where="rtl")
        assert cfg.hidden == (500, 200) and cfg.input_side == 28 and args.out == "rtl/paper"


def _simulator_of(argv) -> str | None:
    if argv[0] == "sim" or (argv[0] == "flow" and "--skip-missing" not in argv):
        return argv[argv.index("--sim") + 1] if "--sim" in argv else "icarus"
    return None


@pytest.mark.slow
def test_readme_walk(tmp_path):
    import torch

    from bshw.sim.runner import have_simulator

    (tmp_path / "bshw").symlink_to(REPO / "bshw")
    (tmp_path / "tiny-flow.toml").write_text(FLOW_TOML)
    (tmp_path / "net10.toml").write_text(NET10_TOML)
    env = {**os.environ, "BSHW_DATA": str(DATA), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
           "BSHW_WAVES_DIR": str(tmp_path / "waves")}
    env.pop("SEED", None), env.pop("WAVES", None)
    for cmd, how, extra in WALK:
        if how == "make":
            words = cmd.split()
            target = words[words.index("make") + 1:]
            if shutil.which("make") is None:
                continue
            r = subprocess.run(["make", "-n", *target], cwd=REPO, capture_output=True, text=True, timeout=60)
            assert r.returncode == 0 and r.stdout.strip(), (cmd, r.stderr)
        elif how == "help":
            r = _bshw([cmd.split()[1], "--help"], tmp_path, env)
            assert r.returncode == 0 and "usage: bshw" in r.stdout, (cmd, r.stderr)
        elif how == "dry" or (how == "refused" and torch.cuda.is_available()):
            _dry(cmd)
        else:
            argv = _argv(cmd, how, extra)
            sim = _simulator_of(argv)
            r = _bshw(argv, tmp_path, env)
            err = r.stderr.strip()
            if how == "refused":
                assert r.returncode == 2 and extra in err and len(err.splitlines()) == 1, (cmd, err)
            elif sim and not have_simulator(sim):
                # the README's promise without the tool: one line naming what to install, exit 2
                assert r.returncode == 2 and "not found" in err and "Traceback" not in err, (cmd, err)
            else:
                assert r.returncode == 0, f"{cmd} -> {' '.join(argv)}: exit {r.returncode}\n{err[-3000:]}"
    # the walk's products, as the README describes them
    assert (tmp_path / "runs" / "x" / "energy.png").is_file()
    assert (tmp_path / "runs" / "fc-SSS-int8-exact-s0" / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "build" / "my").glob("my_*.v"))[:2] == ["my_comparator_neuron.v",
                                                                                     "my_derivative_sampler.v"]
