"""The hardware-exact learner: integer weights, LFSR noise, ternary errors, periodic carry
(docs/arithmetic.md §8-§10). Integer tensors throughout; the integer matrix products run as
float32/float64 BLAS products (or, for a sparse input layer, row sums) whose every partial sum is
an integer below 2^24 / 2^53, so exact. On the CPU the draws, comparators, carry and statistics run
in numpy (per-op costs far below torch's on these small arrays), each pinned to its torch form by
tests/test_golden_exact_speed.py.
"""

import math

import numpy as np
import torch

from bshw.core import initial_lfsr_states
from bshw.errors import BshwError
from bshw.golden.exact import carry as carry_mod
from bshw.golden.exact.device import NOISE_BITS, ArrayDevice
from bshw.golden.exact.error import backward_np, ternary_error, tie_sign
from bshw.golden.exact.lfsr import I16, N32, LfsrBank, short_cycle
from bshw.golden.exact.neuron import fire, sample_neurons, sample_neurons_np
from bshw.golden.exact.noise import (
    NoiseSpec,
    mod255_cycle,
    sample_inputs,
    sample_inputs_cycle,
)
from bshw.golden.exact.params import ExactParams
from bshw.golden.inputs import downsample
from bshw.golden.model import BinaryRows

HOST_BITS = 24  # host Bernoulli draws: 24-bit words against floor(z * 2^24) (§7)


def imm(a: torch.Tensor, b: torch.Tensor, bound: int) -> torch.Tensor:
    """Exact integer product ``a @ b`` given ``bound`` >= every |partial sum|."""
    dt = torch.float32 if bound < (1 << 24) and a.device.type == "cpu" else torch.float64
    return (a.to(dt) @ b.to(dt)).to(torch.int64)


def _i64(t):
    return None if t is None else t.to(torch.int64)


