"""Synaptic weights and how a batch's gradient changes them (paper Fig. 5a, Eqs. 7-9).

Three kinds, one interface (``w`` is the float weight the forward pass uses, ``step`` applies one
batch's *summed* gradient and returns how many weights changed, as a 0-d tensor read later with the
batch's other statistics). Every state tensor keeps the memory layout of the initial weights (the
float model stores FC weights as [fan_in, fan_out]), so the update runs over contiguous memory:

- :class:`FloatWeights`   FP32, w <- w - lr * sum / batch (the plain batch-mean update).
- :class:`PeriodicCarry`  integer weights q in [-2^(b-1), 2^(b-1) - 1], w = s * q, a gradient
  accumulator per weight, one unit step per carry (docs/algorithm.md, "Periodic carry").
- :class:`Memristor`      a differential pair G - G_ref = G0 * w driven blind by the same carry
  events: a depression pulse when the accumulator crosses th+, a potentiation pulse at th-, the
  conductance change drawn from Eqs. 7-9, never read back or verified.
"""

import math
from dataclasses import dataclass, fields

import torch

from bshw.errors import BshwError


def carry_threshold(step: float, batch: int, lr: float) -> int:
    """Accumulator threshold th = th+ = -th- that makes one carry worth one float step.

    The float model moves w by ``lr * sum / batch`` per batch; a carry moves it by ``step``
    (one integer LSB, or a memristor's nominal pulse). Equal drift needs
    ``sum = step * batch / lr`` per carry, rounded to the nearest whole count, at least 1.
    """
    return max(1, round(step * batch / lr))


def carries(acc, grad_sum, th):
    """Periodic carry (Fig. 5a): add one batch's gradient sum to the accumulators ``acc`` (in
    place) and return the masks (dec, inc) of the weights that carry; those accumulators clear.

    A positive gradient lowers the weight: acc >= th+ = th -> one step down, acc <= th- = -th ->
    one step up. The accumulator is cleared on every carry, even where the weight then saturates.
    """
    acc.add_(grad_sum)
    dec, inc = acc >= th, acc <= -th
    acc.masked_fill_(dec | inc, 0.0)
    return dec, inc


class FloatWeights:
    """FP32 weights with the batch-mean update (no periodic carry)."""

    def __init__(self, w0: torch.Tensor, lr: float, batch: int):
        self.w, self.lr, self.batch = w0.clone(), lr, batch

    def step(self, grad_sum: torch.Tensor) -> None:
        """Apply one batch; returns None (no discrete update events to count)."""
        self.w.sub_(grad_sum, alpha=self.lr / self.batch)

    def state_dict(self):
        return {"w": self.w}

    def load_state_dict(self, d):
        self.w.copy_(d["w"])


class PeriodicCarry:
    """Integer weights updated by periodic carry (paper Fig. 5a).

    Parameters
    ----------
    w0 : Tensor
        Initial float weights; quantized to ``q = round_stochastic(w0 / scale)`` with ``gen``.
    bits : int
        Signed width b >= 2 (ternary is b = 2 used as {-1, 0, +1}: the -2 level is excluded).
    w_range : float
        Float weights span [-w_range, w_range]: ``scale = w_range / 2**(b-1)`` (ternary: w_range).
    lr, batch : float, int
        Give the threshold through :func:`carry_threshold`.

    Attributes
    ----------
    q : Tensor (int32)   the integer weights.
    acc : Tensor (float32, whole numbers in BS learning)  the gradient accumulators.
    th : int             th+ = th; th- = -th.
    """

    def __init__(self, w0, bits: int, w_range: float, lr: float, batch: int, gen=None):
        if bits < 2:
            raise BshwError(f"integer weights need at least 2 bits, got {bits}")
        self.bits = bits
        self.qmax = 1 if bits == 2 else 2 ** (bits - 1) - 1
        self.qmin = -self.qmax if bits == 2 else -(2 ** (bits - 1))
        self.scale = w_range if bits == 2 else w_range / 2 ** (bits - 1)
        self.th = carry_threshold(self.scale, batch, lr)
        u = w0 / self.scale
        # Stochastic rounding keeps the initial weights' spread even where it is below one LSB.
        frac = u - u.floor()
        up = torch.rand(u.shape, generator=gen, device=u.device) < frac
        self.q = torch.empty_like(w0, dtype=torch.int32).copy_((u.floor() + up).clamp_(self.qmin, self.qmax))
        self.acc = torch.zeros_like(w0)
        self.w = self.q.to(w0.dtype) * self.scale

    def step(self, grad_sum) -> torch.Tensor:
        dec, inc = carries(self.acc, grad_sum, self.th)
        self.q.sub_(dec.to(torch.int32)).add_(inc.to(torch.int32)).clamp_(self.qmin, self.qmax)
        self.w.copy_(self.q.to(self.w.dtype) * self.scale)
        return dec.count_nonzero() + inc.count_nonzero()

    def state_dict(self):
        return {"q": self.q, "acc": self.acc}

    def load_state_dict(self, d):
        self.q.copy_(d["q"])
        self.acc.copy_(d["acc"])
        self.w.copy_(self.q.to(self.w.dtype) * self.scale)


