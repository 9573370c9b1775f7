"""The stochastic comparator neuron and its derivative sampler (docs/arithmetic.md §4, §6)."""

import numpy as np
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


def sample_neurons_np(y: torch.Tensor, S: np.ndarray, T: int, k: int):
    """:func:`sample_neurons` (and, with ``k = 0``, :func:`fire`) for CPU tensors, in numpy on the
    noise bank's own layout: ``S`` int32 ``[n, B, 1 + 2k]`` (stream-major, draws X, A1, B1, ...).

    Returns ``x [B, n]``, ``d [B, n]`` (None for k = 0), bool tensors (transposed views), and ``f``
    bool ``[n, B, 1 + 2k]``, every comparator bit (``A = f[..., 1::2]``, ``B = f[..., 2::2]``).

    The same bits as the torch form: ``T - y`` is the same one float operation there and here, an
    integer-valued float (``y`` is, and ``T`` is a small integer), so converting it to an integer is
    exact and ``S > T - y`` compares the same numbers. ``A AND NOT B`` is ``A > B`` on bools; the k
    pairs' results are k adjacent bytes, read as one unsigned k-byte integer, nonzero iff any is set
    (k in 1, 2, 4: the §6 choices)."""
    yn = y.numpy()
    thr = (T - yn).astype(np.int32 if yn.dtype == np.float32 else np.int64).T  # [n, B]
    f = S > thr[:, :, None]
    x = torch.from_numpy(f[:, :, 0]).T
    if k == 0:
        return x, None, f
    pairs = np.ascontiguousarray(f[:, :, 1::2] > f[:, :, 2::2])  # [n, B, k] bool
    d = pairs.view(np.uint8).view(f"u{k}")[..., 0] != 0 if k in (1, 2, 4) else pairs.any(-1)
    return x, torch.from_numpy(d).T, f
