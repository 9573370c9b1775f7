"""Mutation check of the regression: break one rule of docs/arithmetic.md in the RTL, show that the
network bench catches it and names the signal that shows it.

Each mutant is the periphery top (or the system top, for a rule of the array model) built with one
rule broken, run by the network bench (bshw/sim/bench_network.py through ``run_network``) against a
golden trace in which the rule matters:

- ``default``: the §1 64-32-10 net, 2 batches of 50 random images, then 3 test images classified;
- ``deep``: a 16-8-2-10 net with k = 1 whose narrow second hidden layer often drives no error at all
  (the gate of the `gated` tie rule matters);
- ``limits``: a 16-8-10 net with 3-bit weights ([-4, 3]), th = 2 and 3-bit counters ([-4, 3]), lr 1:
  weights reach both limits and counters saturate both ways within a few batches (the bench's
  ``limits`` counts how often).

A mutant is applied in this process, before emission, by patching the Python HDL: a module attribute
replaced (``mock.patch``), or one method or function recompiled from its own source with one
exact text replaced (the replaced text must occur exactly once, so a mutant that no longer applies
is an error, never a silent copy of the design). Nothing on disk changes.

"Caught" means: the bench failed, and its first mismatch names the mutant's expected signal
(``signal <name>`` in the message, e.g. ``x0``, ``counter1``, ``pulse1``, ``lfsr1``, ``clocks``).
``python -m bshw.sim.mutations`` (``make mutants``) runs them all and prints the table; the tests in
tests/test_mutations.py run a subset.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import re
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

# name -> (configuration over the exact-mode defaults, steps, batch, test images classified after)
TRACES = {
    "default": ({"hidden": (32,), "input_side": 8}, 2, 50, 3),
    "deep": ({"hidden": (8, 2), "input_side": 4, "hw": {"deriv_k": 1}}, 4, 10, 0),
    "limits": ({"hidden": (8,), "input_side": 4, "weights": "int3", "lr": 1.0, "hw": {"th": 2, "counter_bits": 3}},
               12, 10, 0),
    # §16: the 64-32-10 net on the paper's Fig. 5 memristor device (conductances, Eqs. 7-9)
    "device": ({"hidden": (32,), "input_side": 8, "hw": {"device": "paper-fig5"}}, 3, 50, 0),
}

BENCH = "bshw.sim.bench_network"


# -- how a mutant is applied ------------------------------------------------------------------------
def _attr(module: str, name: str, value):
    """Replace ``module.name`` (looked up by the HDL at elaboration) with ``value``."""
    return lambda: mock.patch.object(importlib.import_module(module), name, value() if callable(value) else value)


def _recompiled(func, old: str, new: str, *more: str):
    """``func`` recompiled from its source with ``old`` replaced by ``new`` (and each further
    ``old, new`` pair in ``more``; every ``old`` must occur exactly once), in its own module's globals."""
    src = textwrap.dedent(inspect.getsource(func))
    pairs = [(old, new)] + list(zip(more[::2], more[1::2]))
    for o, n in pairs:
        if src.count(o) != 1:
            raise RuntimeError(f"mutation of {func.__qualname__}: {o!r} occurs {src.count(o)} times, not once")
        src = src.replace(o, n)
    ns: dict = {}
    exec(compile(src, f"<mutant of {func.__qualname__}>", "exec"), func.__globals__, ns)
    out = ns[func.__name__]
    out.__qualname__ = func.__qualname__
    return out


def _edit(module: str, path: str, old: str, new: str, *more: str):
    """Patch ``module.path`` (a function, or ``Class.method``) with its source edited."""
    def apply():
        mod = importlib.import_module(module)
        owner, name = mod, path
        if "." in path:
            cls, name = path.split(".")
            owner = getattr(mod, cls)
        return mock.patch.object(owner, name, _recompiled(getattr(owner, name), old, new, *more))
    return apply


def _edit_import(module: str, name: str, source_module: str, old: str, new: str):
    """Patch the name ``module.name`` (imported there from ``source_module``) with the source-edited function."""
    def apply():
        func = getattr(importlib.import_module(source_module), name)
        return mock.patch.object(importlib.import_module(module), name, _recompiled(func, old, new))
    return apply


def _spec(width, taps):
    from bshw.core import LfsrSpec

    return LfsrSpec(width, taps)


