"""A sweep's results: ``results.csv`` (one row per point), ``results.json`` (everything) and
``report.html`` (the table, Pareto plots of test error against energy per sample and against area,
and a heat map of test error when the grid has two axes). All written atomically."""

import base64
import csv
import html
import io
import math
import statistics
import time

from bshw.io import atomic_write_json, atomic_write_text

METHODS = ("hp", "binary", "stochastic")


def _get(d, *path):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def flat_row(sweep, rec: dict) -> dict:
    """One CSV row: the axis values, then the metrics (errors as fractions, energy in pJ)."""
    from bshw.sweep.spec import fmt_value

    res, der = rec.get("result") or {}, rec.get("derived") or {}
    row = {"index": rec.get("index"), "label": rec.get("label"), "key": rec.get("key"), "status": rec.get("status")}
    for ax in sweep.axes:
        for f in ax.fields:
            row[f] = fmt_value(rec["values"][f])
    for m in METHODS:
        row[f"test_error_{m}"] = _get(res, "test_error", m)
    if "train_error" in sweep.metrics:
        for m in METHODS:
            row[f"train_error_{m}"] = _get(res, "train_error", m)
    if "energy" in sweep.metrics:
        row["energy_pj_per_sample"] = _get(der, "energy", "pj_per_sample")
        row["crossbar_mm2"] = _get(der, "energy", "crossbar_mm2")
    if "synth" in sweep.metrics:
        for k in ("periphery_transistors", "periphery_luts", "periphery_ffs", "fmax_mhz"):
            row[k] = _get(der, "area", k)
    row["epochs"] = len(res.get("epochs") or []) or None
    row["train_samples"] = res.get("train_samples")
    row["wall_s"] = res.get("wall_s")
    row["task_s"] = rec.get("task_s")
    row["roundtrip_s"] = rec.get("roundtrip_s")
    row["error"] = rec.get("error")
    return row


def ray_overhead(records: list) -> dict | None:
    """Seconds per point between submitting its task and having its result, beyond the task's own
    run time (scheduling, worker start, argument and result transfer), over the points of the last run."""
    over = [r["roundtrip_s"] - r["task_s"] for r in records
            if isinstance(r.get("roundtrip_s"), (int, float)) and isinstance(r.get("task_s"), (int, float))]
    if not over:
        return None
    return {"points": len(over), "mean_s": statistics.fmean(over), "median_s": statistics.median(over),
            "max_s": max(over)}


