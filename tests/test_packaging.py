"""Packaging (issue 17): one ``bshw`` namespace and a non-editable install that runs the flow outside the
checkout with its shipped configurations (the HDL path without torch: tests/test_rtl_emit.py)."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_one_namespace():
    """Only ``bshw`` is a top-level package: no ``golden`` or ``sim`` to collide in site-packages."""
    import tomllib

    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["bshw*"]
    assert not (REPO / "golden").exists() and not (REPO / "sim").exists()


@pytest.mark.slow
def test_installed_wheel_runs_outside_the_checkout(tmp_path):
    """``pip install .`` (a wheel, not editable) carries the configurations, the Verilog model and the
    MNIST subset; ``bshw flow --config flow-tiny`` then trains from a folder with no checkout in it."""
    wheels = tmp_path / "wheels"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("bshw-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for need in ("bshw/configs/flow.toml", "bshw/configs/flow-tiny.toml", "bshw/configs/paper.toml",
                 "bshw/verilog/bshw_crossbar_model.v", "bshw/golden/data/mnist-subset/SHA256SUMS",
                 "bshw/sim/bench_network.py", "bshw/energy_constants.toml"):
        assert need in names, need
    assert not any(n.startswith(("golden/", "sim/")) for n in names)

    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "BSHW_DATA": ""}
    env.pop("BSHW_DATA")
    code = ("import sys, bshw, bshw.flow as F; assert bshw.__file__.startswith(sys.argv[1]), bshw.__file__; "
            "from bshw.cli import main; sys.exit(main(['flow', '--config', 'flow-tiny', '--out', 'run', "
            "'--stages', 'train-exact', '--epochs', '1', '-q']))")
    r = subprocess.run([sys.executable, "-c", code, str(site)], capture_output=True, text=True, cwd=work,
                       env=env, timeout=900)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    assert (work / "run" / "summary.json").is_file()
    assert (work / "run" / "exact" / "checkpoint.pt").is_file()


def test_public_api_is_lazy():
    """``import bshw`` loads no torch; every name of ``bshw.__all__`` resolves."""
    code = ("import sys, bshw; assert 'torch' not in sys.modules, 'torch at import'; "
            "[getattr(bshw, n) for n in bshw.__all__]; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.sim
def test_readme_python_example(tmp_path, monkeypatch):
    """The README's 'From Python' script runs as written (in a scratch folder)."""
    import re

    text = (REPO / "README.md").read_text()
    code = re.search(r"## From Python.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    assert "{'status': 'ok'} True" in r.stdout and "checks in" in r.stdout, r.stdout
