"""Golden traces for the RTL benches: ``bshw trace`` (docs/arithmetic.md §11).

A JSON-lines file: a header line, then one line per training step (batch) with every sampled bit,
noise sum, error and counter of that step. Written atomically.
"""

import json

import torch

from bshw.errors import BshwError
from bshw.golden.config import TrainConfig
from bshw.io import atomic_write_text

FORMAT, VERSION = "bshw-exact-trace", 1


def _l(v):
    return None if v is None else v.tolist()


def header(learner, seed: int) -> dict:
    """Line 1: format, version, config, resolved parameters, layers, initial state (with a device
    model, §16, also the conductances and the write-noise streams)."""
    init = {"weights": [_l(w) for w in learner.W], "counters": [_l(c) for c in learner.C],
            "lfsr_in": _l(learner.in_bank.states),
            "lfsr": [None if b is None else _l(b.states) for b in learner.banks],
            "host_lfsr": None if learner.host_bank is None else _l(learner.host_bank.states)}
    if learner.dev is not None:
        init.update(conductance=[_l(g) for g in learner.G], device_lfsr=[_l(b.states) for b in learner.dev_banks])
    return {"format": FORMAT, "version": VERSION, "seed": seed, "config": learner.cfg.to_dict(),
            "params": learner.P.as_dict(), "layers": learner.layers, "init": init}


def step_record(learner, i: int, rec: dict) -> dict:
    """One step's line from the ``record`` dict of :meth:`ExactLearner.train_batch`."""
    L, B = learner.L, len(rec["labels"])
    samples = []
    for b in range(B):
        layers = []
        for l in range(L):
            e = {"y": _l(rec["ys"][l][b])}
            if rec["S"][l] is not None:
                e["S"] = _l(rec["S"][l][b])
            e["x"] = _l(rec["xs"][l + 1][b])
            if l < L - 1:
                e.update(A=_l(rec["A"][l][b]), B=_l(rec["B"][l][b]), d=_l(rec["d"][l][b]),
                         dx=_l(rec["dx"][l][b]), dz=_l(rec["dz"][l][b]))
            e["dy"] = _l(rec["dy"][l][b])
            layers.append(e)
        samples.append({"pixels": _l(rec["pixels"][b]), "r": _l(rec["r"][b]), "x0": _l(rec["xs"][0][b]),
                        "layers": layers})
    if learner.P.output == "host":  # the host's Bernoulli outcome is data, not a chip signal
        for s in samples:
            s["layers"][-1]["host_zB"] = s["layers"][-1].pop("x")
    update = [{"counter_pre": _l(rec["counter_pre"][l]), "carry": _l(rec["carry"][l]),
               "counter": _l(rec["counters"][l]), "weights": _l(rec["weights"][l])} for l in range(L)]
    if "conductance" in rec:  # §16: the device's state after the carry, and its noise streams
        for u, g in zip(update, rec["conductance"]):
            u["conductance"] = _l(g)
    out = {"step": i, "labels": _l(rec["labels"]), "samples": samples, "update": update,
           "lfsr_in_end": _l(learner.in_bank.states),
           "lfsr_end": [None if b_ is None else _l(b_.states) for b_ in learner.banks]}
    if learner.dev is not None:
        out["device_lfsr_end"] = [_l(b_.states) for b_ in learner.dev_banks]
    return out


def make_trace(cfg: TrainConfig, steps: int, images: torch.Tensor, labels: torch.Tensor, learner=None) -> str:
    """The trace text of ``steps`` training steps on the first ``steps * cfg.batch`` samples (in order).

    ``learner``: the exact learner whose state the steps start from (a trained one, as the flow's
    ``trace_from = "trained"``); None: a fresh learner of ``cfg`` (§10's initial state). The header
    holds that start state (§11) either way."""
    from bshw.golden.exact import make_learner

    if not isinstance(steps, int) or steps < 1:
        raise BshwError(f"steps = {steps!r}: a positive whole number")
    if len(images) < steps * cfg.batch:
        raise BshwError(f"{steps} steps of batch {cfg.batch} need {steps * cfg.batch} samples, "
                        f"the data set has {len(images)}")
    learner = make_learner(cfg) if learner is None else learner
    lines = [json.dumps(header(learner, cfg.seed), separators=(",", ":"))]
    for i in range(steps):
        rec = {}
        sl = slice(i * cfg.batch, (i + 1) * cfg.batch)
        learner.train_batch(images[sl], labels[sl], record=rec)
        lines.append(json.dumps(step_record(learner, i, rec), separators=(",", ":")))
    return "\n".join(lines) + "\n"


