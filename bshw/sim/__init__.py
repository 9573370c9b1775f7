"""cocotb regressions of the bshw RTL under Icarus Verilog (or Verilator).

``bshw.sim.runner.run_bench`` builds and runs one bench through ``cocotb_tools.runner``;
``bshw.sim.runner.run_component`` emits an Amaranth component of a ``bshw/sim/bench_*.py`` module and runs
that module against it. Every bench compares the RTL with the golden model (``bshw/golden/exact``),
the functions themselves, cycle by cycle or transaction by transaction (docs/arithmetic.md).
"""