@dataclass
class MemristorParams:
    """Device model of the paper's Eqs. 7-9 (values of Fig. 5b, SiGe epitaxial memory).

    Conductances in microsiemens. ``w_min``/``w_max`` map to G_min/G_max through
    G - G_ref = G0 * w, G_ref = (G_max + G_min) / 2, G0 = (G_max - G_min) / (w_max - w_min).
    """

    g_max: float = 25.0
    g_min: float = 0.1
    n_p: int = 100
    n_d: int = 100
    alpha_p: float = 1.0
    alpha_d: float = 2.0
    gamma: float = 2.0

    def __post_init__(self):
        if not self.g_max > self.g_min >= 0:
            raise BshwError(f"memristor needs g_max > g_min >= 0, got g_max={self.g_max}, g_min={self.g_min}")
        for name in ("n_p", "n_d", "alpha_p", "alpha_d"):
            if not getattr(self, name) > 0:
                raise BshwError(f"memristor {name} = {getattr(self, name)!r} must be positive")
        if self.gamma < 0:
            raise BshwError(f"memristor gamma = {self.gamma!r} must be >= 0")

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in fields(cls)}
        for k in d:
            if k not in known:
                raise BshwError(f"unknown memristor parameter {k!r} (known: {', '.join(sorted(known))})")
        return cls(**d)

    def mean_dg_pot(self, g):
        """Eq. 7: median conductance change of one potentiation pulse at conductance g."""
        span = self.g_max - self.g_min
        return (span / (1 - math.exp(-self.alpha_p)) - (g - self.g_min)) * (1 - math.exp(-self.alpha_p / self.n_p))

    def mean_dg_dep(self, g):
        """Eq. 8: median conductance change (negative) of one depression pulse at g."""
        span = self.g_max - self.g_min
        return -(span / (1 - math.exp(-self.alpha_d)) - (self.g_max - g)) * (1 - math.exp(-self.alpha_d / self.n_d))

    def pulse(self, g, potentiate: bool, gen=None):
        """Eq. 9: dG ~ N(mean, (gamma * mean)^2), the result clipped to [G_min, G_max]."""
        mean = self.mean_dg_pot(g) if potentiate else self.mean_dg_dep(g)
        noise = torch.randn(mean.shape, generator=gen, device=mean.device, dtype=mean.dtype)
        return (g + mean + self.gamma * mean.abs() * noise).clamp(self.g_min, self.g_max)


class Memristor:
    """Analog memristor weights driven blind by periodic carry (paper Fig. 5a-d).

    The threshold uses the nominal float step of one pulse at G_ref (the mean of the potentiation
    and depression steps there), so a carry is worth about as much as in :class:`PeriodicCarry`.
    """

    def __init__(self, w0, params: MemristorParams, w_range: float, lr: float, batch: int, gen=None):
        self.p, self.gen = params, gen
        self.g_ref = (params.g_max + params.g_min) / 2
        self.g0 = (params.g_max - params.g_min) / (2 * w_range)
        self.g = (self.g_ref + self.g0 * w0).clamp(params.g_min, params.g_max)
        nominal = (params.mean_dg_pot(self.g_ref) - params.mean_dg_dep(self.g_ref)) / 2 / self.g0
        self.th = carry_threshold(nominal, batch, lr)
        self.acc = torch.zeros_like(w0)
        self.w = (self.g - self.g_ref) / self.g0

    def step(self, grad_sum) -> torch.Tensor:
        dec, inc = carries(self.acc, grad_sum, self.th)
        # Only pulsed devices draw write noise (boolean indexing keeps the draw count small).
        self.g[dec] = self.p.pulse(self.g[dec], potentiate=False, gen=self.gen)
        self.g[inc] = self.p.pulse(self.g[inc], potentiate=True, gen=self.gen)
        self.w.copy_((self.g - self.g_ref) / self.g0)
        return dec.count_nonzero() + inc.count_nonzero()

    def state_dict(self):
        return {"g": self.g, "acc": self.acc}

    def load_state_dict(self, d):
        self.g.copy_(d["g"])
        self.acc.copy_(d["acc"])
        self.w.copy_((self.g - self.g_ref) / self.g0)


def make_weights(w0, cfg, gen=None):
    """The weight kind a :class:`bshw.golden.config.TrainConfig` asks for, initialised from ``w0``."""
    lr, batch = cfg.learning_rate, cfg.batch
    if cfg.weights == "fp32":
        return FloatWeights(w0, lr, batch)
    if cfg.weights == "memristor":
        return Memristor(w0, MemristorParams.from_dict(cfg.memristor), cfg.weight_range, lr, batch, gen)
    return PeriodicCarry(w0, cfg.bits, cfg.weight_range, lr, batch, gen)