HEADER_KEYS = ("format", "version", "seed", "config", "params", "layers", "init")
STEP_KEYS = ("step", "labels", "samples", "update", "lfsr_in_end", "lfsr_end")
UPDATE_KEYS = ("counter_pre", "carry", "counter", "weights")


class _Bad(Exception):
    """A fault at one line of a trace (the loader adds the file name)."""

    def __init__(self, line: int, what: str):
        super().__init__(what)
        self.line, self.what = line, what


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_list(v, n: int, name: str, line: int):
    if not isinstance(v, list) or len(v) != n:
        got = f"{len(v)} entries" if isinstance(v, list) else f"a {type(v).__name__}"
        raise _Bad(line, f"{name} has {got}, expected a list of {n}")
    if not all(_is_int(e) for e in v):
        raise _Bad(line, f"{name} holds non-integers, expected {n} whole numbers")


def _matrix(v, rows: int, cols: int, name: str, line: int):
    if not isinstance(v, list) or len(v) != rows:
        got = f"{len(v)} rows" if isinstance(v, list) else f"a {type(v).__name__}"
        raise _Bad(line, f"{name} has {got}, expected a [{rows}][{cols}] matrix (fan_in x fan_out)")
    for i, r in enumerate(v):
        if not isinstance(r, list) or len(r) != cols or not all(_is_int(e) for e in r):
            raise _Bad(line, f"{name}[{i}] is not a row of {cols} whole numbers (a [{rows}][{cols}] matrix)")


def _check_header(h, line: int = 1) -> list:
    """The header's layer shapes ``[(fan_in, fan_out)]`` after checking its keys and format."""
    if not isinstance(h, dict):
        raise _Bad(line, f"the header is a JSON {type(h).__name__}, expected an object")
    missing = [k for k in HEADER_KEYS if k not in h]
    if missing:
        raise _Bad(line, f"the header lacks {', '.join(missing)} (a header has {', '.join(HEADER_KEYS)})")
    if h["format"] != FORMAT:
        raise _Bad(line, f"format = {h['format']!r:.60}, expected {FORMAT!r}")
    if h["version"] != VERSION or not _is_int(h["version"]):
        raise _Bad(line, f"version = {h['version']!r:.30}, this bshw reads version {VERSION}")
    if not _is_int(h["seed"]) or h["seed"] < 0:
        raise _Bad(line, f"seed = {h['seed']!r:.30}, expected a whole number >= 0")
    for k in ("config", "params", "init"):
        if not isinstance(h[k], dict):
            raise _Bad(line, f"{k} is a {type(h[k]).__name__}, expected an object")
    try:
        TrainConfig.from_dict(h["config"], "config")
    except BshwError as e:
        raise _Bad(line, str(e)) from None
    layers = h["layers"]
    if not isinstance(layers, list) or not layers:
        raise _Bad(line, "layers: expected a non-empty list of {fan_in, fan_out, ...} objects")
    shapes = []
    for i, L in enumerate(layers):
        if not isinstance(L, dict) or not all(_is_int(L.get(k)) and L.get(k) >= 1 for k in ("fan_in", "fan_out")):
            raise _Bad(line, f"layers[{i}]: expected an object with whole numbers fan_in and fan_out >= 1")
        if shapes and L["fan_in"] != shapes[-1][1]:
            raise _Bad(line, f"layers[{i}].fan_in = {L['fan_in']}, expected the previous fan_out {shapes[-1][1]}")
        shapes.append((L["fan_in"], L["fan_out"]))
    w = h["init"].get("weights")
    if not isinstance(w, list) or len(w) != len(shapes):
        raise _Bad(line, f"init.weights: expected one [fan_in][fan_out] matrix per layer ({len(shapes)})")
    for l, (i, o) in enumerate(shapes):
        _matrix(w[l], i, o, f"init.weights[{l}]", line)
    if isinstance(h["params"].get("device"), dict):  # §16: a device model's conductances and streams
        g, s = h["init"].get("conductance"), h["init"].get("device_lfsr")
        if not isinstance(g, list) or len(g) != len(shapes):
            raise _Bad(line, f"init.conductance: expected one [fan_in][fan_out] matrix per layer ({len(shapes)}) "
                             "(params.device is set)")
        for l, (i, o) in enumerate(shapes):
            _matrix(g[l], i, o, f"init.conductance[{l}]", line)
        if not isinstance(s, list) or len(s) != len(shapes):
            raise _Bad(line, f"init.device_lfsr: expected one list of column streams per layer ({len(shapes)})")
        for l, (i, o) in enumerate(shapes):
            _int_list(s[l], o, f"init.device_lfsr[{l}]", line)
    return shapes


