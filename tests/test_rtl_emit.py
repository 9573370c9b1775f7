"""Verilog emission (bshw/emit.py): one file per component, byte-identical between runs."""

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
