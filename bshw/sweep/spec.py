"""A sweep configuration: the TOML file, its grid expanded into points, every point validated.

A sweep file holds

* ``[train]``: the base training settings, any key of :class:`bshw.golden.config.TrainConfig`
  (``hw`` and ``memristor`` tables and ``device`` included; not ``out``, the sweep keeps no run
  directories);
* ``[grid]``: one list of values per field; the points are the Cartesian product of the lists.
  A field is a TrainConfig key, or ``hw.KEY`` / ``memristor.KEY`` for one key of those tables
  (``hw.deriv_k = [1, 2, 4]`` in TOML is the same as ``"hw.deriv_k" = [1, 2, 4]``);
* ``[zip]`` (one group) or ``[[zip]]`` (several): fields that vary together, lists of one length;
  each group is one more axis of the product;
* ``[sweep]``: ``name``, ``metrics`` (:data:`METRICS`), ``final_votes``, ``train_eval``,
  ``energy_array``, ``max_retries``.

Everything is checked here, before Ray starts or a file is written: a bad value gets one
:class:`bshw.errors.BshwError` naming the file, the field and the value.
"""

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


from bshw.errors import BshwError

FORMAT = 1  # bump when a point's result changes meaning: earlier points are then redone
TABLES = ("train", "grid", "zip", "sweep")
NESTED = ("hw", "memristor")  # TrainConfig fields that are tables: grid fields may name one key
# metric name -> what it computes (test error and wall time come with every training)
METRICS = {
    "test_error": "test error of HP, binary and stochastic-vote inference (always computed)",
    "train_error": "the same three on the first train_eval training samples",
    "energy": "energy per training sample from bshw.energy with the run's measured activity",
    "synth": "periphery cells and CMOS transistors from bshw synth (yowasp), cached per module",
    "wall_time": "seconds of the point's training and evaluation (always recorded)",
}
DEFAULT_METRICS = ("test_error", "train_error", "energy", "wall_time")
SWEEP_KEYS = {"name": "a name for the report", "metrics": f"a list of {', '.join(METRICS)}",
              "final_votes": "votes of the last evaluation (default: the point's votes)",
              "train_eval": "training samples the train error is measured on (default 10000)",
              "energy_array": "memristor crossbar N x N of the energy estimate (default 128)",
              "max_retries": "Ray retries of a point whose worker dies (default 3)"}
MAX_POINTS = 100_000


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: ``fields`` vary together through ``values`` (one tuple per step)."""

    fields: tuple
    values: tuple

    @property
    def name(self) -> str:
        return "+".join(self.fields)


@dataclass
class Point:
    """One training of the sweep: ``train`` is the resolved TrainConfig as a dict, ``key`` its hash."""

    index: int
    key: str
    label: str
    values: dict  # field -> value of every axis field
    train: dict


@dataclass
class Sweep:
    """A parsed, validated sweep file."""

    path: Path
    name: str
    base: dict
    axes: list
    metrics: tuple
    final_votes: int | None = None
    train_eval: int = 10_000
    energy_array: int = 128
    max_retries: int = 3
    points: list = field(default_factory=list)

    def options(self) -> dict:
        """The settings a point's task needs besides its training config."""
        return {"final_votes": self.final_votes,
                "train_eval": self.train_eval if "train_error" in self.metrics else 0}

    def to_dict(self) -> dict:
        return {"path": str(self.path), "name": self.name, "base": self.base,
                "axes": [{"fields": list(a.fields), "values": [list(v) for v in a.values]} for a in self.axes],
                "metrics": list(self.metrics), "final_votes": self.final_votes, "train_eval": self.train_eval,
                "energy_array": self.energy_array, "max_retries": self.max_retries}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def fmt_value(v) -> str:
    """A grid value as it appears in labels and tables (``[7, 7, 5]`` -> ``7-7-5``)."""
    if isinstance(v, (list, tuple)):
        return "-".join(fmt_value(x) for x in v) or "none"
    if isinstance(v, dict):
        return ",".join(f"{k}={fmt_value(x)}" for k, x in v.items()) or "default"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def point_key(train: dict, options: dict) -> str:
    """Hash of what decides a point's result: the resolved training config and the task options."""
    ident = {"format": FORMAT, "train": {k: v for k, v in train.items() if k != "out"}, "options": options}
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read(path: Path) -> dict:
    from bshw.io import read_toml

    return read_toml(path, "sweep file")