def _check_step(s, shapes: list, index: int, line: int, device: bool = False):
    if not isinstance(s, dict):
        raise _Bad(line, f"a step line is a JSON {type(s).__name__}, expected an object")
    missing = [k for k in STEP_KEYS if k not in s]
    if missing:
        raise _Bad(line, f"the step lacks {', '.join(missing)} (a step has {', '.join(STEP_KEYS)})")
    if s["step"] != index or not _is_int(s["step"]):
        raise _Bad(line, f"step = {s['step']!r:.30}, expected {index} (steps are numbered from 0 in order)")
    n0, L = shapes[0][0], len(shapes)
    labels, samples = s["labels"], s["samples"]
    if not isinstance(labels, list) or not labels or not all(_is_int(t) and 0 <= t < shapes[-1][1] for t in labels):
        raise _Bad(line, f"labels: expected a non-empty list of classes 0..{shapes[-1][1] - 1}")
    if not isinstance(samples, list) or len(samples) != len(labels):
        n = len(samples) if isinstance(samples, list) else type(samples).__name__
        raise _Bad(line, f"samples has {n} entries, expected one per label ({len(labels)})")
    for b, smp in enumerate(samples):
        if not isinstance(smp, dict):
            raise _Bad(line, f"samples[{b}] is not an object")
        _int_list(smp.get("pixels"), n0, f"samples[{b}].pixels", line)
        lay = smp.get("layers")
        if not isinstance(lay, list) or len(lay) != L:
            raise _Bad(line, f"samples[{b}].layers: expected one object per layer ({L})")
        for l, e in enumerate(lay):
            if not isinstance(e, dict):
                raise _Bad(line, f"samples[{b}].layers[{l}] is not an object")
            _int_list(e.get("y"), shapes[l][1], f"samples[{b}].layers[{l}].y", line)
    upd = s["update"]
    if not isinstance(upd, list) or len(upd) != L:
        n = len(upd) if isinstance(upd, list) else type(upd).__name__
        raise _Bad(line, f"update has {n} entries, expected one per layer ({L})")
    for l, (u, (i, o)) in enumerate(zip(upd, shapes)):
        if not isinstance(u, dict):
            raise _Bad(line, f"update[{l}] is not an object")
        for k in UPDATE_KEYS:
            if k not in u:
                raise _Bad(line, f"update[{l}] lacks {k}")
            _matrix(u[k], i, o, f"update[{l}].{k}", line)
    if device:  # §16
        for l, (u, (i, o)) in enumerate(zip(upd, shapes)):
            if "conductance" not in u:
                raise _Bad(line, f"update[{l}] lacks conductance (params.device is set)")
            _matrix(u["conductance"], i, o, f"update[{l}].conductance", line)
        de = s.get("device_lfsr_end")
        if not isinstance(de, list) or len(de) != L:
            raise _Bad(line, f"device_lfsr_end: expected one list of column streams per layer ({L})")
        for l, v in enumerate(de):
            _int_list(v, shapes[l][1], f"device_lfsr_end[{l}]", line)
    _int_list(s["lfsr_in_end"], n0, "lfsr_in_end", line)
    if not isinstance(s["lfsr_end"], list) or len(s["lfsr_end"]) != L:
        raise _Bad(line, f"lfsr_end: expected one entry per layer ({L})")
    for l, v in enumerate(s["lfsr_end"]):
        if v is not None:
            _int_list(v, shapes[l][1], f"lfsr_end[{l}]", line)


def open_trace(path, steps: int | None = None, *, check: bool = True) -> tuple:
    """``(header, steps)`` of a golden trace (docs/arithmetic.md §11): the header read and checked
    now, the step records read one line at a time as ``steps`` is iterated (a paper-size trace is
    gigabytes; nothing holds it whole). The one trace reader of bshw: :func:`load_trace`, the cocotb
    network bench and the Python-free bench's stimulus all read through it.

    ``steps``: yield only the first N step records (None: all). ``check``: check every step line
    against the header's layers as it is read (a bench that replays an already-checked trace may
    pass False). Every fault raises one BshwError ``"bad trace FILE: line N: what"``: an unreadable
    or empty file, a header that is not an object, lacks a key or has another format or version, a
    step line that is not JSON (a truncated last line says so), lacks a key, or whose list lengths
    disagree with the header's layers (pixels: the first fan_in; one label per sample; one update per
    layer of [fan_in][fan_out] matrices).
    """
    if steps is not None and (not _is_int(steps) or steps < 1):
        raise BshwError(f"steps = {steps!r}: a positive whole number or unset")
    read = [0]  # lines read so far, for the messages about what is not there
    lines = _guarded(path, _objects(path, read))
    first = next(lines, None)
    if first is None:
        raise BshwError(f"bad trace {path}: line {max(read[0], 1)}: empty file, expected a header line and "
                        "training steps")
    n, header = first
    try:
        shapes = _check_header(header, n)
    except _Bad as e:
        lines.close()
        raise BshwError(f"bad trace {path}: line {e.line}: {e.what}") from None
    device = isinstance(header["params"].get("device"), dict)

    def records():
        count = 0
        try:
            for n, obj in lines:
                if steps is not None and count >= steps:
                    return
                if check:
                    try:
                        _check_step(obj, shapes, count, n, device)
                    except _Bad as e:
                        raise BshwError(f"bad trace {path}: line {e.line}: {e.what}") from None
                count += 1
                yield obj
        finally:
            lines.close()
        if not count:
            raise BshwError(f"bad trace {path}: line {read[0] + 1}: a trace with no training steps compares nothing")

    return header, _Steps(records(), lines)


