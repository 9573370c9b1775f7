"""Running a sweep's points as Ray tasks: start or join Ray, skip what is done, record every result.

Each training point and each periphery module to synthesize is one Ray task (``num_cpus=1``, and
``num_gpus=1`` for a point on ``cuda``) with ``max_retries``: Ray runs a task again when its worker
process dies. An exception inside a task is not retried: it is returned as the point's error and
the sweep goes on. The driver writes each result atomically as it arrives (``DIR/points/KEY.json``,
``DIR/synth/MODULE.json``), so an interrupted sweep keeps everything finished, and a rerun skips
every point whose file says ``ok`` (the key hashes the point's resolved config).
"""

import json
import logging
import os
import re
import signal
import socket
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from bshw.errors import BshwError
from bshw.io import atomic_write_json, ensure_dir, run_lock

ADDRESS = re.compile(r"(?:ray://)?(\[[0-9A-Fa-f:]+\]|[A-Za-z0-9._-]+):(\d{1,5})")
LOCAL_OBJECT_STORE = 128 * 1024 * 1024  # results are small dicts: keep Ray's shared memory small
MAX_WORKERS = 1024
POLL_S = 0.5  # how often the progress bar refreshes while no task finishes


# -- arguments ------------------------------------------------------------------------------------
def check_workers(value) -> int:
    """``--workers``: a whole number from 1 to :data:`MAX_WORKERS`."""
    try:
        n = int(str(value).strip())
    except ValueError:
        n = None
    if n is None or not 1 <= n <= MAX_WORKERS:
        raise BshwError(f"--workers {value!r}: expected a whole number from 1 to {MAX_WORKERS}")
    return n


def check_address(address: str) -> str:
    """``--address``: ``auto``, ``HOST:PORT`` (the head's GCS port) or ``ray://HOST:PORT`` (Ray client).

    A host and port are checked for a listening socket (5 s), so a wrong address fails before anything
    starts instead of inside Ray's own connection timeout.
    """
    if address == "auto":  # Ray looks at $RAY_ADDRESS, then the file `ray start` leaves in its temp folder
        import tempfile

        if not os.environ.get("RAY_ADDRESS") and not Path(tempfile.gettempdir(), "ray", "ray_current_cluster").exists():
            raise BshwError("--address auto: no Ray cluster runs on this machine (start one with `ray start --head`, "
                            "or give HOST:PORT)")
        return address
    m = ADDRESS.fullmatch(address or "")
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise BshwError(f"--address {address!r}: expected auto, HOST:PORT or ray://HOST:PORT (e.g. 10.0.0.5:6379)")
    host = m.group(1).strip("[]")
    try:
        with socket.create_connection((host, int(m.group(2))), timeout=5):
            pass
    except OSError as e:
        raise BshwError(f"--address {address}: no Ray cluster answers there ({e.strerror or type(e).__name__})") from None
    return address