def _leap_plus_one():
    from bshw import lfsr

    def planes(m, width, taps, leap, inits, **kw):
        return lfsr.lfsr_planes(m, width, taps, leap + 1, inits, **kw)
    return planes


def _load_ignored():
    from amaranth.hdl import Const

    from bshw import lfsr

    def planes(m, width, taps, leap, inits, **kw):
        return lfsr.lfsr_planes(m, width, taps, leap, inits, **{**kw, "load": Const(0)})
    return planes


def _lanes_rotated():
    from bshw.neuron_periphery import NeuronBank

    class Rotated(NeuronBank):  # the reset states handed to the lanes one lane off
        def __init__(self, *args):
            *rest, inits = args
            super().__init__(*rest, list(inits[1:]) + list(inits[:1]))
    return Rotated


def _clamp_below_wmax():
    from bshw.macro import CrossbarMacroSignature

    real = CrossbarMacroSignature.verilog_parameters

    def params(self):
        return {**real(self), "WMAX": self.wmax - 1}
    return mock.patch.object(CrossbarMacroSignature, "verilog_parameters", params)


def _step_floor():
    """§16: the array model's Eq. 7 / 8 steps rounded down instead of half up (CP, CD less 2^(QS-1))."""
    from amaranth.hdl import Const

    from bshw import system

    real = system.device_parameters

    def params(device, layer):
        out = real(device, layer)
        if out:
            half = 1 << (out["p_QS"] - 1)
            out.update(p_CP=Const(out["p_CP"].value - half, 64), p_CD=Const(out["p_CD"].value - half, 64))
        return out
    return mock.patch.object(system, "device_parameters", params)


@dataclass
class Mutant:
    name: str
    section: str
    broken: str
    trace: str
    signal: str  # the signal the first mismatch must name
    patches: list = field(default_factory=list)  # callables returning context managers
    params: dict | None = None  # hardware parameters the mutant is built with (the trace keeps its own)
    macro: str = "numpy"


_PER = "bshw.periphery"
_CM = "bshw.counter_memory"
_NP = "bshw.neuron_periphery"
_IS = "bshw.input_sampler"

