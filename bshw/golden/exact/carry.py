"""Periodic carry of the ternary gradient into integer weights (docs/arithmetic.md §9)."""

import math

import numpy as np
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


def accumulate_carry(c, w, x, dy, cbits: int, th: int, wmin: int, wmax: int, bound: int | None = None,
                     pre: list | None = None):
    """:func:`accumulate` then :func:`carry`, the same values in fewer passes over the counters.

    Returns ``(c, w, hit, delta)``: the new counters and weights, ``hit`` the flat indices (int64,
    ascending) of the weights that carry and ``delta`` their steps (+1/-1), i.e. the nonzero entries
    of :func:`carry`'s ``step``. ``pre``, if a list, receives the counters between the two (int64).

    When the counters cannot saturate (the test of :func:`accumulate`) the sum ``c + x^T dy`` is kept
    as float32 on the CPU when every value, an integer of magnitude at most ``bound + B``, is below
    2^24 (float64 for wider counters, and off the CPU: no TF32), so exact; only the few carrying entries are
    then touched one by one (``|c| >= th`` is ``dec | inc``, ``th >= 1``), instead of whole-tensor
    masks, a step tensor and a select. Otherwise the two reference functions run as they are."""
    cmax, cmin = (1 << (cbits - 1)) - 1, -(1 << (cbits - 1))
    if bound is None:
        lo, hi = (int(c.min()), int(c.max())) if c.numel() else (0, 0)
    else:
        lo, hi = -bound, bound
    sparse = hasattr(x, "t_mm")  # a BinaryRows (bshw.golden.model): x as the positions of its ones
    B = x.shape[0] if sparse else len(x)
    if not (hi + B <= cmax and lo - B >= cmin):  # may saturate: the reference forms
        x = x.dense() if sparse else x
        c = accumulate(c, x, dy, cbits, bound=bound)
        if pre is not None:
            pre.append(c.clone())
        c, w, step = carry(c, w, th, wmin, wmax)
        hit = step.view(-1).nonzero().view(-1)
        return c, w, hit, step.view(-1)[hit]
    # float32 only while every value is below 2^24: a wider counter (e.g. 32 bits with a large th)
    # takes float64, exact below 2^53
    small = max(hi, -lo) + B < (1 << 24)
    dt = torch.float32 if c.device.type == "cpu" and small else torch.float64
    # c + x^T dy, exact (see above): for a BinaryRows, x^T dy as per-column sums of dy's rows
    s = (x.t_mm(dy.to(dt)) if sparse else x.T.to(dt) @ dy.to(dt)).add_(c)
    return _carry_sum(s, c, w, th, wmin, wmax, pre, numpy=s.device.type == "cpu")


def _carry_sum(s, c, w, th, wmin, wmax, pre, numpy: bool):
    """The carry of :func:`accumulate_carry` from the exact sum ``s`` (float, ``c + x^T dy``):
    ``numpy`` on the CPU (its mask, nonzero and scatter ops cost far less per call), else torch."""
    if numpy:
        flat = s.numpy().reshape(-1)
        hit = np.flatnonzero(np.abs(flat) >= th)  # c >= th or c <= -th
        delta = np.where(flat[hit] < 0, 1, -1).astype(np.int64)  # c <= -th: w + 1; c >= th: w - 1
        cn = flat.astype(np.int64)
        if pre is not None:
            pre.append(torch.from_numpy(cn.copy()).view(c.shape))
        cn[hit] = 0
        wn = w.numpy().reshape(-1).copy()  # a new tensor, as carry() returns
        wn[hit] = np.clip(wn[hit] + delta, wmin, wmax)
        return (torch.from_numpy(cn).view(c.shape), torch.from_numpy(wn).view(w.shape),
                torch.from_numpy(hit), torch.from_numpy(delta))
    flat = s.view(-1)
    hit = (flat.abs() >= th).nonzero().view(-1)
    delta = (flat[hit] < 0).to(torch.int64).mul_(2).sub_(1)
    c = s.to(c.dtype)
    if pre is not None:
        pre.append(c.clone())
    c.view(-1)[hit] = 0
    wv = (w.view(-1)[hit] + delta).clamp_(wmin, wmax)
    w = w.reshape(-1).index_put((hit,), wv).view(w.shape)  # a new tensor, as carry() returns
    return c, w, hit, delta