class ExactLearner:
    """Binary stochastic learning exactly as the hardware does it (``TrainConfig(mode="exact")``).

    Parameters
    ----------
    cfg : bshw.golden.config.TrainConfig
        ``net="fc"``, ``algo="SSS"``, integer ``weights``; hardware parameters in ``cfg.hw``
        (:class:`bshw.golden.exact.params.ExactParams`). ``cfg.device`` holds every tensor (integer
        arithmetic, so CPU and CUDA give the same bits).
    """

    # the input layer as BinaryRows (index-based products) on the CPU when at most SPARSE of its x
    # are ones (MNIST: ~0.12) and the layer has at least SPARSE_MIN synapses; below that the index
    # bookkeeping costs more than it saves (measured: 64-32-10 is faster dense, 784-100-10 sparse)
    SPARSE, SPARSE_MIN = 0.25, 16384

    def __init__(self, cfg):
        self.cfg = cfg
        self.device = torch.device(getattr(cfg, "device", "cpu") or "cpu")
        self.params = ExactParams.from_dict(dict(cfg.hw))
        P = self.P = self.params.resolve(cfg)
        self.noise = NoiseSpec(tuple(P.noise_words))
        self.k, self.s = P.deriv_k, P.scale
        self.sizes = cfg.sizes
        self.L = len(self.sizes) - 1
        self.layers = [{"name": f"fc{l + 1}", "kind": "fc", "fan_in": i, "fan_out": o, "synapses": i * o,
                        "macs": i * o, "neurons": o} for l, (i, o) in enumerate(zip(self.sizes, self.sizes[1:]))]
        gen = torch.Generator().manual_seed(cfg.seed)
        self.W, self.C = [], []
        for i, o in zip(self.sizes, self.sizes[1:]):  # §10: uniform integers in [-m, m]
            m = max(1, math.floor(min(cfg.weight_range, 1 / math.sqrt(i)) / self.s))
            m = min(m, P.wmax, -P.wmin)
            self.W.append(torch.randint(-m, m + 1, (i, o), generator=gen, dtype=torch.int64).to(self.device))
            self.C.append(torch.zeros(i, o, dtype=torch.int64, device=self.device))
        dev = self.device
        init = initial_lfsr_states(self.sizes, cfg.seed, P.output)  # §3, shared with the RTL generator
        self.in_bank = LfsrBank(I16, init["lfsr_in"], 16, device=dev)
        self.banks = [None if s is None else LfsrBank(N32, s, self.noise.bits, device=dev) for s in init["lfsr"]]
        self.host_bank = None if init["host_lfsr"] is None else LfsrBank(N32, init["host_lfsr"], HOST_BITS, device=dev)
        # §16: the device model of the array (None: the ideal device, integer levels as in §9)
        self.dev = None if P.device is None else ArrayDevice(dict(P.device))
        self.G, self.dev_banks, self.stuck = None, None, None
        if self.dev is not None:
            dv = self.dev
            self.G = [dv.g_ref + (w << dv.f) for w in self.W]  # programmed on the level grid
            self.dev_banks = [LfsrBank(N32, dv.noise_seeds(l + 1, o), NOISE_BITS, device=dev)
                              for l, o in enumerate(self.sizes[1:])]
            self.stuck = [torch.as_tensor(dv.stuck_mask(l + 1, i, o), device=dev)
                          for l, (i, o) in enumerate(zip(self.sizes, self.sizes[1:]))]
            # §16 d2d: each device's step factors (m_p, m_d), fixed at seeding; None without variation
            self.d2d = [None if (m := dv.d2d_factors(l + 1, i, o)) is None else
                        tuple(torch.as_tensor(v, device=dev) for v in m)
                        for l, (i, o) in enumerate(zip(self.sizes, self.sizes[1:]))]
        b = P.weight_bits + (0 if self.dev is None else self.dev.f)
        self._fwd_bound = [i << (b - 1) for i in self.sizes[:-1]]
        self._bwd_bound = [o << (b - 1) for o in self.sizes[1:]]
        self._wf = [None] * self.L  # float copies of W for the BLAS products, refreshed on change
        self._wf_of = [None] * self.L  # (W, W._version) each copy was made from (the ideal device)
        self._cbound = 0  # known bound on |C| (None: unknown, look)

    # -- helpers -----------------------------------------------------------------------------------
    def _pixels(self, x: torch.Tensor, dtype=torch.int64) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 3:
            raise BshwError("the exact learner takes uint8 images [B, side, side]")
        return downsample(x, self.cfg.input_side).flatten(1).to(self.device, dtype)

    def _inputs(self, p: torch.Tensor, want_r: bool = False, sparse: bool = False):
        """The input layer (§5) for pixels ``p`` uint8 ``[n, pixels]``, one draw of every pixel's
        stream per row: ``(x, r)``, ``x`` bool ``[n, pixels]``, ``r`` the raw draws ``[pixels, n]``
        (only if ``want_r``, else None).

        On the CPU the I16 draws are read off its tabulated cycle (:meth:`LfsrBank.cycle_start`, the
        same draws), and only at the lit pixels: ``(r mod 255) < 0`` never holds, so a zero pixel's
        x is 0 whatever its draw (its stream still advances). There ``sparse`` returns x as a
        :class:`BinaryRows` (the positions of its ones, for index-based products). Elsewhere the
        draws come from :meth:`LfsrBank.draw_t` and x is dense."""
        bank = self.in_bank
        if bank.device.type == "cpu" and short_cycle(bank.spec) is not None:
            seq, table = short_cycle(bank.spec)[0], mod255_cycle(bank.spec, bank.leap)
            n, npx = p.shape
            p0, ahead = bank.cycle_start(n)
            pn = p.numpy().reshape(-1)
            lit = np.flatnonzero(pn != 0)  # ascending flat positions b * pixels + i (bool: faster)
            row, col = np.divmod(lit, npx)
            on = sample_inputs_cycle(pn.take(lit), ahead.take(row) + p0.take(col), table)
            ones = lit.compress(on)
            r = None
            if want_r:
                r = torch.from_numpy(seq[ahead[:, None] + p0[None, :]] & ((1 << bank.leap) - 1)).T
            if sparse and len(ones) <= self.SPARSE * len(pn):
                return BinaryRows(ones, (n, npx)), r
            x = np.zeros(len(pn), dtype=bool)
            x[ones] = True
            return torch.from_numpy(x).view(n, npx), r
        rt = bank.draw_t(len(p))  # [pixels, n]
        return sample_inputs(p.T, rt, dtype=torch.bool).T, rt

    def _noise(self, l: int, draws_per_sample: int, n_samples: int) -> torch.Tensor:
        """Noise sums ``[n_samples, draws_per_sample, neurons]`` (a strided view; int32 values)."""
        bank = self.banks[l]
        St = bank.draw_t(n_samples * draws_per_sample, self.noise.coef)  # [neurons, draws]
        return St.view(len(bank), n_samples, draws_per_sample).permute(1, 2, 0)

    def _wfloat(self, l: int, bound: int) -> torch.Tensor:
        """``W[l]`` as the float type that holds its products exactly (cached until W changes)."""
        # float64 off the CPU: an accelerator may run float32 products in reduced precision (TF32)
        dt = torch.float32 if bound < (1 << 24) and self.device.type == "cpu" else torch.float64
        w = self._wf[l]
        if w is not None and self.dev is None:
            src, ver = self._wf_of[l]
            if src is not self.W[l] or ver != self.W[l]._version:  # W replaced or edited since
                w = None
        if w is None or w.dtype != dt:
            # §16: with a device model the array contributes g - g_ref (units of 2^-f levels)
            src = self.W[l] if self.dev is None else self.G[l] - self.dev.g_ref
            w = self._wf[l] = src.to(dt)
            self._wf_of[l] = (self.W[l], self.W[l]._version)
        return w

    def _y_pin(self, y: torch.Tensor) -> torch.Tensor:
        """The column sums at the macro pins: ``y`` itself, or ``ceil(Y / 2^f)`` with a device (§16)."""
        if self.dev is None or self.dev.f == 0:
            return y
        return self.dev.y_pin(y.to(torch.int64)).to(y.dtype)

    def _dx_pin(self, dx: torch.Tensor) -> torch.Tensor:
        """The row sums at the pins: ``dx``, or ``sign(D) ceil(|D| / 2^f)`` with a device (§16)."""
        if self.dev is None or self.dev.f == 0:
            return dx
        return self.dev.dx_pin(dx.to(torch.int64)).to(dx.dtype)

    def _level_float(self, l: int) -> torch.Tensor:
        """Float64 weights in levels: ``W``, or ``(g - g_ref) / 2^f`` with a device (HP inference)."""
        if self.dev is None:
            return self.W[l].double()
        return (self.G[l] - self.dev.g_ref).double() / (1 << self.dev.f)

    def _ifwd(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """``x @ W[l]`` for 0/1 ``x``: integer-valued floats (exact: every partial sum < 2^24 / 2^53)."""
        w = self._wfloat(l, self._fwd_bound[l])
        return self._y_pin(x.to(w.dtype) @ w)

    def _device_carry(self, l: int, step: torch.Tensor) -> None:
        """§16: every pulse of layer ``l``'s carry (``step`` +1 potentiation, -1 depression) moves
        its device by Eq. 7 / 8 plus the Eq. 9 draw of its column's stream; draws in row order."""
        dv, G, bank = self.dev, self.G[l], self.dev_banks[l]
        pulsed = step != 0
        counts = pulsed.sum(0)  # draws per column
        m = int(counts.max()) if counts.numel() else 0
        if m == 0:
            return
        words = torch.zeros(m, len(bank), dtype=torch.int64, device=G.device)
        for t in range(m):  # draw t of every column that has more than t pulses
            lanes = (counts > t).nonzero().flatten()
            sub = LfsrBank(N32, bank.states[lanes], NOISE_BITS)
            words[t, lanes] = sub.draw_t(1)[:, 0].to(torch.int64)
            bank.states[lanes] = sub.states
        rank = (pulsed.cumsum(0) - 1).clamp_(min=0)  # the pulse's draw index in its column
        word = words.gather(0, rank)
        pot = step > 0
        mean = torch.where(pot, dv.step_pot(G), dv.step_dep(G))
        if self.d2d[l] is not None:  # §16 d2d: the device's own steps, floor((step m + 2^15) / 2^16)
            mean = dv.scaled(mean, torch.where(pot, *self.d2d[l]))
        new = (G + torch.where(pot, mean, -mean) + dv.noise(word, mean)).clamp_(0, dv.R)
        self.G[l] = torch.where(pulsed & ~self.stuck[l], new, G)
        self.W[l] = dv.level(self.G[l])

    # -- training ----------------------------------------------------------------------------------
    def train_batch(self, x: torch.Tensor, t: torch.Tensor, record: dict | None = None) -> dict:
        """One batch: B samples forward/backward, counters accumulated, one carry cycle (§8).

        ``record``, if a dict, receives every intermediate integer tensor (for golden traces).
        Returns ``{"loss": cross-entropy of softmax(s * y_out) (host-side report only), "out_err":
        mean |dy_out|, "activity": [per layer {...}]}``.

        The arithmetic is integer (0/1 and ternary tensors, integer-valued float products that are
        exact); the noise comes in one block per layer (:meth:`LfsrBank.draw_t`).
        """
        P, k, T, dev = self.P, self.k, self.noise.T, self.device
        p = self._pixels(x, torch.uint8)
        t = torch.as_tensor(t, dtype=torch.int64).to(dev)
        B = len(p)
        if len(t) != B:
            raise BshwError(f"{B} images but {len(t)} labels")
        cpu = dev.type == "cpu"
        num = int if cpu else (lambda v: v)  # counts: ints on the CPU, tensors (one read) elsewhere
        big = self.sizes[0] * self.sizes[1] >= self.SPARSE_MIN
        x0, rt = self._inputs(p, want_r=record is not None, sparse=big)
        xs = [x0]  # bool [B, pixels]; on the CPU the input layer's as BinaryRows (its ones)
        xf = []  # the same as floats, for the products
        ys, Ss, As, Bs, ds = [], [], [], [], []
        for l in range(self.L):
            w = self._wfloat(l, self._fwd_bound[l])
            # integer-valued float [B, n], exact: every partial sum of whole numbers is below
            # fan_in * 2^(b-1) (_fwd_bound), which picks float32 only below 2^24, so any order of
            # the sums (BLAS, or embedding_bag's row sums over the ones of a BinaryRows) is exact
            xf.append(xs[-1] if isinstance(xs[-1], BinaryRows) else xs[-1].to(w.dtype))
            y = self._y_pin(xf[-1].mm(w))
            ys.append(y)
            if l < self.L - 1 or P.output == "onchip":
                kl = k if l < self.L - 1 else 0  # the output layer: one draw, no derivative
                if cpu:  # numpy on the bank's stream-major layout (the same bits, fewer op costs)
                    Sn = self.banks[l].draw_t(B * (1 + 2 * kl), self.noise.coef).numpy()
                    Sn = Sn.reshape(-1, B, 1 + 2 * kl)
                    xl, d, f = sample_neurons_np(y, Sn, T, kl)
                    S = torch.from_numpy(Sn).permute(1, 2, 0)  # [B, 1 + 2k, n] as _noise gives
                    if kl:
                        A, Bb = (torch.from_numpy(f[:, :, i::2]).permute(1, 2, 0) for i in (1, 2))
                elif kl:
                    S = self._noise(l, 1 + 2 * k, B)
                    xl, A, Bb, d = sample_neurons(y, S, T, k, dtype=torch.bool)
                else:
                    S = self._noise(l, 1, B)
                    xl = fire(y, S[:, 0], T, dtype=torch.bool)
                xs.append(xl), Ss.append(S)
                if kl:
                    As.append(A), Bs.append(Bb), ds.append(d)
            else:  # host: softmax of the integer potentials, Bernoulli per class (Eq. 6)
                # the host's float softmax, on the CPU whatever the device (one libm: the same bits)
                z = torch.softmax(y.double().cpu() * self.s, dim=1)
                u = self.host_bank.draw_t(B).T
                xs.append(u < torch.floor(z * (1 << HOST_BITS)).to(dev, torch.int64))
                Ss.append(None)
        dys = [None] * self.L
        dys[-1] = xs[-1].to(torch.int64) - torch.nn.functional.one_hot(t, 10)
        dxs, dzs, ties = [None] * self.L, [None] * self.L, [None] * self.L
        for l in range(self.L - 2, -1, -1):  # backward through W^{l+2}
            up = dys[l + 1]
            w = self._wfloat(l + 1, self._bwd_bound[l])
            dx = self._dx_pin(up.to(w.dtype) @ w.T)  # integer-valued, exact
            if cpu:  # numpy: the same values (int8), the tie counts taken on the way
                dz, dy, ties[l] = backward_np(dx, up, ds[l], P.tie)
            else:
                dz = tie_sign(dx, (up != 0).any(1), P.tie)
                dy = ternary_error(ds[l], dz)
            dxs[l], dzs[l], dys[l] = dx, dz, dy
        stats, pre, steps = [], [], []
        cmax = (1 << (P.counter_bits - 1)) - 1
        for l in range(self.L):
            bound = self._cbound
            if bound is None:
                bound = max(-int(self.C[l].min()), int(self.C[l].max())) if self.C[l].numel() else 0
            # accumulate + carry; the carrying weights as flat indices and +-1 steps (few of them)
            self.C[l], W, hit, delta = carry_mod.accumulate_carry(
                self.C[l], self.W[l], xf[l], dys[l], P.counter_bits, P.th, P.wmin, P.wmax, bound=bound,
                pre=pre if record is not None else None)
            step = None
            if record is not None or self.dev is not None:  # the full step tensor, where it is used
                step = torch.zeros(self.W[l].numel(), dtype=torch.int64, device=dev)
                step = step.index_put_((hit,), delta).view(self.W[l].shape)
                steps.append(step)
            if self.dev is None:
                wf = self._wf[l]
                if wf is not None:  # the float copy follows the few changed weights (exact: |w| < 2^24)
                    wf.view(-1)[hit] = W.view(-1)[hit].to(wf.dtype)
                    self._wf_of[l] = (W, W._version)
                self.W[l] = W
            else:  # §16: the pulses go to the devices; W is the level read-back
                self._device_carry(l, step)
                self._wf[l] = None
            # counts now, fractions after one read of all of them (one sync per batch on a device)
            # write pulses driven by the carry (§9, §16), counted whether or not the device moves:
            # step is -1/0/+1, so with m = #(step != 0) and s = sum(step) there are (m + s) / 2
            # potentiations and (m - s) / 2 depressions (two reductions instead of two compares)
            # (on the CPU plain ints: reading a count costs nothing there, a tensor op does)
            m, s = (hit.numel(), int(delta.sum())) if cpu else (torch.tensor(hit.numel(), device=dev), delta.sum())
            ones = len(xs[l].cols) if isinstance(xs[l], BinaryRows) else num(xs[l].count_nonzero())
            st = [(ones, math.prod(xs[l].shape)), (num(dys[l].count_nonzero()), dys[l].numel()),
                  (m, max(1, self.W[l].numel())), ((m + s) // 2, 1), ((m - s) // 2, 1)]  # m >= |s|
            if ties[l] is not None:  # counted by backward_np
                n = dxs[l].numel()
                st += [(c, n) for c in ties[l]]
            elif dxs[l] is not None:  # tie statistics (§14): where `gated` and `zero` differ
                tie = dxs[l] == 0
                driven = (dys[l + 1] != 0).any(1, keepdim=True)
                n = tie.numel()
                td = tie & driven
                st += [(tie.count_nonzero(), n), (td.count_nonzero(), n), ((td & ds[l]).count_nonzero(), n)]
            stats.append(st)
        # counters are all below th after a carry cycle (|c| >= th carried and cleared)
        self._cbound = P.th - 1 if P.th - 1 <= cmax else None
        logz = torch.log_softmax(ys[-1].double() * self.s, dim=1)
        loss = -logz.gather(1, t[:, None]).mean()
        counts = [c for st in stats for c, _ in st] + [num(dys[-1].count_nonzero())]  # |dy_out| is 0/1
        if cpu:
            flat = [float(c) for c in counts] + [loss.item()]
        else:
            flat = torch.cat([torch.stack(counts).double(), loss[None]]).tolist()  # one read
        acts, i = [], 0
        for st in stats:
            v = [c / n for c, (_, n) in zip(flat[i:i + len(st)], st)]
            i += len(st)
            a = {"x_active": v[0], "dy_nonzero": v[1], "carries_per_weight": v[2],
                 "pulses_pot": int(v[3]), "pulses_dep": int(v[4])}
            if len(v) > 5:
                a.update(ties=v[5], ties_driven=v[6], ties_differ=v[7])
            acts.append(a)
        out_err = flat[-2] / dys[-1].numel()
        if record is not None:
            xs = [v.dense() if isinstance(v, BinaryRows) else v for v in xs]
            record.update(pixels=p.to(torch.int64), r=_i64(rt.T), labels=t, xs=[_i64(v) for v in xs], ys=[_i64(v) for v in ys],
                          S=[_i64(v) for v in Ss], A=[_i64(v) for v in As], B=[_i64(v) for v in Bs],
                          d=[_i64(v) for v in ds], dx=[_i64(v) for v in dxs], dz=[_i64(v) for v in dzs],
                          dy=[_i64(v) for v in dys],
                          counter_pre=pre, carry=steps, counters=[c.clone() for c in self.C],
                          weights=[w.clone() for w in self.W])
            if self.dev is not None:
                record["conductance"] = [g.clone() for g in self.G]
        return {"loss": flat[-1], "out_err": out_err, "activity": acts}

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: torch.Tensor, method: str, votes: int = 1, curve: dict | None = None) -> torch.Tensor:
        """Classes ``int64 [B]`` by ``hp``, ``binary`` or ``stochastic`` inference (§8).

        ``stochastic``: ``votes`` noisy passes per sample (votes inner, advancing the LFSRs), majority
        vote, ties to the lowest class; ``curve`` ({R: None}) gets the predictions after R votes.
        """
        p = self._pixels(x)
        if method == "hp":
            z = p.double() / 255
            for l in range(self.L):
                y = z @ (self._level_float(l) * self.s)
                z = torch.sigmoid(self.cfg.a * y)
            return y.argmax(1).cpu()
        if method == "binary":
            xl = p >= 128
            for l in range(self.L):
                y = self._ifwd(l, xl)
                xl = y > 0
            return y.argmax(1).cpu()
        if method != "stochastic":
            raise BshwError(f"inference method {method!r}: choose hp, binary or stochastic")
        if not isinstance(votes, int) or votes < 1:
            raise BshwError(f"votes = {votes!r}: a positive whole number")
        B = len(p)
        pr = p.repeat_interleave(votes, 0)  # sample-major, votes inner
        xl = self._inputs(pr.to(torch.uint8))[0]
        for l in range(self.L):
            y = self._ifwd(l, xl)
            if l < self.L - 1:
                xl = fire(y, self._noise(l, 1, B * votes)[:, 0], self.noise.T, dtype=torch.bool)
        cls = y.argmax(1).view(B, votes)
        counts = torch.zeros(B, 10, dtype=torch.int64, device=self.device)
        ones = torch.ones(B, 1, dtype=torch.int64, device=self.device)
        for rr in range(votes):
            counts.scatter_add_(1, cls[:, rr:rr + 1], ones)
            if curve is not None and rr + 1 in curve:
                curve[rr + 1] = counts.argmax(1).cpu()
        return counts.argmax(1).cpu()

    @torch.no_grad()
    def hidden_activations(self, x: torch.Tensor) -> list:
        """HP activations ``sigma(a s y)`` of every hidden layer (activation CDF plots)."""
        z, out = self._pixels(x).double() / 255, []
        for l in range(self.L - 1):
            z = torch.sigmoid(self.cfg.a * (z @ (self._level_float(l) * self.s)))
            out.append(z.flatten().float().cpu())
        return out

    def float_weights(self) -> list:
        """Effective float weights ``s * W`` per layer, ``[fan_out, fan_in]`` like the float model."""
        return [(self._level_float(l).T * self.s).float().cpu() for l in range(self.L)]

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": "bshw-exact", "version": 1, "params": self.P.as_dict(),
                "weights": [w.clone() for w in self.W], "counters": [c.clone() for c in self.C],
                "lfsr_in": self.in_bank.states.clone(),
                "lfsr": [None if b is None else b.states.clone() for b in self.banks],
                "host_lfsr": None if self.host_bank is None else self.host_bank.states.clone(),
                **({} if self.dev is None else {"conductance": [g.clone() for g in self.G],
                                                "device_lfsr": [b.states.clone() for b in self.dev_banks]})}

    def load_state_dict(self, d: dict) -> None:
        from bshw.golden.exact import validate_state

        validate_state(self, d)  # one line naming the field, never a broadcast of a wrong shape
        if not isinstance(d, dict) or d.get("kind") != "bshw-exact":
            raise BshwError("not an exact-mode learner state")
        if d.get("params") != self.P.as_dict():
            raise BshwError("the saved exact-mode state was made with other hardware parameters")
        for name, mine in (("weights", self.W), ("counters", self.C)):
            if [tuple(v.shape) for v in d[name]] != [tuple(v.shape) for v in mine]:
                raise BshwError(f"saved {name} have other layer sizes")
        def own(v):  # a copy on this learner's device
            return torch.as_tensor(v, dtype=torch.int64).to(self.device, copy=True)

        self.W = [own(w) for w in d["weights"]]
        self.C = [own(c) for c in d["counters"]]
        self._wf, self._cbound = [None] * self.L, None
        self.in_bank.states = own(d["lfsr_in"])
        for b, s in zip(self.banks, d["lfsr"]):
            if b is not None:
                b.states = own(s)
        if self.host_bank is not None:
            self.host_bank.states = own(d["host_lfsr"])
        if self.dev is not None:  # §16: the conductances and the write-noise streams
            g, s = d.get("conductance"), d.get("device_lfsr")
            if (not isinstance(g, (list, tuple)) or [tuple(v.shape) for v in g] != [tuple(v.shape) for v in self.G]
                    or not isinstance(s, (list, tuple)) or len(s) != self.L):
                raise BshwError("the saved exact-mode state lacks the device's conductance or noise streams")
            self.G = [own(v) for v in g]
            for b, v in zip(self.dev_banks, s):
                b.states = own(v)