MUTANTS = {m.name: m for m in [
    # §3 LFSRs
    Mutant("n32-taps", "§3", "N32 taps (31, 21, 1) instead of (31, 21, 1, 0)", "default", "x1",
           [_attr(_NP, "N32", lambda: _spec(32, (31, 21, 1)))]),
    Mutant("i16-taps", "§3", "I16 taps (15, 14, 12, 4) instead of (15, 14, 12, 3)", "default", "x0",
           [_attr(_IS, "I16", lambda: _spec(16, (15, 14, 12, 4)))]),
    Mutant("n32-leap", "§3", "a neuron draw leaps W + 1 steps instead of W", "default", "x1",
           [_attr(_NP, "lfsr_planes", _leap_plus_one)]),
    Mutant("seed-lanes", "§3 §15", "each neuron lane resets to its neighbour's seed state", "default", "lfsr1",
           [_attr(_PER, "NeuronBank", _lanes_rotated)]),
    Mutant("lfsr-load-ignored", "§15 host", "the host port's LFSR load of the neurons is ignored", "default",
           "lfsr1", [_attr(_NP, "lfsr_planes", _load_ignored)]),
    Mutant("lfsr-port-lane", "§15 host", "the host LFSR port addresses lane sel - offset + 1", "default", "lfsr_in",
           [_edit(_PER, "BshwPeriphery.elaborate", "lane.eq(self.host.lfsr_sel - offset)",
                  "lane.eq(self.host.lfsr_sel - offset + 1)")]),
    # §4 noise and comparator
    Mutant("cmp-ge", "§4", "the comparator fires on y + S >= T instead of >", "default", "b1",
           [_edit_import(_NP, "fires", "bshw.neuron", "noise_words) > T", "noise_words) >= T")]),
    Mutant("noise-split", "§4", "the noise words split high bits first", "default", "x1",
           [_edit("bshw.neuron", "noise_sum", "for w in noise_words:", "for w in reversed(noise_words):")]),
    # §5 input sampler
    Mutant("mod255-no-wrap", "§5", "r mod 255 keeps 255 (no 255 -> 0)", "default", "x0",
           [_edit(_IS, "sampled_input", "Mux(t2 == 255, 0, t2)", "t2")]),
    Mutant("mod255-no-carry", "§5", "the byte sum drops its end-around carry", "default", "x0",
           [_edit(_IS, "sampled_input", "t2.eq(t[0:8] + t[8])", "t2.eq(t[0:8])")]),
    Mutant("input-le", "§5", "a pixel fires on u <= p instead of u < p", "default", "x0",
           [_edit(_IS, "sampled_input", "return u < pixel", "return u <= pixel")]),
    # §15 the input walk (the default net's 64 pixels are 4 words of 16)
    Mutant("input-walk-pixels", "§5 §15", "the input walk compares each word's states with the next word's pixels",
           "default", "x0", [_edit(_IS, "InputSamplerBank.elaborate", "pix.word_select(s2_word, 8 * G)",
                                   "pix.word_select(s2_word + 1, 8 * G)")]),
    Mutant("input-walk-hangs", "§8 §15", "the sequencer never leaves SAMPLE (the bench must name the operation "
           "that does not end, not hang)", "default", "clocks",
           [_edit(_PER, "BshwPeriphery.elaborate", "with m.If(inputs.last):", "with m.If(Const(0)):")]),
    Mutant("input-walk-short", "§5 §15", "the input walk stops one word early (the last 16 pixels keep their "
           "old bits and states)", "default", "x0",
           [_edit(_IS, "InputSamplerBank.elaborate", "(s2_word != W - 1)", "(s2_word != W - 2)",
                  "(s2_word == W - 1)", "(s2_word == W - 2)")]),
    # §6 draws and the derivative
    Mutant("swap-ab", "§6", "A and B swapped in the derivative: d = B AND NOT A", "default", "d1",
           [_edit("bshw.derivative_sampler", "DerivativeSampler.elaborate",
                  "sampled_derivative(a, b)", "sampled_derivative(b, a)")]),
    Mutant("latch-ba", "§6", "draw order X, B1, A1, ...: each pair latched B first", "default", "a1",
           [_edit("bshw.derivative_sampler", "DerivativeSampler.elaborate",
                  "m.d.sync += a[j].eq(self.fire)", "m.d.sync += b[j].eq(self.fire)"),
            ]),
    Mutant("deriv-and", "§6", "d = AND over the k pairs instead of OR", "default", "d1",
           [_edit_import("bshw.derivative_sampler", "sampled_derivative", "bshw.derivative_sampler",
                         "d = d | (aj & ~bj)", "d = d & (aj & ~bj)")]),
    Mutant("seq-skip-draw", "§6 §8", "the sequencer stops a hidden layer one draw early (no B_k)", "default", "b1",
           [_edit(_PER, "BshwPeriphery.elaborate", "last = (dcount == 2 * k)", "last = (dcount == 2 * k - 1)")]),
    Mutant("seq-extra-draw", "§6 §8", "the sequencer draws a hidden layer once more (X again)", "default", "x1",
           [_edit(_PER, "BshwPeriphery.elaborate", "last = (dcount == 2 * k)", "last = (dcount == 2 * k + 1)")]),
    # §7 the error path
    Mutant("tie-zero", "§7", "ties give dz = 0 (rule `zero`) where `gated` gives +1", "default", "dz_en1",
           params={"tie": "zero"}),
    Mutant("no-gate", "§7", "the no-error gate is dropped: ties always give +1 (rule `plus`)", "deep", "dz_en1",
           params={"tie": "plus"}),
    Mutant("output-error-sign", "§7", "the output error's sign flipped: dy = t - x", "default", "dy_neg2",
           [_edit(_PER, "BshwPeriphery.elaborate", "neg.eq(target & ~layer_x[li])", "neg.eq(layer_x[li] & ~target)")]),
    Mutant("bwd-drive-sign", "§7 §15 macro", "the backward column drive sends dy with its sign flipped", "default",
           "dx1", [_edit(_PER, "BshwPeriphery.elaborate", "xbs[li].dy_neg.eq(dy_neg[li])",
                         "xbs[li].dy_neg.eq(dy_en[li] & ~dy_neg[li])")]),
    # §8 operations that do more than they should
    Mutant("infer-runs-backward", "§8", "stochastic inference also draws the output layer, runs backward and "
           "accumulates", "default", "lfsr2",
           [_edit(_PER, "BshwPeriphery.elaborate", "m.Elif(train | hidden)", "m.Elif(Const(1))")]),
    Mutant("binary-draws", "§8", "binary inference draws the input streams", "default", "lfsr_in",
           [_edit(_PER, "BshwPeriphery.elaborate", 'with m.Case(Op.BINARY):\n                        m.next = "FWD0"',
                  'with m.Case(Op.BINARY):\n                        m.next = "SAMPLE"',
                  "(self.op == Op.TRAIN) | (self.op == Op.INFER)", "self.op != Op.CARRY")]),
    # §9 counters and carry
    Mutant("th-off-by-one", "§9", "carry threshold th + 1 instead of th", "default", "pulse1", params={"th": "+1"}),
    Mutant("counter-wraps", "§9", "the counters wrap instead of saturating", "limits", "counter1",
           [_edit_import(_CM, "counter_planes", "bshw.periodic_carry", '& ~equals(c, cmax & ((1 << cb) - 1), f"{name}_at_max")',
                         "")]),
    Mutant("carry-keeps-negative", "§9", "a carry at c <= -th does not clear the counter", "default", "counter1",
           [_edit_import(_CM, "counter_planes", "bshw.periodic_carry", "fire & (up | down)", "fire & down")]),
    Mutant("clamp-wmax-1", "§9 §15 macro", "the array clamps at wmax - 1", "limits", "weight1",
           [_clamp_below_wmax], macro="hdl"),
    Mutant("device-step-floor", "§16", "the array's Eq. 7 / 8 step table rounds down instead of half up",
           "device", "y2", [_step_floor], macro="hdl"),
    Mutant("pot-dep-swapped", "§15 macro", "the update pins pot and dep swapped", "default", "pulse1",
           [_edit(_PER, "BshwPeriphery.elaborate", "xb.pot.eq(cm.pot), xb.dep.eq(cm.dep)",
                  "xb.pot.eq(cm.dep), xb.dep.eq(cm.pot)")]),
    # §15 counter memory: pipeline and row skipping
    Mutant("acc-skip-row", "§15 memory", "the accumulate walk drops the write-back of its first row", "default",
           "counter1", [_edit(_CM, "CounterMemory.elaborate",
                              "wr.en.eq(Mux(s2_valid, 1, self.host_we))",
                              "wr.en.eq(Mux(s2_valid, carrying | ~first, self.host_we))",
                              "    s2_valid = Signal()\n",  # (the method's source, dedented)
                              "    s2_valid = Signal()\n    first = Signal(init=1)  # the walk's first write-back\n"
                              "    with m.If(self.acc_start):\n        m.d.sync += first.eq(1)\n"
                              "    with m.Elif(s2_valid):\n        m.d.sync += first.eq(0)\n")]),
    Mutant("mem-write-row", "§15 memory", "stage 2 writes back to stage 1's row", "default", "counter1",
           [_edit(_CM, "CounterMemory.elaborate", "wr.addr.eq(Mux(s2_valid, s2_row, self.host_row))",
                  "wr.addr.eq(Mux(s2_valid, pick, self.host_row))")]),
    Mutant("acc-all-rows", "§15 memory", "the accumulate walks every row, also rows with x_i = 0", "default",
           "counter1", [_edit(_CM, "CounterMemory.elaborate", "Mux(self.dy_en.any(), self.x, 0)",
                              "Mux(self.dy_en.any(), Const((1 << fi) - 1, fi), 0)")]),
    # the deep net's narrow second layer often passes no error down: then only the output layer walks,
    # and a walk of the first layer's rows shows in the clock count
    Mutant("acc-zero-error", "§15 memory", "the accumulate walks the rows of a layer whose error is all zero",
           "deep", "clocks", [_edit(_CM, "CounterMemory.elaborate", "Mux(self.dy_en.any(), self.x, 0)", "self.x")]),
    Mutant("host-rvalid-early", "§15 host", "mem_rvalid one clock early (before the counters' row)", "default",
           "counter1", [_edit(_PER, "BshwPeriphery.elaborate", "self.host.mem_rvalid.eq(rvalid[-1])",
                              "self.host.mem_rvalid.eq(rvalid[0])")]),
]}

