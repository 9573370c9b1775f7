"""Sign of the back-propagated error, its tie rules and the ternary wire code (docs/arithmetic.md §7)."""

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
