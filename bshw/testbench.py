"""A Python-free testbench that replays a golden trace on the system top (docs/arithmetic.md §11, §15).

``write_testbench(trace, rtl_dir, out_dir)`` writes two files beside the probed Verilog that
``bshw rtl`` made for the trace's configuration:

- ``bshw_tb.sv``: a plain SystemVerilog bench around the system top (the periphery and one
  behavioral macro per layer, bshw/system.py). It reads the stimulus file one record at a time, so
  its size does not grow with the trace, drives the periphery's transaction and host ports exactly
  as the cocotb bench does (bshw/sim/bench_network.py), compares, and ends with ``PASS n/n`` or the
  first mismatch (record, step, sample, signal, index, expected, got) and ``$fatal``.
- ``bshw_tb.stim``: the records, one per line, from the trace and the golden model:

  ======  ==========================================  ===============================================
  tag     fields (hex where a vector)                 what the bench does
  ======  ==========================================  ===============================================
  ``@``   text                                        names the place that the next checks report
  ``w``   layer row word                              host write of a row of levels
  ``c``   layer row word                              host write of a row of counters
  ``s``   stream state                                host write of an LFSR state
  ``r``   layer row nw levels nc counters             host read of a row; compare its low ``nw``
                                                      level bits and ``nc`` counter bits (0: none)
  ``q``   stream state                                host read of an LFSR state; compare
  ``t``   step sample label pixels probes clocks      ``TRAIN``; compare every probe and the clocks
  ``k``   step clocks                                 ``CARRY``; compare the clocks
  ``b``   image pixels pred clocks                    ``BINARY``; compare the class and the clocks
  ``i``   image pixels pred clocks                    ``INFER`` (one vote); compare
  ``e``                                               end: ``PASS``
  ======  ==========================================  ===============================================

The order is the cocotb bench's: load the trace's initial state through the host ports and read it
back; every training sample with its probes; at each batch end the counters before the carry, the
carry, then every level, counter and LFSR state; then binary and stochastic inference per test
image, and the whole state once more at the end. Nothing here runs a simulator: Icarus
(``iverilog -g2012``) and Verilator (``--binary``) build the bench with the Verilog files alone
(:func:`simulate` is a convenience that does that).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import closing
from pathlib import Path

from bshw.errors import BshwError
from bshw.io import atomic_write_text, check_writable
from bshw.sim import (
    netio,  # torch-free: the probe layout, packing and rows walked of the benches
)

TB_TOP = "bshw_tb"
TB_FILE, STIM_FILE = f"{TB_TOP}.sv", f"{TB_TOP}.stim"
PERIOD = 10  # ns; the bench's clock


def _hex(word: int) -> str:
    return format(word, "x")


def check_trace_matches(header: dict, desc: dict, trace) -> None:
    """The trace was made for the design ``desc`` (shape, parameters, probes), else BshwError."""
    try:
        sizes = [x["fan_in"] for x in header["layers"]] + [header["layers"][-1]["fan_out"]]
    except (KeyError, IndexError, TypeError):
        raise BshwError(f"bad trace {trace}: its header has no layer shapes") from None
    if sizes != desc["sizes"]:
        raise BshwError(f"trace {trace} is for a {'-'.join(map(str, sizes))} net, the RTL is "
                        f"{'-'.join(map(str, desc['sizes']))}")
    if header.get("params") != desc["params"]:
        diff = sorted(k for k in set(header.get("params") or {}) | set(desc["params"])
                      if (header.get("params") or {}).get(k) != desc["params"].get(k))
        raise BshwError(f"trace {trace} was made for other hardware parameters than the RTL ({', '.join(diff)})")
    if not desc.get("probes"):
        raise BshwError("the RTL has no probe ports: the testbench compares every probe; emit it with probes")


def check_trace(trace, desc: dict) -> None:
    """BshwError (one line) unless ``trace`` is a golden trace made for the design ``desc``."""
    from bshw.golden.exact.trace import open_trace

    header, steps = open_trace(trace)
    steps.close()
    check_trace_matches(header, desc, trace)


class _Stim:
    """The stimulus file, written line by line into memory and atomically at the end."""

    def __init__(self):
        self.lines, self.checks = [], 0

    def add(self, *fields, checks: int = 0):
        self.lines.append(" ".join(str(f) for f in fields))
        self.checks += checks


def _state_records(stim: _Stim, desc: dict, W, C, lfsrs, where: str):
    stim.add("@", where.replace(" ", "_"))
    for s, v in enumerate(lfsrs):
        stim.add("q", s, _hex(v), checks=1)
    cb = desc["params"]["counter_bits"]
    for li, layer in enumerate(desc["layers"]):
        wb, n = layer["wbits"], layer["fan_out"]
        for i, (wr, cr) in enumerate(zip(W[li], C[li])):
            stim.add("r", li, i, n * wb, _hex(netio.pack(wr, wb)), n * cb, _hex(netio.pack(cr, cb)), checks=2 * n)


def stimulus(trace, desc: dict, *, infer_samples: int = 0, steps: int | None = None) -> tuple:
    """``(text, summary)``: the stimulus of a trace's first ``steps`` steps (all when None), then
    ``infer_samples`` test images (binary and one stochastic vote each; expectations and the end
    state from the golden learner, :func:`bshw.sim.network.expected_inference`).

    The expected state is checked where the trace records it (after loading, after every carry) and
    after inference: a paper-size trace streams through in one pass, nothing is recomputed."""
    from bshw.golden.exact.trace import open_trace

    header, records = open_trace(trace)
    check_trace_matches(header, desc, trace)
    sizes = desc["sizes"]
    cb = desc["params"]["counter_bits"]
    layout = netio.probe_layout(desc)
    stim = _Stim()
    init = header["init"]
    W, C = init["weights"], init["counters"]
    lfsrs = list(init["lfsr_in"]) + [s for layer in init["lfsr"] for s in layer]
    stim.add("@", "after_reset")
    for s, v in enumerate(netio.seed_states(sizes, desc["seed"])):
        stim.add("q", s, _hex(v), checks=1)
    for li, layer in enumerate(desc["layers"]):
        for i, row in enumerate(W[li]):
            stim.add("w", li, i, _hex(netio.pack(row, layer["wbits"])))
        for i, row in enumerate(C[li]):
            stim.add("c", li, i, _hex(netio.pack(row, cb)))
    for s, v in enumerate(lfsrs):
        stim.add("s", s, _hex(v))
    _state_records(stim, desc, W, C, lfsrs, "after loading")
    n_steps = n_samples = 0
    last = None
    with closing(records):
        for step in records:
            if steps is not None and n_steps >= steps:
                break
            try:
                s = step["step"]
                for b, rec in enumerate(step["samples"]):
                    exp = netio.expected_probes(desc, rec)
                    probes, off = 0, 0
                    for port, (n, bits, _) in layout.items():
                        probes |= (exp[port] & ((1 << (n * bits)) - 1)) << off
                        off += n * bits
                    clocks = netio.op_clocks(desc, "train", rec)
                    stim.add("t", s, b, step["labels"][b], _hex(netio.pack(rec["pixels"], 8)), _hex(probes), clocks,
                             checks=sum(n for n, _, _ in layout.values()) + 1)
                    n_samples += 1
                stim.add("@", f"step_{s}_before_carry")
                for li, (layer, up) in enumerate(zip(desc["layers"], step["update"])):
                    for i, row in enumerate(up["counter_pre"]):
                        stim.add("r", li, i, 0, "0", layer["fan_out"] * cb, _hex(netio.pack(row, cb)),
                                 checks=layer["fan_out"])
                stim.add("k", s, netio.op_clocks(desc, "carry"), checks=1)
                W = [up["weights"] for up in step["update"]]
                C = [up["counter"] for up in step["update"]]
                lfsrs = list(step["lfsr_in_end"]) + [v for layer in step["lfsr_end"] for v in layer]
                _state_records(stim, desc, W, C, lfsrs, f"step {s} after carry")
                n_steps += 1
                last = step
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise BshwError(f"bad trace {trace}: step {n_steps}: {type(e).__name__}: {e}") from None
    if infer_samples:
        from bshw.sim.network import expected_inference

        infer = expected_inference(header, last, infer_samples)
        stim.add("@", "inference")
        for i, px in enumerate(infer["pixels"]):
            word = _hex(netio.pack(px, 8))
            stim.add("b", i, word, infer["binary"][i], netio.op_clocks(desc, "binary"), checks=2)
            stim.add("i", i, word, infer["stochastic"][i], netio.op_clocks(desc, "infer"), checks=2)
        _state_records(stim, desc, W, C, infer["lfsr_end"], "after inference")
    stim.add("e")
    summary = {"steps": n_steps, "samples": n_samples, "infer": len(infer["pixels"]) if infer_samples else 0,
               "checks": stim.checks}
    return "\n".join(stim.lines) + "\n", summary


_DIRECT_TASKS = """  // One operation as the cocotb bench runs it (bshw/sim/bench_network.py): start in IDLE on a falling
  // edge; its clocks run from that clock to the done clock (the §15 formula counts the same).
  task automatic run_op(input [1:0] code);
    @(negedge clk);
    while (busy) @(negedge clk);
    op = code; start = 1; c0 = cyc;
    @(posedge clk); #1 start = 0;
    waited = 0;
    while (!done) begin @(posedge clk); #1; timeout("done"); end
    clocks = int'(cyc - c0) + 1;
    n_ops++;
  endtask

  // the host ports address rows only while the sequencer is idle (§15 host ports)
  task automatic idle();
    #1; while (busy) @(negedge clk);
  endtask
