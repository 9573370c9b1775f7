"""The golden model of binary stochastic learning (Li et al., arXiv:2304.12866).

Float algorithms (HP / BS, every F/E/D variant, periodic-carry and memristor weights) live in
``bshw.golden.model`` and ``bshw.golden.weights``; the hardware-exact integer mode lives in ``bshw.golden.exact``.
"""

__version__ = "0.1.0"