def write_results(sweep, out, records: list, *, interrupted: bool, wall_s: float, ray_info) -> dict:
    """Write results.csv, results.json and report.html; return results.json's ``summary``."""
    rows = [flat_row(sweep, r) for r in records]
    ok = [r for r in rows if r["status"] == "ok"]
    best = min(ok, key=lambda r: r["test_error_hp"], default=None)
    summary = {"points": len(rows), "ok": len(ok), "failed": sum(r["status"] == "error" for r in rows),
               "not_run": sum(r["status"] == "not run" for r in rows), "interrupted": interrupted,
               "wall_s": wall_s, "best": best and {"label": best["label"], "test_error_hp": best["test_error_hp"]},
               "ray": ray_info, "ray_overhead": ray_overhead(records),
               "mean_point_wall_s": statistics.fmean([r["wall_s"] for r in ok]) if ok else None,
               "written": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["index"], lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(out / "results.csv", buf.getvalue())
    atomic_write_json(out / "results.json", {"format": "bshw-sweep-results", "version": 1, "sweep": sweep.to_dict(),
                                             "summary": summary, "points": records})
    atomic_write_text(out / "report.html", report_html(sweep, rows, summary))
    return summary


# -- plots ----------------------------------------------------------------------------------------
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def pareto_front(xs, ys) -> list:
    """Indices of the points no other point beats on both x and y (lower is better), by x."""
    idx = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    front, best = [], math.inf
    for i in idx:
        if ys[i] < best:
            front.append(i)
            best = ys[i]
    return front


def pareto_plot(rows, xkey: str, xlabel: str, title: str) -> str | None:
    """Test error (HP inference) against ``xkey``, the Pareto front joined and labelled; base64 PNG."""
    pts = [r for r in rows if r["status"] == "ok" and isinstance(r.get(xkey), (int, float))
           and isinstance(r.get("test_error_hp"), (int, float)) and r[xkey] > 0]
    if not pts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs, ys = [r[xkey] for r in pts], [100 * r["test_error_hp"] for r in pts]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.scatter(xs, ys, s=22, color="tab:blue", alpha=0.7, label="points")
    front = pareto_front(xs, ys)
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "-o", color="tab:red", ms=5, label="Pareto front")
    for i in front:
        ax.annotate(pts[i]["label"], (xs[i], ys[i]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if max(xs) / min(xs) > 20:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test error, HP inference (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _png(fig)


def heatmaps(sweep, rows) -> str | None:
    """Test error of each inference method over a two-axis grid (rows: first axis); base64 PNG."""
    axes = [a for a in sweep.axes if len(a.values) > 1]
    if len(axes) != 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bshw.sweep.spec import fmt_value

    def tick(vals):
        return " ".join(fmt_value(v) for v in vals)

    a0, a1 = axes
    lookup = {(repr(tuple(p.values[f] for f in a0.fields)), repr(tuple(p.values[f] for f in a1.fields))): r
              for r, p in zip(rows, sweep.points)}  # rows are in the points' order
    fig, axs = plt.subplots(1, 3, figsize=(4.2 + 1.1 * len(a1.values) * 1.5, 0.9 + 0.45 * len(a0.values)),
                            squeeze=False)
    for m, ax in zip(METHODS, axs[0]):
        grid = []
        for v0 in a0.values:
            line = []
            for v1 in a1.values:
                r = lookup.get((repr(tuple(v0)), repr(tuple(v1))))
                e = r.get(f"test_error_{m}") if r and r["status"] == "ok" else None
                line.append(math.nan if e is None else 100 * e)
            grid.append(line)
        im = ax.imshow(grid, cmap="viridis_r", aspect="auto")
        known = [v for line in grid for v in line if not math.isnan(v)]
        middle = (max(known) + min(known)) / 2 if known else 0
        for i, line in enumerate(grid):
            for j, v in enumerate(line):  # dark cells (high error in viridis_r) get white text
                ax.text(j, i, "-" if math.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if not math.isnan(v) and v > middle else "black")
        ax.set_xticks(range(len(a1.values)), [tick(v) for v in a1.values], fontsize=7, rotation=30, ha="right")
        ax.set_yticks(range(len(a0.values)), [tick(v) for v in a0.values], fontsize=7)
        ax.set_xlabel(a1.name, fontsize=8)
        ax.set_ylabel(a0.name, fontsize=8)
        ax.set_title(f"test error (%), {m} inference", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png(fig)


# -- HTML -----------------------------------------------------------------------------------------
def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def report_html(sweep, rows, summary) -> str:
    """The self-contained report (plots embedded as PNG)."""
    h = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>bshw sweep {h(sweep.name)}</title>",
             ("<style>body{font-family:sans-serif;margin:1.5em;max-width:1400px}table{border-collapse:collapse;"
             "font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}"
             "td.l{text-align:left}.err{color:#b00}img{max-width:100%}</style></head><body>"),
             f"<h1>bshw sweep: {h(sweep.name)}</h1>",
             f"<p>{summary['points']} points from <code>{h(str(sweep.path))}</code>: {summary['ok']} ok, "
             f"{summary['failed']} failed, {summary['not_run']} not run"
             + (" (<b>interrupted</b>)" if summary["interrupted"] else "")
             + f"; this run's wall time {summary['wall_s']:.1f} s. Axes: "
             + "; ".join(f"{h(a.name)} ({len(a.values)})" for a in sweep.axes) + ". Metrics: "
             + ", ".join(h(m) for m in sweep.metrics) + ".</p>"]
    if summary.get("best"):
        b = summary["best"]
        parts.append(f"<p>Lowest test error (HP inference): <b>{h(b['label'])}</b>, "
                     f"{100 * b['test_error_hp']:.2f} %.</p>")
    ov = summary.get("ray_overhead")
    if ov:
        parts.append(f"<p>Ray overhead per point (submit to result, beyond the task's own time), over "
                     f"{ov['points']} points: mean {ov['mean_s']:.3f} s, median {ov['median_s']:.3f} s.</p>")
    heat = heatmaps(sweep, rows)
    if heat:
        parts.append(f"<h2>Heat map</h2><img src='data:image/png;base64,{heat}'>")
    e = pareto_plot(rows, "energy_pj_per_sample", "energy per training sample (pJ, bshw.energy)",
                    "test error vs energy per sample")
    if e:
        parts.append(f"<h2>Pareto: test error vs energy</h2><img src='data:image/png;base64,{e}'>")
    if "synth" in sweep.metrics:
        a = pareto_plot(rows, "periphery_transistors", "periphery area (CMOS transistors, synthesized modules x count)",
                        "test error vs periphery area")
        if a:
            parts.append(f"<h2>Pareto: test error vs periphery area</h2><img src='data:image/png;base64,{a}'>")
        else:
            parts.append("<p>No periphery area: no point has synthesis figures (the RTL runs SSS with integer "
                         "weights on fc nets).</p>")
    else:
        a = pareto_plot(rows, "crossbar_mm2", "crossbar area (mm2, bshw.energy; add \"synth\" to metrics for "
                        "the periphery)", "test error vs crossbar area")
        if a:
            parts.append(f"<h2>Pareto: test error vs crossbar area</h2><img src='data:image/png;base64,{a}'>"
                         "<p>The sweep's metrics have no <code>synth</code>: the area is the memristor arrays' "
                         "(bshw.energy), not the periphery's.</p>")
    cols = [k for k in (rows[0] if rows else {}) if k not in ("key", "index")]
    parts.append("<h2>Points</h2><table><tr>" + "".join(f"<th>{h(c)}</th>" for c in cols) + "</tr>")
    for r in rows:
        parts.append("<tr>" + "".join(
            f"<td class='{'l err' if c == 'error' else 'l' if c in ('label', 'status') else ''}'>"
            + (_cell(100 * r[c]) + " %" if "error_" in c and isinstance(r[c], float) else _cell(r[c])) + "</td>"
            for c in cols) + "</tr>")
    parts.append("</table><p>Test and train errors in percent; energy in pJ per training sample; times in "
                 "seconds. results.csv and results.json hold the same figures (errors there as fractions).</p>"
                 "</body></html>\n")
    return "\n".join(parts)