"""
_DIRECT_WRITE_ROW = """          idle(); @(negedge clk);
          mem_layer = a1; mem_row = a2;
          if (tag == "w") begin mem_wdata_w = v1; mem_we_w = 1; end
          else begin mem_wdata_c = v1; mem_we_c = 1; end
          @(negedge clk); mem_we_w = 0; mem_we_c = 0;"""
_DIRECT_WRITE_LFSR = """          idle(); @(negedge clk);
          lfsr_sel = a1; lfsr_wdata = v1[31:0]; lfsr_we = 1;
          @(negedge clk); lfsr_we = 0;"""
_DIRECT_READ_LFSR = """          idle(); @(negedge clk); lfsr_sel = a1; @(negedge clk);"""
_DIRECT_READ_ROW = """          idle(); @(negedge clk);
          mem_layer = a1; mem_row = a2; mem_re = 1;
          @(negedge clk); mem_re = 0;
          waited = 0;
          while (!mem_rvalid) begin @(negedge clk); timeout("mem_rvalid"); end"""


def _host_parts(desc: dict, width: dict, max_clocks: int) -> dict:
    """The pieces of :func:`bench_text` that differ on the host system top: its ports, the Wishbone
    and stream tasks, and the host-port records done through the wrapper's registers
    (bshw/host_wrapper.py ``REGISTERS``; it stalls an access while an operation runs)."""
    from bshw.host_wrapper import (
        ADDR_WIDTH,
        REG,
        Cmd,
        names,
        result_layout,
        sample_layout,
    )

    prefix = desc["top"][:-len("periphery")]
    n0 = desc["sizes"][0]
    slay, rlay = sample_layout(n0, width["label"]), result_layout(width["pred"])
    ww, cw = -(-width["host__mem_wdata_w"] // 32), -(-width["host__mem_wdata_c"] // 32)
    r = {k: REG[k].addr for k in REG}
    decl = [f"  logic [{width['pixels'] - 1}:0] pixels;", f"  logic [{width['label'] - 1}:0] label;",
            f"  logic [{width['pred'] - 1}:0] pred;", f"  logic [{32 * ww - 1}:0] mem_rdata_w;",
            f"  logic [{32 * cw - 1}:0] mem_rdata_c;", "  logic [31:0] lfsr_rdata, q32;",
            "  logic clk = 0, rst = 1, s_valid = 0, r_ready = 0, wb_cyc = 0, wb_stb = 0, wb_we = 0;",
            "  logic s_ready, r_valid, wb_ack;", f"  logic [{slay.size - 1}:0] s_payload = '0;",
            f"  logic [{rlay.size - 1}:0] r_payload;", f"  logic [{ADDR_WIDTH - 1}:0] wb_adr = '0;",
            "  logic [31:0] wb_dat_w = '0, wb_dat_r;", "  logic [3:0] wb_sel = 4'hf;"]
    conns = [".clk(clk)", ".rst(rst)", ".samples__payload(s_payload)", ".samples__valid(s_valid)",
             ".samples__ready(s_ready)", ".results__payload(r_payload)", ".results__valid(r_valid)",
             ".results__ready(r_ready)", *[f".wb__{n}(wb_{n})" for n in ("adr", "dat_w", "dat_r", "sel", "cyc", "stb",
                                                                         "we", "ack")]]
    tasks = f"""  // Through the host wrapper (bshw/host_wrapper.py): one Wishbone B4 classic access, driven on a
  // falling edge, until ack (the wrapper stalls a host-port access while an operation runs).
  task automatic wb(input integer adr, input logic [31:0] data, input logic write);
    @(negedge clk);
    wb_adr = adr; wb_dat_w = data; wb_we = write; wb_cyc = 1; wb_stb = 1;
    waited = 0;
    @(negedge clk);
    while (!wb_ack) begin @(negedge clk); timeout("wb ack"); end
    q32 = wb_dat_r; wb_cyc = 0; wb_stb = 0; wb_we = 0;
  endtask

  task automatic row(input integer layer, input integer index);
    wb({r['ROW_LAYER']}, layer, 1); wb({r['ROW_INDEX']}, index, 1); wb({r['WIDX']}, 0, 1);
  endtask

  // One operation through the sample stream; its clocks run from the periphery's start clock (the one
  // after the sample is taken) to its done clock (the result is valid the clock after).
  task automatic run_op(input [1:0] code);
    @(negedge clk);
    s_payload = {{code, label, pixels}}; s_valid = 1; #1;
    waited = 0;
    while (!s_ready) begin @(negedge clk); #1; timeout("samples ready"); end
    c0 = cyc;
    @(negedge clk); s_valid = 0; r_ready = 1;
    waited = 0;
    while (!r_valid) begin @(negedge clk); timeout("result"); end
    clocks = int'(cyc - c0) - 1;
    pred = r_payload[{width['pred'] - 1}:0];
    @(negedge clk); r_ready = 0;
    n_ops++;
  endtask
