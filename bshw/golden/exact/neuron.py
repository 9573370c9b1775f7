"""The stochastic comparator neuron and its derivative sampler (docs/arithmetic.md §4, §6)."""

import torch


def fire(y: torch.Tensor, S: torch.Tensor, T: int, dtype=torch.int64) -> torch.Tensor:
    """Comparator of Eq. 3: 1 iff ``y + n > 0`` with ``n = S - T``, i.e. iff ``y + S > T``.

    ``y`` may be an integer tensor or integer-valued floats (exact below 2^24 / 2^53); ``dtype`` of
    the 0/1 result (``torch.bool`` on the training path)."""
    f = torch.gt(S, T - y)  # y + S > T, without a sum tensor
    return f if dtype == torch.bool else f.to(dtype)


def derivative(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Sampled derivative of Eq. 4 and its k-fold OR: ``OR_m (A_m AND NOT B_m)``.

    ``A``, ``B``: ``[..., k, n]`` 0/1 flip-flop samples of k independent pairs (dim -2).
    """
    if A.dtype == torch.bool:
        return (A & ~B).any(dim=-2)
    return (A & (1 - B)).amax(dim=-2)


def sample_neurons(y: torch.Tensor, S: torch.Tensor, T: int, k: int, dtype=torch.int64):
    """All draws of a hidden layer for a batch: ``S`` is ``[B, 1 + 2k, n]`` in draw order X, A1, B1, ...

    Returns ``x [B, n]``, ``A [B, k, n]``, ``Bs [B, k, n]``, ``d [B, n]`` (0/1 as ``dtype``).
    """
    f = fire(y[:, None, :], S, T, dtype=dtype)
    A, Bs = f[:, 1::2], f[:, 2::2]
    return f[:, 0], A, Bs, derivative(A, Bs)
