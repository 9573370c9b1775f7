"""bshw: Amaranth RTL of the binary-stochastic-learning neuron periphery, its verification flow,
synthesis driver and energy/area estimator, in one namespace:

- ``bshw.core``, ``bshw.errors``, ``bshw.io``: the dependency-free core (spec constants, checks, the
  one-line error type, atomic writes);
- ``bshw.golden``: the golden software model (float algorithms and the hardware-exact mode; torch);
- the HDL (``bshw.periphery``, ``bshw.system``, one module per hardware concept; Amaranth only);
- ``bshw.sim``: the cocotb benches and their runners;
- ``bshw.flow``, ``bshw.synth``, ``bshw.energy``, ``bshw.rtl``: the flow steps; ``bshw.cli`` on top.
"""

__version__ = "0.1.0"