"""
    write_row = f"""          row(a1, a2);
          for (e = 0; e < (tag == "w" ? {ww} : {cw}); e++) wb(tag == "w" ? {r['LEVELS']} : {r['COUNTERS']}, v1[32*e +: 32], 1);
          wb({r['CMD']}, tag == "w" ? {Cmd.WRITE_LEVELS} : {Cmd.WRITE_COUNTERS}, 1);"""
    write_lfsr = f"""          wb({r['LFSR_SEL']}, a1, 1); wb({r['LFSR_DATA']}, v1[31:0], 1);"""
    read_lfsr = f"""          wb({r['LFSR_SEL']}, a1, 1); wb({r['LFSR_DATA']}, 0, 0); lfsr_rdata = q32;"""
    read_row = f"""          row(a1, a2); wb({r['CMD']}, {Cmd.READ_ROW}, 1);
          for (e = 0; e < {ww}; e++) begin wb({r['LEVELS']}, 0, 0); mem_rdata_w[32*e +: 32] = q32; end
          wb({r['WIDX']}, 0, 1);
          for (e = 0; e < {cw}; e++) begin wb({r['COUNTERS']}, 0, 0); mem_rdata_c[32*e +: 32] = q32; end"""
    return {"module": names(prefix)["host_system"], "decl": decl, "conns": conns, "tasks": tasks,
            "write_row": write_row, "write_lfsr": write_lfsr, "read_lfsr": read_lfsr, "read_row": read_row,
            "wide": (32 * ww, 32 * cw)}


def bench_text(desc: dict, *, max_clocks: int = 100_000, via_host: bool = False) -> str:
    """The SystemVerilog bench for the probed system top ``desc['system']``: port widths from the
    design's own metadata (``desc['ports']``), probe order from :func:`bshw.sim.netio.probe_layout`.
    ``max_clocks``: the longest wait for ``done`` or ``mem_rvalid`` before the bench gives up.

    ``via_host``: the bench drives the host system top instead (``<prefix>host_system``: the host
    wrapper of bshw/host_wrapper.py with the macro models): the state is loaded and read through the
    wrapper's Wishbone registers, every operation goes through its sample stream, and its result
    (class) and clock count come from the result stream."""
    # the ports and the host sub-interface's members (host__<name>), not the macro interfaces
    width = {name: p["width"] for name, p in desc["ports"].items() if "width" in p}
    width.update({m["name"]: m["width"] for m in desc["ports"]["host"]["members"].values()})
    layout = netio.probe_layout(desc)
    host = ["op", "pixels", "label", "pred", "mem_layer", "mem_row", "mem_wdata_w", "mem_rdata_w", "mem_wdata_c",
            "mem_rdata_c", "lfsr_sel", "lfsr_wdata", "lfsr_rdata"]
    members = desc["ports"]["host"]["members"]  # the host sub-interface: Verilog ports host__<name>

    def port(n):
        return members[n]["name"] if n in members else n

    decl = [f"  logic [{width[port(n)] - 1}:0] {n};" for n in host]
    decl.append("  logic clk = 0, rst = 1, start = 0, mem_we_w = 0, mem_we_c = 0, mem_re = 0, lfsr_we = 0;")
    decl.append("  logic busy, done, mem_rvalid;")
    conns = [f".{port(n)}({n})" for n in ("clk", "rst", "start", "busy", "done", "mem_we_w", "mem_we_c", "mem_re",
                                           "mem_rvalid", "lfsr_we", *host)]
    dut_module = desc["system"]
    hw = _host_parts(desc, width, max_clocks) if via_host else None
    if hw:
        decl, conns, dut_module = hw["decl"], hw["conns"], hw["module"]
    probe_cat, checks, off = [], [], 0
    for port, (n, bits, signed) in layout.items():
        decl.append(f"  logic [{n * bits - 1}:0] p_{port};")
        conns.append(f".{port}(p_{port})")
        probe_cat.append(f"p_{port}")
        cast = "$signed" if signed else ""
        checks.append(
            f"            for (e = 0; e < {n}; e++)\n"
            f"              if (p_{port}[e*{bits} +: {bits}] !== exp_probes[{off} + e*{bits} +: {bits}]) begin\n"
            f"                $display(\"MISMATCH record %0d: step %0d sample %0d: signal {port}[%0d] expected %0d, "
            f"got %0d\",\n"
            f"                         rec, a1, a2, e, {cast}(exp_probes[{off} + e*{bits} +: {bits}]), "
            f"{cast}(p_{port}[e*{bits} +: {bits}]));\n"
            f"                fail();\n"
            f"              end")
        off += n * bits
    nprobe = off
    wide = max(width["host__mem_wdata_w"], width["host__mem_wdata_c"], width["pixels"], 32, *(hw["wide"] if hw else ()))
    wb, cb = desc["layers"][0]["wbits"], desc["params"]["counter_bits"]
    ops, sizes = desc["ops"], desc["sizes"]
    nl = "\n"
    return f"""// Generated by bshw (bshw/testbench.py) for the {'-'.join(map(str, sizes))} system top {desc['system']}.
