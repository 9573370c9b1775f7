"""cocotb regressions of the bshw RTL under Icarus Verilog (or Verilator).

``sim.runner.run_bench`` builds and runs one bench through ``cocotb_tools.runner``;
``sim.runner.run_component`` emits an Amaranth component of a ``sim/bench_*.py`` module and runs
that module against it. Every bench compares the RTL with the golden model (``golden/exact``),
the functions themselves, cycle by cycle or transaction by transaction (docs/arithmetic.md).
"""
