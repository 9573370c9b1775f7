"""Sign of the back-propagated error, its tie rules and the ternary wire code (docs/arithmetic.md §7)."""

import numpy as np
import torch

from bshw.core import TIE_RULES, check_tie  # noqa: F401  (§7's tie rules, one definition)


def tie_sign(dx: torch.Tensor, driven: torch.Tensor, rule: str) -> torch.Tensor:
    """``dz = sign(dx)`` with the tie rule for ``dx == 0`` (int64 result).

    Parameters
    ----------
    dx : int tensor ``[B, n]`` (or integer-valued floats)
    driven : bool tensor ``[B]``, True where the layer above drives some error (any dy != 0).
    rule : {"gated", "zero", "plus"}
        gated: 0 where nothing is driven, else +1 (the comparator's ``dx >= 0``); zero: 0; plus: +1.
    """
    check_tie(rule)
    s = torch.sign(dx).to(torch.int64)
    if rule == "zero":
        return s
    if rule == "plus":
        return s + (dx == 0)
    return s + ((dx == 0) & driven.to(torch.bool)[:, None])  # gated


def encode(v: torch.Tensor):
    """Ternary value -> wires ``(en, neg)``: 0 -> (0, 0) high impedance, +1 -> (1, 0), -1 -> (1, 1)."""
    return (v != 0).to(torch.int64), (v < 0).to(torch.int64)


def decode(en: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Wires -> ternary value; ``en = 0, neg = 1`` is illegal."""
    if ((en == 0) & (neg != 0)).any():
        raise ValueError("illegal ternary code en=0, neg=1")
    return en * (1 - 2 * neg)


def ternary_error(d: torch.Tensor, dz: torch.Tensor) -> torch.Tensor:
    """``dy = dz * d``: the single-transistor product of §7 (``d`` 0/1, int or bool)."""
    return dz * d if d.dtype != torch.bool else dz.masked_fill(~d, 0)


def backward_np(dx: torch.Tensor, up: torch.Tensor, d: torch.Tensor, rule: str):
    """:func:`tie_sign` then :func:`ternary_error` for CPU tensors, in numpy, with the tie counts of
    §14: returns ``dz``, ``dy`` (int8 tensors ``[B, n]``, the same values) and ``(ties, ties_driven,
    ties_differ)``: #(dx == 0), #(dx == 0 and the row is driven), #(those with d = 1).

    ``dx``: integer-valued floats; ``up``: the layer above's dy (its nonzero rows are the driven ones);
    ``d``: the sampled derivative, bool."""
    check_tie(rule)
    x = dx.numpy()
    pos, neg, tie = x > 0, x < 0, x == 0
    driven = (up.numpy() != 0).any(1)[:, None]
    td = tie & driven
    dz = pos.view(np.int8) - neg.view(np.int8)  # sign(dx)
    if rule == "plus":
        dz += tie.view(np.int8)
    elif rule == "gated":
        dz += td.view(np.int8)
    dn = d.numpy()
    dy = dz * dn.view(np.int8)  # dz where d = 1, else 0
    counts = (int(np.count_nonzero(tie)), int(np.count_nonzero(td)), int(np.count_nonzero(td & dn)))
    return torch.from_numpy(dz), torch.from_numpy(dy), counts
