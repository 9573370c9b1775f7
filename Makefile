# bshw: one file ties the flow together. Everything installs into a project-local .venv.
# `make demo` runs the main job on the built-in default; `make test` runs the tests.

PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup tools demo test bench bench-accuracy bench-exact clean

# torch==2.13.0 (the CPU wheel on this kind of machine's disk) must go in before anything that
# depends on torch, or pip pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,synth]'
	touch $(STAMP)

# System tools: Icarus Verilog from Debian (root on these machines).
tools:
	@command -v iverilog >/dev/null 2>&1 || { \
	  echo "installing iverilog (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null; }

setup: $(STAMP) tools

demo: setup
	$(BIN)/bshw train --config configs/demo.toml

test: setup
	$(BIN)/pytest -q

bench: bench-accuracy bench-exact

# Exact integer mode vs float SSS training speed, as a ratio (issue 6 goal: >= 0.25).
bench-exact: setup
	$(BIN)/python bench/exact_speed.py

# 10-epoch accuracy table (Fig. 3f / Fig. 5d) and the BS vs HP-autograd throughput ratio.
EPOCHS ?= 10
bench-accuracy: setup
	$(BIN)/python bench/accuracy.py --epochs $(EPOCHS)

clean:
	rm -rf runs sim_build build .pytest_cache