def _fields_of(table: dict, where: str) -> dict:
    """``{field: list}`` of a [grid] or [zip] table; ``hw = {deriv_k = [...]}`` becomes ``hw.deriv_k``."""
    from bshw.golden.config import TrainConfig

    known = set(TrainConfig.__dataclass_fields__)
    out = {}
    for name, values in table.items():
        if name in NESTED and isinstance(values, dict):
            for sub, v in values.items():
                out[f"{name}.{sub}"] = v
        else:
            out[name] = values
    for name, values in out.items():
        top, _, sub = name.partition(".")
        if top not in known or (sub and top not in NESTED):
            raise BshwError(f"{where}: unknown field {name!r} (a TrainConfig key such as algo, a, weights, "
                            "epochs, or hw.KEY / memristor.KEY)")
        if top == "out":
            raise BshwError(f"{where}: field 'out' cannot vary: the sweep writes its points into --out")
        if not isinstance(values, list):
            raise BshwError(f"{where}: {name} = {values!r:.60} is not a list of values")
        if not values:
            raise BshwError(f"{where}: {name} = [] is empty: give at least one value")
        if sub == "" and top in NESTED and any(not isinstance(v, dict) for v in values):
            bad = next(v for v in values if not isinstance(v, dict))
            raise BshwError(f"{where}: {name} value {bad!r:.60} is not a table (or vary one key: {name}.KEY)")
    return out


def _apply(base: dict, values: dict) -> dict:
    """``base`` with the axis ``values`` set (``hw.KEY`` merges into the base's hw table)."""
    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for name, v in values.items():
        top, _, sub = name.partition(".")
        if sub:
            d[top] = {**d.get(top, {}), sub: v}
        else:
            d[top] = v
    return d


def resolve_train(d: dict, where: str):
    """The validated TrainConfig of one point's settings (the CLI's rules for the exact mode)."""
    from bshw.golden.config import TrainConfig
    from bshw.golden.train import EXACT_IGNORES

    d = dict(d)
    if "hidden" in d and isinstance(d["hidden"], list):
        d["hidden"] = tuple(d["hidden"])
    if d.get("mode") == "exact":
        for k, why in EXACT_IGNORES.items():
            if k in d:
                raise BshwError(f"{where}: {k} does not apply to mode exact: {why}")
        d.setdefault("weights", "int8")  # the hardware's weights, as `bshw train --mode exact`
    cfg = TrainConfig.from_dict(d, where)
    if cfg.epochs < 1:  # a point is a training: its metrics come from the last epoch
        raise BshwError(f"{where}: epochs = {cfg.epochs} is not valid: a sweep point trains at least one epoch")
    if cfg.mode == "exact":  # the exact learner's own refusals (algo, weights, net, carry counter)
        from bshw.golden.exact.params import ExactParams

        try:
            ExactParams.from_dict(dict(cfg.hw)).resolve(cfg)
        except BshwError as e:
            raise BshwError(f"{where}: {e}") from None
    return cfg


def _sweep_table(t, path: Path) -> dict:
    where = f"{path}: [sweep]"
    if not isinstance(t, dict):
        raise BshwError(f"{path}: sweep = {t!r:.60} is not a table")
    unknown = sorted(set(t) - set(SWEEP_KEYS))
    if unknown:
        raise BshwError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(SWEEP_KEYS)})")
    out = {}
    if "name" in t:
        if not isinstance(t["name"], str) or not t["name"].strip():
            raise BshwError(f"{where}: name = {t['name']!r:.60} is not valid: a non-empty string")
        out["name"] = t["name"]
    if "metrics" in t:
        m = t["metrics"]
        if not isinstance(m, list) or not m:
            raise BshwError(f"{where}: metrics = {m!r:.60} is not valid: a non-empty list of {', '.join(METRICS)}")
        for name in m:
            if name not in METRICS:
                raise BshwError(f"{where}: unknown metric {name!r} (known: {', '.join(METRICS)})")
        out["metrics"] = tuple(dict.fromkeys(["test_error", *m, "wall_time"]))
    for key, lo, hi in (("final_votes", 1, 1000), ("train_eval", 1, 10**7), ("energy_array", 1, 65536),
                        ("max_retries", 0, 100)):
        if key in t:
            v = t[key]
            if not _is_int(v) or not lo <= v <= hi:
                raise BshwError(f"{where}: {key} = {v!r:.60} is not valid: a whole number from {lo} to {hi}")
            out[key] = v
    return out


