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