@contextmanager
def ray_session(address: str | None, workers: int | None):
    """Ray for the block: joined at ``address``, else a local instance with ``workers`` CPUs.

    A Ray already initialized in this process (a test's fixture, a notebook) is used as it is and
    left running; one started here is shut down at the end.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage-stats banner or upload
    try:
        import ray
    except ImportError:
        raise BshwError("bshw sweep needs Ray: pip install 'ray>=2.40' (or the bshw[sweep] extra)") from None

    if ray.is_initialized():
        yield ray
        return
    kwargs = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    # Ray's default runs workers at nice +15 below the driver; a sweep's work is all in its workers,
    # which then starve beside any other job on the machine
    os.environ.setdefault("RAY_worker_niceness", "0")
    # ray.init installs its own SIGINT/SIGTERM handlers (SIGTERM then kills the driver at once); the
    # bshw CLI's handlers are put back so that Ctrl-C and SIGTERM write the results of finished points
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} \
        if threading.current_thread() is threading.main_thread() else {}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=workers, num_gpus=_local_gpus(), object_store_memory=LOCAL_OBJECT_STORE, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as e:
        where = f"at {address}" if address else "locally"
        raise BshwError(f"Ray cannot start {where}: {(str(e).strip().splitlines() or [type(e).__name__])[0]}") from None
    except BaseException:  # Ctrl-C during the start: stop what Ray had started
        if ray.is_initialized():
            ray.shutdown()
        raise
    finally:
        for sig, h in handlers.items():
            if h is not None:
                signal.signal(sig, h)
    try:
        yield ray
    finally:
        ray.shutdown()


def _local_gpus() -> int:
    try:
        import torch

        return torch.cuda.device_count()
    except Exception:  # a torch without CUDA support answers 0 or raises: no GPUs either way
        return 0


# -- the task ---------------------------------------------------------------------------------------
def call_task(fn, *args) -> dict:
    """Run ``fn(*args)`` inside a task; an exception becomes ``{"status": "error", ...}`` (not retried)."""
    t0 = time.perf_counter()
    try:
        value = fn(*args)
        return {"status": "ok", "value": value, "task_s": time.perf_counter() - t0}
    except BshwError as e:
        return {"status": "error", "error": str(e), "task_s": time.perf_counter() - t0}
    except Exception as e:  # any failure of one point is that point's, never the sweep's
        first = (str(e).strip().splitlines() or [""])[0][:300]
        return {"status": "error", "error": f"{type(e).__name__}: {first}", "traceback": traceback.format_exc(),
                "task_s": time.perf_counter() - t0}


# -- stored results ---------------------------------------------------------------------------------
def read_json(path: Path):
    """A stored result, or None when it is absent or unreadable (then it is simply redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def done_points(sweep, points_dir: Path) -> dict:
    """key -> stored record of the sweep's points whose result is ``ok``."""
    out = {}
    for p in sweep.points:
        rec = read_json(points_dir / f"{p.key}.json")
        if isinstance(rec, dict) and rec.get("key") == p.key and rec.get("status") == "ok":
            out[p.key] = rec
    return out


def run_sweep(sweep, out, *, workers: int | None = None, address: str | None = None, progress: bool = True,
              point_fn=None, synth_fn=None, log=print) -> dict:
    """Run every point of ``sweep`` not yet done into ``out``; write the results and the report.

    Parameters
    ----------
    sweep : bshw.sweep.spec.Sweep
        The validated sweep.
    out : path-like
        Sweep folder: ``points/``, ``synth/``, ``results.csv``, ``results.json``, ``report.html``.
    workers : int or None
        Local Ray CPUs (default: this machine's); with ``address``, the most tasks in flight at once
        (default: the cluster's CPUs).
    address : str or None
        An existing Ray cluster to join; None starts Ray locally.
    progress : bool
        Show a progress bar over the points (ETA) and a line per failed point.
    point_fn, synth_fn : callable or None
        What a task runs (default :func:`bshw.sweep.point.train_point` and
        :func:`bshw.sweep.point.synth_module`); tests pass wrappers that fail on purpose.

    Returns
    -------
    dict
        ``points``, ``ok``, ``failed``, ``skipped`` (done earlier), ``ran``, ``interrupted``, ``wall_s``
        and ``out``. On Ctrl-C the results of the finished points are written, then KeyboardInterrupt
        propagates.
    """
    from bshw.sweep import point as P
    from bshw.sweep.report import write_results

    point_fn = point_fn or P.train_point
    synth_fn = synth_fn or P.synth_module
    out = Path(out)
    t_start = time.perf_counter()
    with run_lock(out, "sweep folder"):
        points_dir, synth_dir = ensure_dir(out / "points"), out / "synth"
        done = done_points(sweep, points_dir)
        todo = [p for p in sweep.points if p.key not in done]
        modules, cached = {}, {}
        if "synth" in sweep.metrics:
            for p in sweep.points:
                shape = P.hardware_shape(p.train)
                for spec, _ in (shape or {}).get("modules", []):
                    modules[P.module_key(spec)] = spec
            for k in modules:
                rec = read_json(synth_dir / f"{k}.json")
                if isinstance(rec, dict) and rec.get("status") == "ok":
                    cached[k] = rec["result"]
        synth_todo = {k: s for k, s in modules.items() if k not in cached}
        log(f"bshw sweep: {sweep.name}: {len(sweep.points)} point(s), {len(done)} done earlier, {len(todo)} to run"
            + (f"; {len(modules)} periphery module(s), {len(synth_todo)} to synthesize" if modules else "")
            + f" -> {out}")
        state = {"interrupted": False, "ray": None, "ran": 0}
        try:
            if todo or synth_todo:
                t_ray = time.perf_counter()
                with ray_session(address, workers) as ray:
                    state["ray"] = _describe_cluster(ray, address)
                    state["ray"]["start_s"] = time.perf_counter() - t_ray  # Ray's start (or join)
                    log(f"bshw sweep: Ray {state['ray']['where']}, {state['ray']['cpus']:g} CPU(s)"
                        + (f", {state['ray']['gpus']:g} GPU(s)" if state["ray"]["gpus"] else ""))
                    t_tasks = time.perf_counter()
                    _run_tasks(ray, sweep, todo, synth_todo, workers, address, points_dir, synth_dir, done, cached,
                               point_fn, synth_fn, progress, log, state)
                    state["ray"]["tasks_s"] = time.perf_counter() - t_tasks  # first submit to last result
        except KeyboardInterrupt:
            state["interrupted"] = True
            log("bshw sweep: interrupted; the finished points are kept, the results written")
            write_results(sweep, out, _assemble(sweep, out, cached), interrupted=True,
                          wall_s=time.perf_counter() - t_start, ray_info=state["ray"])
            raise
        records = _assemble(sweep, out, cached)
        summary = write_results(sweep, out, records, interrupted=False, wall_s=time.perf_counter() - t_start,
                                ray_info=state["ray"])
    ok = sum(r.get("status") == "ok" for r in records)
    return {"points": len(sweep.points), "ok": ok, "failed": len(records) - ok, "skipped": len(done),
            "ran": state["ran"], "interrupted": False, "wall_s": time.perf_counter() - t_start, "out": str(out),
            "summary": summary}


def _describe_cluster(ray, address) -> dict:
    res = ray.cluster_resources()
    return {"where": f"cluster at {address}" if address else "local", "cpus": float(res.get("CPU", 0)),
            "gpus": float(res.get("GPU", 0)), "nodes": len([n for n in ray.nodes() if n.get("Alive")]),
            "version": ray.__version__}


def _run_tasks(ray, sweep, todo, synth_todo, workers, address, points_dir, synth_dir, done, cached,
               point_fn, synth_fn, progress, log, state):
    """Submit the tasks (at most ``window`` in flight), store each result as it arrives."""
    from tqdm import tqdm

    if any(p.train["device"].startswith("cuda") for p in todo) and state["ray"]["gpus"] < 1:
        raise BshwError("a point runs on device cuda, but the Ray cluster has no GPU")
    window = workers if workers else max(1, int(state["ray"]["cpus"]))
    remote = ray.remote(call_task)
    opts = {"num_cpus": 1, "max_retries": sweep.max_retries, "retry_exceptions": False}
    synth_abs = str(Path(synth_dir).resolve())
    queue = [("synth", k, s) for k, s in synth_todo.items()] + [("point", p.key, p) for p in todo]
    queue.reverse()  # pop() from the end: synthesis first (its results feed the points' area)
    in_flight = {}  # ObjectRef -> (kind, key, item, submitted)
    failed = 0
    bar = tqdm(total=len(todo), desc=f"sweep {sweep.name}", unit="point", disable=not progress, smoothing=0.1,
               dynamic_ncols=True)
    synth_done = 0
    try:
        while queue or in_flight:
            while queue and len(in_flight) < window:
                kind, key, item = queue.pop()
                if kind == "synth":
                    ref = remote.options(**opts).remote(synth_fn, item, f"{synth_abs}/{key}")
                else:
                    gpu = {"num_gpus": 1} if item.train["device"].startswith("cuda") else {}
                    ref = remote.options(**opts, **gpu).remote(point_fn, item.train, sweep.options())
                in_flight[ref] = (kind, key, item, time.perf_counter())
            ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                kind, key, item, submitted = in_flight.pop(ref)
                outcome = _get(ray, ref, sweep.max_retries)
                outcome["roundtrip_s"] = time.perf_counter() - submitted
                if kind == "synth":
                    synth_done += 1
                    rec = {"key": key, "spec": item, "status": outcome["status"], "error": outcome.get("error"),
                           "result": outcome.get("value"), "task_s": outcome.get("task_s")}
                    atomic_write_json(Path(synth_dir) / f"{key}.json", rec)
                    if outcome["status"] == "ok":
                        cached[key] = outcome["value"]
                    else:
                        bar.write(f"bshw sweep: synthesis of {key} failed: {outcome.get('error')}")
                else:
                    state["ran"] += 1
                    rec = point_record(sweep, item, outcome)
                    atomic_write_json(Path(points_dir) / f"{key}.json", rec)
                    if rec["status"] != "ok":
                        failed += 1
                        bar.write(f"bshw sweep: point {item.label} failed: {rec['error']}")
                    bar.update(1)
                bar.set_postfix_str((f"{failed} failed" if failed else "")
                                    + (f" synth {synth_done}/{len(synth_todo)}" if synth_todo else ""))
    except KeyboardInterrupt:
        for ref in in_flight:  # the unfinished tasks stop; what finished is on disk already
            try:
                ray.cancel(ref, force=True)
            except Exception:  # a task that just finished or a gone worker: nothing to cancel
                pass
        raise
    finally:
        bar.close()


def _get(ray, ref, retries: int) -> dict:
    """The task's outcome; a worker that died more than ``retries`` times becomes the point's error."""
    try:
        return ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        raise KeyboardInterrupt from None
    except ray.exceptions.RayError as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        return {"status": "error", "error": f"the worker running it died {retries + 1} time(s) "
                                            f"({type(e).__name__}: {first})"}


def point_record(sweep, point, outcome: dict) -> dict:
    """What ``points/KEY.json`` holds for a finished (or failed) point."""
    rec = {"format": 1, "key": point.key, "index": point.index, "label": point.label, "values": point.values,
           "train": point.train, "options": sweep.options(), "status": outcome["status"],
           "error": outcome.get("error"), "traceback": outcome.get("traceback"),
           "result": outcome.get("value"), "task_s": outcome.get("task_s"), "roundtrip_s": outcome.get("roundtrip_s"),
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return rec


def _assemble(sweep, out: Path, modules: dict) -> list:
    """Every point's record in grid order, with its energy and area derived now (cheap, in the driver)."""
    from bshw import energy as E
    from bshw.sweep import point as P

    constants = E.load_constants() if "energy" in sweep.metrics else None
    records = []
    for p in sweep.points:
        rec = read_json(out / "points" / f"{p.key}.json")
        if not isinstance(rec, dict) or rec.get("key") != p.key:
            records.append({"key": p.key, "index": p.index, "label": p.label, "values": p.values,
                            "train": p.train, "status": "not run"})
            continue
        rec["values"], rec["label"], rec["index"] = p.values, p.label, p.index
        if rec.get("status") == "ok":
            shape = P.hardware_shape(p.train) if "synth" in sweep.metrics else None
            derived = {}
            if "synth" in sweep.metrics:
                area = P.shape_area(shape, modules)
                derived["area"] = area
                derived["area_note"] = (None if area else "no BS periphery for this point (the RTL runs SSS with "
                                        "integer weights on fc nets)" if shape is None else "synthesis missing or failed")
            if constants is not None:
                try:
                    derived["energy"] = P.point_energy(p.train, rec["result"], constants, sweep.energy_array,
                                                       P.energy_synth(shape, modules))
                except BshwError as e:
                    derived["energy"] = None
                    derived["energy_note"] = str(e)
            if rec.get("derived") != json.loads(json.dumps(derived)):
                rec["derived"] = derived
                atomic_write_json(out / "points" / f"{p.key}.json", rec)
        records.append(rec)
    return records