def load_sweep(path, overrides: dict | None = None) -> Sweep:
    """Parse and validate a sweep file; expand its points.

    Parameters
    ----------
    path : path-like
        The TOML file.
    overrides : dict or None
        ``[train]`` keys set on every point after the grid (the CLI's ``--epochs``).

    Returns
    -------
    Sweep
        With ``points`` in grid order (the first axis varies slowest).
    """
    path = Path(path)
    d = _read(path)
    extra = sorted(k for k in d if k not in TABLES)
    if extra:
        raise BshwError(f"{path}: unknown top-level key {extra[0]!r} (allowed tables: {', '.join(TABLES)})")
    base = d.get("train", {})
    if not isinstance(base, dict):
        raise BshwError(f"{path}: train = {base!r:.60} is not a [train] table")
    if "out" in base:
        raise BshwError(f"{path}: [train] out is not used by a sweep: its points go into --out DIR/points/")
    grid = d.get("grid", {})
    if not isinstance(grid, dict):
        raise BshwError(f"{path}: grid = {grid!r:.60} is not a [grid] table of lists")
    zips = d.get("zip", [])
    zips = [zips] if isinstance(zips, dict) else zips
    if not isinstance(zips, list) or any(not isinstance(z, dict) for z in zips):
        raise BshwError(f"{path}: zip must be a [zip] table or [[zip]] tables of lists")
    sweep_opts = _sweep_table(d.get("sweep", {}), path)

    axes, seen, order = [], {}, {}  # order: axes follow the tables' order in the file
    for name, values in _fields_of(grid, f"{path}: [grid]").items():
        axes.append(Axis((name,), tuple((v,) for v in values)))
        order[len(axes) - 1] = (list(d).index("grid") if "grid" in d else 0, len(axes))
        seen[name] = "[grid]"
    for i, z in enumerate(zips):
        where = f"{path}: [zip]" if len(zips) == 1 else f"{path}: [[zip]] group {i + 1}"
        f = _fields_of(z, where)
        if not f:
            raise BshwError(f"{where} is empty: give fields with lists of one length")
        lengths = {n: len(v) for n, v in f.items()}
        if len(set(lengths.values())) > 1:
            raise BshwError(f"{where}: lists of different lengths ("
                            + ", ".join(f"{n}: {k}" for n, k in lengths.items()) + "); zipped fields vary together")
        names = tuple(f)
        axes.append(Axis(names, tuple(zip(*(f[n] for n in names)))))
        order[len(axes) - 1] = (list(d).index("zip"), len(axes))
        for n in names:
            seen_where = seen.get(n)
            if seen_where:
                raise BshwError(f"{where}: field {n!r} already varies in {seen_where}")
            seen[n] = where.split(": ", 1)[1]
    for n in seen:  # a whole table and one of its keys would fight over the same setting
        top, _, sub = n.partition(".")
        if sub and top in seen:
            raise BshwError(f"{path}: field {n!r} and field {top!r} both vary; vary one of them")
    axes = [axes[i] for i in sorted(order, key=order.get)]
    overrides = overrides or {}
    for name in overrides:
        if name in seen:
            raise BshwError(f"{path}: --{name} overrides a field the grid varies ({name})")

    n_points = math.prod(len(a.values) for a in axes) if axes else 1
    if n_points > MAX_POINTS:
        raise BshwError(f"{path}: the grid has {n_points:,} points, more than {MAX_POINTS:,}")
    sw = Sweep(path=path, name=sweep_opts.pop("name", path.stem), base=base, axes=axes,
               metrics=sweep_opts.pop("metrics", DEFAULT_METRICS), **sweep_opts)
    opts = sw.options()
    keys = {}
    for i, combo in enumerate(itertools.product(*(a.values for a in axes))):
        values = {n: v for ax, vals in zip(axes, combo) for n, v in zip(ax.fields, vals)}
        label = " ".join(f"{n}={fmt_value(v)}" for n, v in values.items()) or "base"
        cfg = resolve_train(_apply({**base, **overrides}, values), f"{path}: point {label}")
        train = json.loads(json.dumps(cfg.to_dict()))
        key = point_key(train, opts)
        if key in keys:
            raise BshwError(f"{path}: points {keys[key]!r} and {label!r} are the same training "
                            "(a grid value changes nothing the model uses)")
        keys[key] = label
        sw.points.append(Point(i, key, label, values, train))
    return sw

