"""Periodic carry of the ternary gradient into integer weights (docs/arithmetic.md §9)."""

import math

import torch

from bshw.golden.weights import carry_threshold


def threshold(scale: float, batch: int, lr: float) -> int:
    """``th = max(1, round(s * B / lr))``: one carry is worth one weight LSB of float update.
    The float model's rule itself, so the two modes cannot drift apart."""
    return carry_threshold(scale, batch, lr)


def default_counter_bits(th: int, batch: int) -> int:
    """Least signed width that never saturates: ``|c| <= th - 1 + B``."""
    return math.ceil(math.log2(th + batch)) + 1


def accumulate(c: torch.Tensor, x: torch.Tensor, dy: torch.Tensor, cbits: int, bound: int | None = None) -> torch.Tensor:
    """Add the batch's ternary gradients ``g_b = x_b (outer) dy_b`` sample by sample, saturating at
    the counter's range. ``c [n_in, n_out]``, ``x [B, n_in]`` 0/1 (int or bool), ``dy [B, n_out]``
    ternary. ``bound``: a known bound on ``|c|`` (skips looking at ``c``)."""
    cmax, cmin = (1 << (cbits - 1)) - 1, -(1 << (cbits - 1))
    if bound is None:
        lo, hi = (int(c.min()), int(c.max())) if c.numel() else (0, 0)
    else:
        lo, hi = -bound, bound
    if hi + len(x) <= cmax and lo - len(x) >= cmin:  # cannot saturate: one exact matmul
        dt = torch.float32 if c.device.type == "cpu" else torch.float64  # no TF32 on accelerators
        g = x.T.to(dt) @ dy.to(dt)  # exact: |sum| <= B < 2^24
        return c + g.to(c.dtype)
    x, dy = x.to(c.dtype), dy.to(c.dtype)
    for b in range(len(x)):  # may saturate: the hardware's per-sample order
        c = (c + torch.outer(x[b], dy[b])).clamp_(cmin, cmax)
    return c


def carry(c: torch.Tensor, w: torch.Tensor, th: int, wmin: int, wmax: int):
    """Once per batch: ``c >= th`` -> ``w - 1``, ``c <= -th`` -> ``w + 1`` (saturating), counter cleared.

    Returns ``(c, w, step)`` with ``step`` the intended weight change in {-1, 0, +1}.
    """
    dec, inc = c >= th, c <= -th
    # the same values as inc - dec and masked_fill(step != 0) in fewer passes over the wide counter
    # tensor: the difference in int8 (then one widening), the clear mask from the two bool masks
    step = inc.to(torch.int8).sub_(dec.to(torch.int8)).to(c.dtype)
    w = (w + step).clamp_(wmin, wmax)
    c = torch.where(dec | inc, 0, c)
    return c, w, step
