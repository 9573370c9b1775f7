"""bshw: Amaranth RTL of the binary-stochastic-learning neuron periphery, its verification flow,
synthesis driver and energy/area estimator. The golden software model is the sibling package
``golden``."""

__version__ = "0.1.0"
