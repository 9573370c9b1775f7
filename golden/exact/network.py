"""The hardware-exact learner: integer weights, LFSR noise, ternary errors, periodic carry
(docs/arithmetic.md §8-§10). Integer tensors throughout; the integer matrix products run as
float32/float64 BLAS products whose every partial sum is an integer below 2^24 / 2^53, so exact.
"""

import math

import torch

from golden.errors import BshwError
from golden.exact import carry as carry_mod
from golden.exact.error import tie_sign, ternary_error
from golden.exact.lfsr import I16, N32, LfsrBank, seed_state, stream_id
from golden.exact.neuron import fire, sample_neurons
from golden.exact.noise import NoiseSpec, sample_inputs
from golden.exact.params import ExactParams
from golden.inputs import downsample

HOST_BITS = 24  # host Bernoulli draws: 24-bit words against floor(z * 2^24) (§7)


def imm(a: torch.Tensor, b: torch.Tensor, bound: int) -> torch.Tensor:
    """Exact integer product ``a @ b`` given ``bound`` >= every |partial sum|."""
    dt = torch.float32 if bound < (1 << 24) else torch.float64
    return (a.to(dt) @ b.to(dt)).to(torch.int64)


class ExactLearner:
    """Binary stochastic learning exactly as the hardware does it (``TrainConfig(mode="exact")``).

    Parameters
    ----------
    cfg : golden.config.TrainConfig
        ``net="fc"``, ``algo="SSS"``, integer ``weights``; hardware parameters in ``cfg.hw``
        (:class:`golden.exact.params.ExactParams`).
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.params = ExactParams.from_dict(dict(cfg.hw))
        P = self.P = self.params.resolve(cfg)
        self.noise = NoiseSpec(tuple(P["noise_words"]))
        self.k, self.s = P["deriv_k"], P["scale"]
        self.sizes = [cfg.input_side ** 2, *cfg.hidden, 10]
        self.L = len(self.sizes) - 1
        self.layers = [{"name": f"fc{l + 1}", "kind": "fc", "fan_in": i, "fan_out": o, "synapses": i * o,
                        "macs": i * o, "neurons": o} for l, (i, o) in enumerate(zip(self.sizes, self.sizes[1:]))]
        gen = torch.Generator().manual_seed(cfg.seed)
        self.W, self.C = [], []
        for i, o in zip(self.sizes, self.sizes[1:]):  # §10: uniform integers in [-m, m]
            m = max(1, math.floor(min(cfg.weight_range, 1 / math.sqrt(i)) / self.s))
            m = min(m, P["wmax"], -P["wmin"])
            self.W.append(torch.randint(-m, m + 1, (i, o), generator=gen, dtype=torch.int64))
            self.C.append(torch.zeros(i, o, dtype=torch.int64))
        seed = cfg.seed
        self.in_bank = LfsrBank(I16, [seed_state(seed, i, I16) for i in range(self.sizes[0])], 16)
        self.banks = []
        for l in range(1, self.L + 1):
            on = l < self.L or P["output"] == "onchip"
            self.banks.append(LfsrBank(N32, [seed_state(seed, stream_id(l, j), N32) for j in range(self.sizes[l])],
                                       self.noise.bits) if on else None)
        self.host_bank = (LfsrBank(N32, [seed_state(seed, stream_id(self.L + 1, j), N32) for j in range(10)],
                                   HOST_BITS) if P["output"] == "host" else None)
        b = P["weight_bits"]
        self._fwd_bound = [i << (b - 1) for i in self.sizes[:-1]]
        self._bwd_bound = [o << (b - 1) for o in self.sizes[1:]]

    # -- helpers -----------------------------------------------------------------------------------
    def _pixels(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.dim() != 3:
            raise BshwError("the exact learner takes uint8 images [B, side, side]")
        return downsample(x, self.cfg.input_side).flatten(1).to(torch.int64)

    def _noise(self, l: int, draws_per_sample: int, n_samples: int) -> torch.Tensor:
        bank = self.banks[l]
        return bank.draw(n_samples * draws_per_sample, self.noise.coef).view(n_samples, draws_per_sample, len(bank))

    # -- training ----------------------------------------------------------------------------------
    def train_batch(self, x: torch.Tensor, t: torch.Tensor, record: dict | None = None) -> dict:
        """One batch: B samples forward/backward, counters accumulated, one carry cycle (§8).

        ``record``, if a dict, receives every intermediate integer tensor (for golden traces).
        Returns ``{"loss": cross-entropy of softmax(s * y_out) (host-side report only), "out_err":
        mean |dy_out|, "activity": [per layer {...}]}``.
        """
        P, k, T = self.P, self.k, self.noise.T
        p = self._pixels(x)
        t = torch.as_tensor(t, dtype=torch.int64)
        B = len(p)
        if len(t) != B:
            raise BshwError(f"{B} images but {len(t)} labels")
        target = torch.nn.functional.one_hot(t, 10)
        r = self.in_bank.draw(B)
        xs = [sample_inputs(p, r)]
        ys, Ss, As, Bs, ds = [], [], [], [], []
        for l in range(self.L):
            y = imm(xs[-1], self.W[l], self._fwd_bound[l])
            ys.append(y)
            if l < self.L - 1:
                S = self._noise(l, 1 + 2 * k, B)
                xl, A, Bb, d = sample_neurons(y, S, T, k)
                xs.append(xl), Ss.append(S), As.append(A), Bs.append(Bb), ds.append(d)
            elif P["output"] == "onchip":
                S = self._noise(l, 1, B)
                xs.append(fire(y, S[:, 0], T)), Ss.append(S)
            else:  # host: softmax of the integer potentials, Bernoulli per class (Eq. 6)
                z = torch.softmax(y.double() * self.s, dim=1)
                u = self.host_bank.draw(B)
                xs.append((u < torch.floor(z * (1 << HOST_BITS)).to(torch.int64)).to(torch.int64))
                Ss.append(None)
        dys = [None] * self.L
        dys[-1] = xs[-1] - target
        dxs, dzs = [None] * self.L, [None] * self.L
        for l in range(self.L - 2, -1, -1):  # backward through W^{l+2}
            up = dys[l + 1]
            dx = imm(up, self.W[l + 1].T, self._bwd_bound[l])
            dz = tie_sign(dx, (up != 0).any(1), P["tie"])
            dxs[l], dzs[l], dys[l] = dx, dz, ternary_error(ds[l], dz)
        acts, pre, steps = [], [], []
        for l in range(self.L):
            self.C[l] = carry_mod.accumulate(self.C[l], xs[l], dys[l], P["counter_bits"])
            pre.append(self.C[l].clone())
            self.C[l], self.W[l], step = carry_mod.carry(self.C[l], self.W[l], P["th"], P["wmin"], P["wmax"])
            steps.append(step)
            a = {"x_active": float(xs[l].float().mean()), "dy_nonzero": float((dys[l] != 0).float().mean()),
                 "carries_per_weight": float((step != 0).float().mean())}
            if dxs[l] is not None:  # tie statistics (§14): where `gated` and `zero` differ
                tie = dxs[l] == 0
                driven = (dys[l + 1] != 0).any(1, keepdim=True)
                a.update(ties=float(tie.float().mean()), ties_driven=float((tie & driven).float().mean()),
                         ties_differ=float((tie & driven & (ds[l] == 1)).float().mean()))
            acts.append(a)
        logz = torch.log_softmax(ys[-1].double() * self.s, dim=1)
        loss = float(-logz.gather(1, t[:, None]).mean())
        if record is not None:
            record.update(pixels=p, r=r, labels=t, xs=xs, ys=ys, S=Ss, A=As, B=Bs, d=ds, dx=dxs, dz=dzs, dy=dys,
                          counter_pre=pre, carry=steps, counters=[c.clone() for c in self.C],
                          weights=[w.clone() for w in self.W])
        return {"loss": loss, "out_err": float(dys[-1].abs().float().mean()), "activity": acts}

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
                y = z @ (self.W[l].double() * self.s)
                z = torch.sigmoid(self.cfg.a * y)
            return y.argmax(1)
        if method == "binary":
            xl = (p >= 128).to(torch.int64)
            for l in range(self.L):
                y = imm(xl, self.W[l], self._fwd_bound[l])
                xl = (y > 0).to(torch.int64)
            return y.argmax(1)
        if method != "stochastic":
            raise BshwError(f"inference method {method!r}: choose hp, binary or stochastic")
        if not isinstance(votes, int) or votes < 1:
            raise BshwError(f"votes = {votes!r}: a positive whole number")
        B = len(p)
        pr = p.repeat_interleave(votes, 0)  # sample-major, votes inner
        xl = sample_inputs(pr, self.in_bank.draw(B * votes))
        for l in range(self.L):
            y = imm(xl, self.W[l], self._fwd_bound[l])
            if l < self.L - 1:
                xl = fire(y, self._noise(l, 1, B * votes)[:, 0], self.noise.T)
        cls = y.argmax(1).view(B, votes)
        counts = torch.zeros(B, 10, dtype=torch.int64)
        for rr in range(votes):
            counts.scatter_add_(1, cls[:, rr:rr + 1], torch.ones(B, 1, dtype=torch.int64))
            if curve is not None and rr + 1 in curve:
                curve[rr + 1] = counts.argmax(1)
        return counts.argmax(1)

    @torch.no_grad()
    def hidden_activations(self, x: torch.Tensor) -> list:
        """HP activations ``sigma(a s y)`` of every hidden layer (activation CDF plots)."""
        z, out = self._pixels(x).double() / 255, []
        for l in range(self.L - 1):
            z = torch.sigmoid(self.cfg.a * (z @ (self.W[l].double() * self.s)))
            out.append(z.flatten().float())
        return out

    def float_weights(self) -> list:
        """Effective float weights ``s * W`` per layer, ``[fan_out, fan_in]`` like the float model."""
        return [(w.T.double() * self.s).float() for w in self.W]

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"kind": "bshw-exact", "version": 1, "params": dict(self.P),
                "weights": [w.clone() for w in self.W], "counters": [c.clone() for c in self.C],
                "lfsr_in": self.in_bank.states.clone(),
                "lfsr": [None if b is None else b.states.clone() for b in self.banks],
                "host_lfsr": None if self.host_bank is None else self.host_bank.states.clone()}

    def load_state_dict(self, d: dict) -> None:
        if not isinstance(d, dict) or d.get("kind") != "bshw-exact":
            raise BshwError("not an exact-mode learner state")
        if d.get("params") != self.P:
            raise BshwError("the saved exact-mode state was made with other hardware parameters")
        for name, mine in (("weights", self.W), ("counters", self.C)):
            if [tuple(v.shape) for v in d[name]] != [tuple(v.shape) for v in mine]:
                raise BshwError(f"saved {name} have other layer sizes")
        self.W = [torch.as_tensor(w, dtype=torch.int64).clone() for w in d["weights"]]
        self.C = [torch.as_tensor(c, dtype=torch.int64).clone() for c in d["counters"]]
        self.in_bank.states = torch.as_tensor(d["lfsr_in"], dtype=torch.int64).clone()
        for b, s in zip(self.banks, d["lfsr"]):
            if b is not None:
                b.states = torch.as_tensor(s, dtype=torch.int64).clone()
        if self.host_bank is not None:
            self.host_bank.states = torch.as_tensor(d["host_lfsr"], dtype=torch.int64).clone()
