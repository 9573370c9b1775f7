"""bshw: Amaranth RTL of the binary-stochastic-learning neuron periphery, its verification flow,
synthesis driver and energy/area estimator, in one namespace:

- ``bshw.core``, ``bshw.hwparams``, ``bshw.errors``, ``bshw.io``: the dependency-free core (spec
  constants, checks, the typed hardware parameters, the one-line error type, atomic writes);
- ``bshw.golden``: the golden software model (float algorithms and the hardware-exact mode; torch);
- the HDL (``bshw.periphery``, ``bshw.system``, one module per hardware concept; Amaranth only);
- ``bshw.sim``: the cocotb benches and their runners;
- ``bshw.flow`` (its steps: ``bshw.steps``), ``bshw.synth``, ``bshw.energy``, ``bshw.rtl``: the flow;
  ``bshw.cli`` on top.
"""

__version__ = "0.1.0"

# The public API, imported on first use so that ``import bshw`` (and the HDL path) stays free of torch:
# name -> (module, attribute).
_API = {
    "TrainConfig": ("bshw.golden.config", "TrainConfig"),
    "FlowConfig": ("bshw.flow", "FlowConfig"),
    "run_flow": ("bshw.flow", "flow"),  # not "flow": that is the module bshw.flow
    "flow_steps": ("bshw.flow", "default_steps"),
    "Step": ("bshw.steps", "Step"),
    "Steps": ("bshw.steps", "Steps"),
    "HwParams": ("bshw.hwparams", "HwParams"),
    "fit": ("bshw.golden.train", "fit"),
    "make_learner": ("bshw.golden.model", "make_learner"),
    "FloatLearner": ("bshw.golden.model", "FloatLearner"),
    "ExactLearner": ("bshw.golden.exact.network", "ExactLearner"),
    "make_exact_learner": ("bshw.golden.exact", "make_learner"),
    "make_trace": ("bshw.golden.exact.trace", "make_trace"),
    "generate": ("bshw.rtl", "generate"),
    "BshwPeriphery": ("bshw.periphery", "BshwPeriphery"),
    "BshwSystem": ("bshw.system", "BshwSystem"),
    "run_network": ("bshw.sim.network", "run_network"),
    "write_testbench": ("bshw.testbench", "write_testbench"),
    "synthesize": ("bshw.synth", "synthesize"),
    "network_energy": ("bshw.energy", "network_energy"),
    "BshwError": ("bshw.errors", "BshwError"),
}
__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        import importlib

        module, attr = _API[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bshw' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_API})