// Replays {STIM_FILE} (a golden trace, docs/arithmetic.md §11, §15) with no Python in the loop and
// ends with PASS n/n or the first mismatch (record, step, sample, signal, index, expected, got).
`timescale 1ns/1ps
module {TB_TOP};
{nl.join(decl)}
  logic [{nprobe - 1}:0] exp_probes, got_probes;
  logic [{wide - 1}:0] v1, v2, mask;
  integer fd, rc, rec = 0, checks = 0, e, a1, a2, a3, a4, nw, nc, clocks, n_ops = 0, waited;
  longint cyc = 0, c0;
  reg [8*96-1:0] tag, place;

  {dut_module} dut({', '.join(conns)});

  always #{PERIOD // 2} clk = ~clk;
  always @(posedge clk) cyc <= cyc + 1;
  assign got_probes = {{{', '.join(reversed(probe_cat))}}};

  task automatic fail();
    $display("FAIL after %0d checks (record %0d)", checks, rec);
    $fatal(1, "bshw testbench: mismatch");
  endtask

  task automatic timeout(input [8*32-1:0] what);
    if (++waited > {max_clocks}) begin
      $display("MISMATCH record %0d: %0s: no %0s after {max_clocks} clocks", rec, place, what);
      fail();
    end
  endtask

{hw["tasks"] if hw else _DIRECT_TASKS}
  task automatic check_clocks(input integer want, input [8*8-1:0] what);
    checks++;
    if (clocks !== want) begin
      $display("MISMATCH record %0d: %0s: signal clocks of %0s expected %0d (the §15 formula), got %0d",
               rec, place, what, want, clocks);
      fail();
    end
  endtask

  initial begin : replay
    fd = $fopen("{STIM_FILE}", "r");
    if (fd == 0) $fatal(1, "bshw testbench: cannot open {STIM_FILE}");
    place = "start";
    repeat (2) @(negedge clk);
    rst = 0;
    forever begin
      rc = $fscanf(fd, "%s", tag);
      if (rc != 1) $fatal(1, "bshw testbench: {STIM_FILE} ends without its end record");
      rec++;
      case (tag)
        "@": begin  // a new place: report progress (a long replay is not silent)
          rc = $fscanf(fd, "%s", place);
          $display("bshw_tb: %0s: record %0d, %0d checks passed, %0d clocks", place, rec, checks, cyc);
        end
        "w", "c": begin  // host write of a row (levels or counters)
          rc = $fscanf(fd, "%d %d %h", a1, a2, v1);
{hw["write_row"] if hw else _DIRECT_WRITE_ROW}
        end
        "s": begin  // host write of an LFSR state
          rc = $fscanf(fd, "%d %h", a1, v1);
{hw["write_lfsr"] if hw else _DIRECT_WRITE_LFSR}
        end
        "q": begin  // host read of an LFSR state
          rc = $fscanf(fd, "%d %h", a1, v1);
{hw["read_lfsr"] if hw else _DIRECT_READ_LFSR}
          checks++;
          if (lfsr_rdata !== v1[31:0]) begin
            $display("MISMATCH record %0d: %0s: signal lfsr stream %0d expected %h, got %h", rec, place, a1,
                     v1[31:0], lfsr_rdata);
            fail();
          end
        end
        "r": begin  // host read of a row: the low nw level bits and nc counter bits
          rc = $fscanf(fd, "%d %d %d %h %d %h", a1, a2, nw, v1, nc, v2);
{hw["read_row"] if hw else _DIRECT_READ_ROW}
          mask = nw == 0 ? '0 : ~('1 << nw);
          if (((mem_rdata_w ^ v1) & mask) != 0)
            for (e = 0; e < nw; e += {wb})
              if (mem_rdata_w[e +: {wb}] !== v1[e +: {wb}]) begin
                $display("MISMATCH record %0d: %0s: signal weight%0d[%0d][%0d] expected %0d, got %0d", rec, place,
                         a1 + 1, a2, e / {wb}, $signed(v1[e +: {wb}]), $signed(mem_rdata_w[e +: {wb}]));
                fail();
              end
          mask = nc == 0 ? '0 : ~('1 << nc);
          if (((mem_rdata_c ^ v2) & mask) != 0)
            for (e = 0; e < nc; e += {cb})
              if (mem_rdata_c[e +: {cb}] !== v2[e +: {cb}]) begin
                $display("MISMATCH record %0d: %0s: signal counter%0d[%0d][%0d] expected %0d, got %0d", rec, place,
                         a1 + 1, a2, e / {cb}, $signed(v2[e +: {cb}]), $signed(mem_rdata_c[e +: {cb}]));
                fail();
              end
          checks += nw / {wb} + nc / {cb};
        end
        "t": begin  // TRAIN one sample: every probe and the clocks
          rc = $fscanf(fd, "%d %d %d %h %h %d", a1, a2, a3, v1, exp_probes, a4);
          pixels = v1[{width['pixels'] - 1}:0]; label = a3;
          run_op({ops['train']});
          if (got_probes !== exp_probes) begin
{nl.join(checks)}
          end
          checks += {sum(n for n, _, _ in layout.values())};
          check_clocks(a4, "train");
        end
        "k": begin  // the batch-end CARRY
          rc = $fscanf(fd, "%d %d", a1, a4);
          run_op({ops['carry']});
          check_clocks(a4, "carry");
        end
        "b", "i": begin  // BINARY inference, or one stochastic vote (INFER)
          rc = $fscanf(fd, "%d %h %d %d", a1, v1, a3, a4);
          pixels = v1[{width['pixels'] - 1}:0];
          run_op(tag == "b" ? {ops['binary']} : {ops['infer']});
          checks++;
          if (pred !== a3) begin
            $display("MISMATCH record %0d: test sample %0d: signal pred of %0s inference expected %0d, got %0d", rec,
                     a1, tag == "b" ? "binary" : "stochastic", a3, pred);
            fail();
          end
          check_clocks(a4, tag == "b" ? "binary" : "infer");
        end
        "e": begin
          $display("PASS %0d/%0d checks, %0d operations, %0d clocks", checks, checks, n_ops, cyc);
          $finish;
        end
        default: $fatal(1, "bshw testbench: unknown record %0s (record %0d)", tag, rec);
      endcase
    end
  end
endmodule
"""


def write_testbench(trace, rtl_dir, *, desc: dict | None = None, infer_samples: int = 0,
                    steps: int | None = None, via_host: bool = False) -> dict:
    """Write ``bshw_tb.sv``, ``bshw_tb.stim`` and the filelist ``bshw_tb.f`` for ``trace`` into
    ``rtl_dir``, beside the probed design described by ``desc`` (default: the probed
    ``*periphery.json`` found there). A trace that does not match the design's shape, parameters or
    format raises BshwError before anything is written. Returns the paths and the stimulus summary
    (steps, samples, inference images, checks). ``via_host``: the bench runs the host system top and
    does every host operation through the host wrapper's Wishbone registers and every operation through
    its sample/result streams (:func:`bench_text`)."""
    rtl_dir = Path(rtl_dir)
    desc = desc if desc is not None else _probed_desc(rtl_dir)
    from bshw.golden.exact.trace import open_trace

    header, records = open_trace(trace)
    records.close()
    check_trace_matches(header, desc, trace)
    check_writable(rtl_dir, folder=True, what="testbench folder")
    text, summary = stimulus(trace, desc, infer_samples=infer_samples, steps=steps)
    sources = _sources(desc, via_host)
    for src in sources:
        if not (rtl_dir / src).is_file():
            raise BshwError(f"{rtl_dir} has no {src} (bshw rtl writes it)")
    files = {"testbench": atomic_write_text(rtl_dir / TB_FILE, bench_text(desc, via_host=via_host)),
             "stimulus": atomic_write_text(rtl_dir / STIM_FILE, text),
             "filelist": atomic_write_text(rtl_dir / f"{TB_TOP}.f", "\n".join([*sources, TB_FILE]) + "\n")}
    return {**files, **summary, "sources": [str(rtl_dir / s) for s in sources]}


def _probed_desc(rtl_dir: Path) -> dict:
    for j in sorted(rtl_dir.glob("*periphery.json")):
        try:
            desc = json.loads(j.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if desc.get("probes"):
            return desc
    raise BshwError(f"{rtl_dir} holds no probed periphery (bshw rtl --probes writes one)")


def _sources(desc: dict, via_host: bool = False) -> list:
    if via_host:  # the host system top: the wrapper (bshw/host_wrapper.py) around the periphery, and the models
        from bshw.host_wrapper import names

        n = names(desc["top"][:-len("periphery")])
        return [f"{desc['top']}.v", f"{n['host']}.v", f"{n['host_system']}.v", "bshw_crossbar_model.v"]
    return [f"{desc['top']}.v", f"{desc['system']}.v", "bshw_crossbar_model.v"]


def commands(rtl_dir) -> dict:
    """How to run the written bench without Python, from ``rtl_dir``: Icarus and Verilator."""
    return {"icarus": f"cd {rtl_dir} && iverilog -g2012 -s {TB_TOP} -o {TB_TOP}.vvp -f {TB_TOP}.f && vvp -n {TB_TOP}.vvp",
            "verilator": (f"cd {rtl_dir} && verilator --binary --timing -Wno-fatal -Wno-lint -Wno-style "
                          f"--top-module {TB_TOP} -CFLAGS -std=gnu++20 -CFLAGS -fcoroutines -f {TB_TOP}.f "
                          f"&& obj_dir/V{TB_TOP}")}


def _cxx_opt(tb: dict) -> str:
    """C++ optimization of the Verilated model's evaluation code: -O1. At -O0 the paper-size model
    runs far slower (its wide-word accessors are not inlined), and -Os/-O2 compile for much longer;
    the one-time constructors compile at -O0 whatever this is."""
    return "-O1"


def simulate(tb: dict, simulator: str = "verilator", *, build_dir, log=print, cxx_opt: str | None = None) -> dict:
    """Build and run a written testbench with ``simulator`` (``icarus`` or ``verilator``), no Python in
    the loop. Returns ``{"passed", "build_s", "run_s", "line", "log"}``; ``line`` is the PASS line or
    the first mismatch."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    srcs = [str(Path(s).resolve()) for s in tb["sources"]] + [str(Path(tb["testbench"]).resolve())]
    stim_dir = Path(tb["stimulus"]).resolve().parent
    t0 = time.monotonic()
    if simulator == "icarus":
        exe = build_dir / f"{TB_TOP}.vvp"
        build = ["iverilog", "-g2012", "-s", TB_TOP, "-o", str(exe), *srcs]
        run = ["vvp", "-n", str(exe)]
    elif simulator == "verilator":
        from bshw.sim.runner import verilator_env

        env = verilator_env()
        verilator = str(Path(env["VERILATOR_ROOT"]) / "bin" / "verilator") if env.get("VERILATOR_ROOT") else "verilator"
        build = [verilator, "--binary", "--timing", "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", TB_TOP,
                 "-O3", "--x-assign", "fast", "--x-initial", "fast", "--Mdir", str(build_dir / "obj"),
                 # --timing's coroutines need C++20 (Debian's g++ 12 does not default to it); the
                 # model's C++ at -O1 and its one-time constructors at -O0: Verilator's default -Os
                 # takes many minutes on a paper-size design
                 "-CFLAGS", "-std=gnu++20", "-CFLAGS", "-fcoroutines",
                 "-MAKEFLAGS", f"OPT_FAST={cxx_opt or _cxx_opt(tb)} OPT_SLOW=-O0 OPT_GLOBAL=-O1",
                 "-o", TB_TOP, "-j", "2", *srcs]
        run = [str(build_dir / "obj" / TB_TOP)]
    else:
        raise BshwError(f"simulator {simulator!r}: icarus or verilator")
    if shutil.which(build[0]) is None and not Path(build[0]).is_file():
        raise BshwError(f"{build[0]} not found: install {simulator}")
    env = None
    if simulator == "verilator":
        import os

        env = {**os.environ, **verilator_env()}
    r = subprocess.run(build, capture_output=True, text=True, env=env, cwd=build_dir)
    build_s = time.monotonic() - t0
    if r.returncode:
        (build_dir / f"{simulator}-build.log").write_text(r.stdout + r.stderr)
        first = next((ln for ln in (r.stdout + r.stderr).splitlines() if "rror" in ln), "no error line")
        raise BshwError(f"{simulator} could not build the testbench: {first.strip()} "
                        f"(log: {build_dir / f'{simulator}-build.log'})")
    t1 = time.monotonic()
    r = subprocess.run(run, capture_output=True, text=True, cwd=stim_dir)
    run_s = time.monotonic() - t1
    out = r.stdout + r.stderr
    (build_dir / f"{simulator}.log").write_text(out)
    lines = [ln for ln in out.splitlines() if ln.startswith(("PASS", "MISMATCH"))]
    passed = r.returncode == 0 and bool(lines) and lines[-1].startswith("PASS")
    return {"passed": passed, "build_s": build_s, "run_s": run_s, "line": lines[0] if lines else out[-500:],
            "log": str(build_dir / f"{simulator}.log"), "rc": r.returncode}