def _patch_context(m: Mutant):
    stack = contextlib.ExitStack()
    for p in m.patches:
        stack.enter_context(p() if not isinstance(p, contextlib.AbstractContextManager) else p)
    return stack


def trace_for(name: str, out_dir) -> Path:
    """Write (once) the golden trace of configuration ``name`` on random images; return its path."""
    from bshw.sim.network import write_random_trace

    over, steps, batch, _ = TRACES[name]
    return write_random_trace(Path(out_dir) / f"trace-{name}.jsonl", over, steps, batch)


def build_mutant(name: str, trace: Path, out_dir) -> Path:
    """Write the mutant's probed RTL and a description with the *unbroken* parameters (so the bench
    runs it against the trace); return the folder."""
    from bshw.golden.config import TrainConfig
    from bshw.rtl import build, describe, write_design

    header = json.loads(trace.open().readline())
    cfg = TrainConfig.from_dict(header["config"], where="trace header")
    m = MUTANTS[name]
    folder = Path(out_dir) / f"mutant-{name}"
    with _patch_context(m):  # construction and emission both see the mutation
        top = build(cfg, probes=True)
        claimed = top.params
        if m.params:
            from dataclasses import replace

            from bshw.periphery import BshwPeriphery

            broken = {k: getattr(claimed, k) + int(v) if isinstance(v, str) and v.startswith("+") else v
                      for k, v in m.params.items()}
            top._MustUse__silence = True  # replaced by the one built with the broken parameter
            top = BshwPeriphery(top.sizes, replace(claimed, **broken), seeds=top.seeds, probes=True)
        desc = describe(cfg, top)
        desc["params"] = claimed.as_dict()  # the trace's parameters: the mutant claims to implement them
        write_design(folder, top, desc)
    return folder


