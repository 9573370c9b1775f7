"""The golden model of binary stochastic learning (Li et al., arXiv:2304.12866).

Float algorithms (HP / BS, every F/E/D variant, periodic-carry and memristor weights) live in
``golden.model`` and ``golden.weights``; the hardware-exact integer mode lives in ``golden.exact``.
"""

__version__ = "0.1.0"