class _Steps:
    """The step records of :func:`open_trace`: an iterator whose ``close()`` closes the file even
    before the first step is read (a header-only look)."""

    def __init__(self, gen, lines):
        self._gen, self._lines = gen, lines

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._gen)

    def close(self):
        self._gen.close()
        self._lines.close()


def _objects(path, read: list):
    """``(line number, JSON object)`` of every non-blank line of ``path`` (``read[0]``: lines read);
    _Bad at a fault."""
    n = 0
    with open(path, "rb") as f:
        for raw in f:
            n += 1
            read[0] = n
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _Bad(n, "not UTF-8 text") from None
            try:
                yield n, json.loads(text)
            except (json.JSONDecodeError, RecursionError) as e:
                if not raw.endswith(b"\n") and n > 1:
                    raise _Bad(n, "truncated: the last line ends mid-record (was the writer killed?)") from None
                raise _Bad(n, f"not JSON ({str(e).splitlines()[0][:80]})") from None


def _guarded(path, gen):
    """``gen`` with its faults as one-line BshwErrors naming ``path``."""
    try:
        yield from gen
    except _Bad as e:
        raise BshwError(f"bad trace {path}: line {e.line}: {e.what}") from None
    except IsADirectoryError:
        raise BshwError(f"bad trace {path}: it is a folder, not a file") from None
    except OSError as e:
        raise BshwError(f"bad trace {path}: cannot read it ({e.strerror or type(e).__name__})") from None


def load_trace(path, steps: int | None = None) -> tuple:
    """``(header, [step records])`` of a golden trace, every line checked (:func:`open_trace`), and
    so a BshwError for a trace without training steps (it compares nothing)."""
    header, records = open_trace(path, steps)
    return header, list(records)


def read_trace(path) -> tuple:
    """``(header, [step records])`` of a trace file: :func:`load_trace` with every step."""
    return load_trace(path)


def add_arguments(p):
    p.add_argument("--steps", type=int, default=2, help="training steps (batches) to record (default 2)")
    p.add_argument("--seed", type=int, help="run seed: initial weights and every LFSR seed (default: the "
                                            "config's, else 0)")
    p.add_argument("--out", required=True, help="output file (JSON lines)")
    p.add_argument("--config", help="TOML file with a [train] table (mode is forced to exact)")
    from bshw.cli import add_hidden

    add_hidden(p, "hidden layer sizes, e.g. 32 or 500,200 (default 32)")
    p.add_argument("--input-side", type=int, help="images are downsampled to side x side (default 8)")
    p.add_argument("--batch", type=int, help="samples per step (default 100; th follows from it)")
    p.add_argument("--weights", help="int8 (default), int4, ternary, intN")
    p.add_argument("--hw", help='hardware parameters as JSON, e.g. \'{"tie": "zero", "deriv_k": 1}\'')
    p.add_argument("--data", help="data directory (default: the usual MNIST lookup)")


def run(args) -> int:
    from bshw.golden.exact.params import config_from_args
    from bshw.io import check_writable

    if not 1 <= args.steps <= 100_000:
        raise BshwError(f"--steps {args.steps}: give a number of training steps from 1 to 100000")
    check_writable(args.out, what="trace")

    cfg = config_from_args(args, ("hidden", "input_side", "batch", "weights", "data"),
                           {"mode": "exact", **({} if args.seed is None else {"seed": args.seed})},
                           where="trace")
    from bshw.golden.data import load_dataset

    data = load_dataset(cfg.dataset_name, cfg.data)
    atomic_write_text(args.out, make_trace(cfg, args.steps, data.train_x, data.train_y))
    from bshw.golden.exact.params import ExactParams

    tie = ExactParams.from_dict(dict(cfg.hw)).resolve(cfg).tie
    # the hardware's sign(0) rule is params.tie in the header (config.tie is the float model's, unused here)
    print(f"wrote {args.steps} steps (batch {cfg.batch}, hardware tie rule {tie}) to {args.out}")
    return 0
