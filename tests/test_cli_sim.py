"""Waveforms and seeds you can find (issue 23): with ``WAVES=1`` a bench's waveform lands in the stable
``sim_build/waves/<bench>/`` (here ``$BSHW_WAVES_DIR``), its path is printed and exists; ``SEED`` reaches
the bench, and a failed run prints its seed. Two runs of a small component bench under Icarus, ~15 s.
"""

import os

import pytest

from bshw.sim import runner

needs_sim = pytest.mark.skipif(not runner.have_simulator(os.environ.get("SIM") or "icarus"),
                               reason="needs Icarus Verilog (iverilog) on PATH: apt-get install -y iverilog")


@pytest.mark.sim
@needs_sim
def test_waves_path_printed_and_kept(tmp_path, monkeypatch, capfd):
    waves = tmp_path / "waves"
    monkeypatch.setenv("BSHW_WAVES_DIR", str(waves))
    monkeypatch.setenv("WAVES", "1")
    monkeypatch.setenv("SEED", "123")
    r = runner.run_component("bench_error", {"tie": "gated"}, knobs={"vectors": 200}, build_dir=tmp_path / "b")
    assert r["passed"], r["failures"]
    assert r["seed"] == 123 and r["metrics"]["error_driver_random"]["seed"] == 123  # SEED reached the bench
    err = capfd.readouterr().err
    printed = [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith("waveform: ")]
    assert printed == [r["waves"]], err
    path = waves / "bench_error" / (printed[0].rsplit("/", 1)[-1])
    assert str(path) == printed[0] and path.is_file() and path.stat().st_size > 0
    assert str(path) in (waves / "index.txt").read_text()
    assert runner.RUNS[-1]["waves"] == str(path) and runner.RUNS[-1]["seed"] == 123


def test_waves_dir_default(tmp_path, monkeypatch):
    monkeypatch.delenv("BSHW_WAVES_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert runner.waves_dir() == tmp_path / "sim_build" / "waves"


@pytest.mark.sim
@needs_sim
def test_failed_bench_prints_its_seed(tmp_path, monkeypatch, capfd):
    """A bench that fails says which seed repeats it, even under pytest -q (stderr, and RUNS for the
    end-of-session summary of tests/conftest.py)."""
    monkeypatch.setenv("SEED", "77")
    monkeypatch.delenv("WAVES", raising=False)
    # a DUT whose parameters disagree with its model's: the bench's first comparison fails
    r = runner.run_component("bench_error", {"tie": "gated"}, knobs={"vectors": 200}, build_dir=tmp_path / "b",
                             extra_env={runner.PARAMS_ENV: '{"tie": "plus", "vectors": 200}'})
    assert not r["passed"] and r["seed"] == 77
    assert "failed with seed 77: rerun with SEED=77" in capfd.readouterr().err
    assert runner.RUNS[-1]["passed"] is False and runner.RUNS[-1]["seed"] == 77
    runner.RUNS.pop()  # an intended failure: kept out of the session's summary of failed benches