SIGNAL = re.compile(r"signal (\w+)")


def named_signal(message: str) -> str | None:
    """The signal a bench mismatch names (``signal x1[3] ...`` -> ``x1``), or None."""
    m = SIGNAL.search(message or "")
    return m.group(1) if m else None


def run_mutant(name: str, out_dir, seed: int = 0) -> dict:
    """Run one mutant against its trace: ``{"mutant", "section", "broken", "caught", "by", "signal",
    "expected_signal", "named", "mismatch", "wall_s"}``; ``caught`` needs the bench to fail, ``named`` its
    first mismatch to name exactly ``expected_signal``."""
    from bshw.sim.network import run_network

    t0 = time.perf_counter()
    m = MUTANTS[name]
    trace = trace_for(m.trace, out_dir)
    folder = build_mutant(name, trace, out_dir)
    res = run_network(trace, rtl_dir=folder, build_dir=Path(out_dir) / f"build-{name}", seed=seed, macro=m.macro,
                      infer_samples=TRACES[m.trace][3], state_check="op")
    msg = (res["mismatch"] or "").split("\n")[0]
    msg = msg.split(": ", 1)[1] if msg.startswith("network_matches_golden: ") else msg
    got = named_signal(msg) if not res["passed"] else None
    return {"mutant": name, "section": m.section, "broken": m.broken, "caught": not res["passed"],
            "by": f"network bench, {m.trace} trace, {m.macro}", "signal": got, "expected_signal": m.signal,
            "named": got == m.signal, "mismatch": msg, "wall_s": time.perf_counter() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bshw.sim.mutations", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="sim_build/mutations", help="work folder")
    p.add_argument("names", nargs="*", help=f"mutants (default all: {', '.join(MUTANTS)})")
    a = p.parse_args(argv)
    bad = [n for n in a.names if n not in MUTANTS]
    if bad:
        p.error(f"unknown mutant(s) {', '.join(bad)}")
    ok, t0 = True, time.perf_counter()
    print(f"{'mutant':22s} {'rule':13s} {'caught by':36s} {'named':6s} {'s':>5s}  first mismatch")
    for name in a.names or MUTANTS:
        r = run_mutant(name, a.out)
        good = r["caught"] and r["named"]
        ok &= good
        verdict = "yes" if good else ("OTHER" if r["caught"] else "NO")
        print(f"{name:22s} {r['section']:13s} {r['by'] if r['caught'] else '(passed the bench)':36s} "
              f"{verdict:6s} {r['wall_s']:5.1f}  {r['mismatch'] or '-'}", flush=True)
        if r["caught"] and not r["named"]:
            print(f"{'':22s} expected signal {r['expected_signal']}, the mismatch names {r['signal']}", flush=True)
    print(f"{len(a.names or MUTANTS)} mutants in {time.perf_counter() - t0:.0f} s: "
          f"{'every one caught, naming the expected signal' if ok else 'NOT every one caught naming its signal'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
