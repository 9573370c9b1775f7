"""Hardware-exact integer mode of the golden model (docs/arithmetic.md).

``make_learner(cfg)`` returns an :class:`ExactLearner`, the learner interface of the float model
(``train_batch``, ``predict``, ``state_dict``/``load_state_dict``, ``float_weights``, ``layers``)
computed with integer weights, per-neuron LFSR noise, ternary errors and periodic carry, bit for
bit as the RTL does it. Modules: lfsr, noise, neuron, error, carry, params, network, trace.
"""

from golden.exact.network import ExactLearner
from golden.exact.params import ExactParams


def make_learner(cfg) -> ExactLearner:
    """The exact-mode learner for ``cfg`` (raises BshwError for parameters it cannot build)."""
    return ExactLearner(cfg)


__all__ = ["ExactLearner", "ExactParams", "make_learner"]
