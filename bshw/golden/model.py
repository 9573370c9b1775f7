"""The float golden model: HP and binary stochastic learning, every F/E/D variant (paper Fig. 1a-c).

One neuron does everything a BS layer's periphery does, as a torch autograd Function:

  forward   z = sigma(a y)  [-> 2x2 max-pool]  ->  x = Bernoulli(z)   (F:S)   or  x = z   (F:H)
  backward  dz = sign(dx) with a tie rule     (E:S)   or  dz = dx                        (E:H)
            d  ~ Bernoulli(min(1, a z (1-z))) or k pairs (A AND NOT B) OR-ed   (D:S)
                 or  d = a z (1 - z)                                                      (D:H)
            dy = dz * d                       [-> routed back to the pool's winner]

The crossbar sums y = x W (forward) and dx = dy W^T (backward) are plain linear/conv ops, so
autograd gives the weight gradient x^T dy of Eqs. 1-2 directly, for FC and conv layers alike.
Gradients are kept as *sums* over the batch: with BS learning they are whole numbers, which is what
the periodic-carry counters (bshw.golden.weights) accumulate.
"""

import math

import torch
import torch.nn.functional as F

from bshw.golden.config import TrainConfig
from bshw.golden.inputs import downsample, to_unit
from bshw.golden.weights import make_weights

# ---- the three binarized factors -------------------------------------------------------------

def bernoulli(p, gen=None):
    """x ~ Bernoulli(p) elementwise, as p.dtype: a uniform draw compared with p (P(u < p) = p),
    in place in the draw's own buffer (faster than torch.bernoulli on CPU)."""
    return torch.rand(p.shape, generator=gen, device=p.device, dtype=p.dtype).lt_(p)


def sign_with_tie(dx, tie: str, gen=None):
    """sign(dx) in {-1, 0, +1} with the tie rule for dx == 0 (docs/algorithm.md, "Tie rule")."""
    s = torch.sign(dx)
    if tie == "plus":  # the paper's literal sign(0) = +1
        return torch.where(dx == 0, torch.ones_like(s), s)
    if tie == "random":
        coin = torch.randint(0, 2, dx.shape, generator=gen, device=dx.device).to(dx.dtype) * 2 - 1
        return torch.where(dx == 0, coin, s)
    return s  # "zero": no error where none arrived


def sample_derivative(z, a: float, k, gen=None):
    """Binary derivative of the logistic neuron (paper Eq. 4 and its k-fold OR).

    k None: the ideal draw, P(d=1) = min(1, a z (1 - z)). k in {1, 2, 4}: the hardware, k pairs of
    independent samples A, B of the neuron, d = OR_k (A AND NOT B), P(d=1) = 1 - (1 - z(1-z))^k.
    The k pairs are independent and only d leaves the neuron, so d is drawn once from that
    probability (one uniform per neuron instead of 2k; the same distribution).
    """
    v = z - z * z  # z (1 - z)
    if k is None:
        return bernoulli(v.mul_(a), gen)  # p > 1 always fires: the truncation
    return bernoulli(1 - (1 - v) ** k, gen)


def derivative_probability(z, a: float, k):
    """Expected value of :func:`sample_derivative` (what tests compare frequencies against)."""
    if k is None:
        return (a * z * (1 - z)).clamp(max=1.0)
    return 1 - (1 - z * (1 - z)) ** k


class _Neuron(torch.autograd.Function):
    """A logistic neuron with optional 2x2 max-pool, F/E/D handled per :class:`Rules`."""

    @staticmethod
    def forward(ctx, y, rules, pool):
        z = torch.sigmoid(rules.a * y)
        idx = None
        if pool:  # Methods "Deep CNN": activation -> max-pool -> Bernoulli in the pooled layer
            ctx.in_shape = z.shape
            z, idx = F.max_pool2d(z, 2, return_indices=True)
        x = bernoulli(z, rules.gen) if rules.F else z
        ctx.rules, ctx.pool = rules, pool
        ctx.save_for_backward(z, idx) if pool else ctx.save_for_backward(z)
        return x

    @staticmethod
    def backward(ctx, dx):
        r = ctx.rules
        z = ctx.saved_tensors[0]
        dz = sign_with_tie(dx, r.tie, r.gen) if r.E else dx
        d = sample_derivative(z, r.a, r.k, r.gen) if r.D else r.a * z * (1 - z)
        dy = dz * d
        r.record_nonzero(dy)
        if ctx.pool:
            dy = F.max_unpool2d(dy, ctx.saved_tensors[1], 2, output_size=ctx.in_shape[-2:])
        return dy, None, None


class _SoftmaxOutput(torch.autograd.Function):
    """Softmax + cross-entropy output (Methods "The activation of the output layer").

    Returns the summed cross-entropy; its gradient is z - t (Eq. 5), or z_B - t with z_B a
    Bernoulli draw of each softmax output in E:S (Eq. 6), summed over the batch.
    """

    @staticmethod
    def forward(ctx, y, t, rules):
        logz = torch.log_softmax(y, dim=1)
        z = logz.exp()
        ctx.save_for_backward(z, t)
        ctx.rules = rules
        return -logz.gather(1, t[:, None]).sum()

    @staticmethod
    def backward(ctx, g):
        z, t = ctx.saved_tensors
        r = ctx.rules
        zb = bernoulli(z, r.gen) if r.E else z
        dy = zb - F.one_hot(t, z.shape[1]).to(z.dtype)
        r.record_nonzero(dy)
        return dy * g, None, None


def _neuron_backward(dx, z, r):
    """``dy`` of a logistic neuron from ``dx`` (the error at its output) and its output ``z``."""
    if r.E:
        dz = sign_with_tie(dx, r.tie, r.gen)
        d = sample_derivative(z, r.a, r.k, r.gen) if r.D else (z - z * z).mul_(r.a)
        return dz.mul_(d)
    d = sample_derivative(z, r.a, r.k, r.gen) if r.D else (z - z * z).mul_(r.a)
    return d.mul_(dx)


class _FcNeuron(torch.autograd.Function):
    """A fully connected layer and its logistic neurons, fused: ``x -> y = x W^T -> z -> x'``
    forward, ``dx' -> dy -> (dx = dy W, dW = dy^T x)`` backward, F/E/D per :class:`Rules`.

    One node instead of linear + neuron; the same draws as :class:`_Neuron` in distribution.

    ``cols`` (int64 indices, or None): ``x`` holds only those input columns, the others being
    zero for the whole batch (the input layer's zero pixels: P(x = 1) = 0 there); the forward
    product then skips them, and ``dW`` gets zero columns there."""

    @staticmethod
    def forward(ctx, x, w, rules, cols=None):
        wc = w if cols is None else w.index_select(1, cols)
        z = F.linear(x, wc).mul_(rules.a).sigmoid_()
        ctx.rules, ctx.cols = rules, cols
        ctx.save_for_backward(x, w, z)
        return bernoulli(z, rules.gen) if rules.F else z

    @staticmethod
    def backward(ctx, dxo):
        x, w, z = ctx.saved_tensors
        r, cols = ctx.rules, ctx.cols
        dy = _neuron_backward(dxo, z, r)
        r.record_nonzero(dy, ternary=r.E and r.D)
        if cols is not None:  # the full input, zero columns back in (a small [B, fan_in] tensor)
            x = x.new_zeros(x.shape[0], w.shape[1]).index_copy_(1, cols, x)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(dy, w)
            dx = dx if cols is None else dx.index_select(1, cols)
        return dx, torch.mm(dy.t(), x), None, None


class _FcSoftmax(torch.autograd.Function):
    """The fully connected output layer fused with :class:`_SoftmaxOutput`: summed cross-entropy
    forward; ``dy = z - t`` (or ``z_B - t`` in E:S), ``dW = dy^T x``, ``dx = dy W`` backward."""

    @staticmethod
    def forward(ctx, x, w, t, rules):
        logz = torch.log_softmax(F.linear(x, w), dim=1)
        ctx.save_for_backward(x, w, logz, t)
        ctx.rules = rules
        return -logz.gather(1, t[:, None]).sum()

    @staticmethod
    def backward(ctx, g):
        x, w, logz, t = ctx.saved_tensors
        r = ctx.rules
        z = logz.exp()
        dy = (bernoulli(z, r.gen) if r.E else z).sub_(F.one_hot(t, z.shape[1]).to(z.dtype))
        r.record_nonzero(dy, ternary=r.E)
        dy = dy.mul_(g)
        dx = torch.mm(dy, w) if ctx.needs_input_grad[0] else None
        return dx, torch.mm(dy.t(), x), None, None


class Rules:
    """The F/E/D choices, shape a, tie rule and random generator shared by every neuron.

    ``log`` collects per-layer statistics as tensors (no host synchronisation on the training
    path); :meth:`FloatLearner.gradients` reads them all at once at the end of the pass."""

    def __init__(self, cfg: TrainConfig, gen):
        self.F, self.E, self.D = cfg.F, cfg.E, cfg.D
        self.a, self.tie, self.k, self.gen = cfg.a, cfg.tie, cfg.deriv_k, gen
        self.log = {}

    def record(self, key, value):
        self.log.setdefault(key, []).append(value)

    def record_nonzero(self, dy, ternary=False):
        """The fraction of nonzero entries of ``dy`` (a 0-d tensor, read later). ``ternary``: dy is
        in {-1, 0, +1}, so the count is sum |dy| (one cheap pass)."""
        n = dy.abs().sum() if ternary else (dy != 0).sum()
        self.record("dy_nonzero", n / dy.numel())


# ---- networks ----------------------------------------------------------------------------------

def architecture(cfg: TrainConfig):
    """Layer list of the configured net: dicts with kind, shapes, pool and flatten flags.

    fc  : 784-500-200-10 (Fig. 2a), or ``side^2``-hidden-10.
    cnn : conv 8@9x9 -> pool -> conv 12@5x5 -> pool -> FC 108x10 (Fig. 4a).
    vgg : [conv 3x3 pad] x2 -> pool, three times (32, 64, 128 channels) -> FC 2048-512-128-10
          (Fig. 4f's VGG style; the figure's exact widths are not in the text, these are ours).
    """
    if cfg.net == "fc":
        sizes = [cfg.input_side ** 2, *cfg.hidden, 10]
        return [dict(kind="fc", fan_in=i, fan_out=o) for i, o in zip(sizes, sizes[1:])]
    if cfg.net == "cnn":
        s1 = cfg.input_side - 8  # 28 -> 20 -> pool 10 -> 6 -> pool 3
        s2 = s1 // 2 - 4
        if s2 < 2:
            raise ValueError("the CNN needs input_side 28")
        return [dict(kind="conv", cin=1, cout=8, k=9, pad=0, side=s1, pool=True),
                dict(kind="conv", cin=8, cout=12, k=5, pad=0, side=s2, pool=True, flatten=True),
                dict(kind="fc", fan_in=12 * (s2 // 2) ** 2, fan_out=10)]
    chans, layers, side, cin = [32, 64, 128], [], 32, 3
    for c in chans:
        layers += [dict(kind="conv", cin=cin, cout=c, k=3, pad=1, side=side, pool=False),
                   dict(kind="conv", cin=c, cout=c, k=3, pad=1, side=side, pool=True)]
        cin, side = c, side // 2
    layers[-1]["flatten"] = True
    sizes = [cin * side * side, 512, 128, 10]
    return layers + [dict(kind="fc", fan_in=i, fan_out=o) for i, o in zip(sizes, sizes[1:])]


def describe_network(cfg: TrainConfig) -> list[dict]:
    """One dict per weight layer: name, kind, fan_in, fan_out, synapses, macs (forward, per
    sample) and neurons (outputs per sample). Used by the energy estimator and the reports."""
    out = []
    for i, L in enumerate(architecture(cfg)):
        if L["kind"] == "fc":
            fan_in, fan_out, neurons = L["fan_in"], L["fan_out"], L["fan_out"]
        else:
            fan_in, fan_out, neurons = L["cin"] * L["k"] ** 2, L["cout"], L["cout"] * L["side"] ** 2
        out.append(dict(name=f"{L['kind']}{i + 1}", kind=L["kind"], fan_in=fan_in, fan_out=fan_out,
                        synapses=fan_in * fan_out, macs=fan_in * neurons, neurons=neurons))
    return out


def init_weight(L, gen, gain):
    """Uniform in +-gain/sqrt(fan_in) (the paper does not state its init; docs/algorithm.md)."""
    shape = (L["fan_out"], L["fan_in"]) if L["kind"] == "fc" else (L["cout"], L["cin"], L["k"], L["k"])
    fan_in = math.prod(shape[1:])
    return (torch.rand(shape, generator=gen) * 2 - 1) * gain / math.sqrt(fan_in)


class FloatLearner:
    """The float golden model behind ``bshw train --mode float``.

    ``COMPACT``: the first FC layer skips input columns that are zero in the whole batch when at
    most this fraction of the columns is left (MNIST batches of 100 leave about 0.6).

    Implements the learner interface the training loop uses (the exact mode, bshw.golden.exact, has
    the same one): ``train_batch``, ``predict``, ``state_dict``/``load_state_dict``,
    ``float_weights``, ``hidden_activations`` and ``layers``.
    """

    COMPACT = 0.85

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.gen = torch.Generator(self.device).manual_seed(cfg.seed + 1)  # every training draw
        self.arch = architecture(cfg)
        self.layers = describe_network(cfg)
        # The weight-kind generator (stochastic rounding, memristor write noise) is its own stream.
        self.wgen = torch.Generator(self.device).manual_seed(cfg.seed + 2)
        self.weights = [make_weights(init_weight(L, init_gen, cfg.init_gain).to(self.device), cfg, self.wgen)
                        for L in self.arch]
        self.rules = Rules(cfg, self.gen)

    # -- one pass ---------------------------------------------------------------------------------
    def _inputs(self, x):
        x = x.to(self.device)
        if self.cfg.net == "fc":
            x = downsample(x, self.cfg.input_side).flatten(1)
        elif x.dim() == 3:
            x = x[:, None]
        return to_unit(x)

    def _linear(self, L, x, w):
        return F.linear(x, w) if L["kind"] == "fc" else F.conv2d(x, w, padding=L["pad"])

    def _forward(self, p, method, weights, rules=None, record=None):
        """Membrane potentials of the output layer. ``method``: hp | binary | stochastic (inference;
        training goes through :meth:`_train_loss`)."""
        act = {"hp": lambda z: z, "binary": lambda z: (z > 0.5).to(z.dtype),
               "stochastic": lambda z: bernoulli(z, self.gen)}[method]
        x = act(p) if method != "hp" else p
        for i, (L, w) in enumerate(zip(self.arch, weights)):
            y = self._linear(L, x, w)
            if i == len(self.arch) - 1:
                return y
            z = torch.sigmoid(self.cfg.a * y)
            z = F.max_pool2d(z, 2) if L.get("pool") else z
            x = act(z)
            if L.get("flatten"):
                x = x.flatten(1)

    def _train_loss(self, p, t, weights, rules, record):
        """The training pass: summed loss (backward gives the summed weight gradients). FC layers
        run as one fused autograd node each (:class:`_FcNeuron`, :class:`_FcSoftmax`); conv layers
        as the conv op + :class:`_Neuron`. ``record`` gets each layer's mean input (0-d tensors)."""
        last = len(self.arch) - 1
        cols = None
        if self.arch[0]["kind"] == "fc" and last > 0 and p.device.type == "cpu":
            # input pixels that are 0 in every image of the batch: x = 0 there, no draw, no product
            # (CPU only: finding them is a host synchronisation on an accelerator)
            nz = p.sum(0).nonzero().squeeze(1)  # p >= 0: a column sum is 0 iff the column is
            if len(nz) <= self.COMPACT * p.shape[1]:
                cols = nz
        n0 = p.numel()
        if cols is not None:
            p = p.index_select(1, cols)
        x = bernoulli(p, self.gen) if self.cfg.F else p
        for i, (L, w) in enumerate(zip(self.arch, weights)):
            record.append(x.sum() / n0 if i == 0 else x.mean())
            if L["kind"] == "fc":
                if i == last:
                    return _FcSoftmax.apply(x, w, t, rules)
                x = _FcNeuron.apply(x, w, rules, cols if i == 0 else None)
            else:
                x = _Neuron.apply(self._linear(L, x, w), rules, L.get("pool", False))
                if i == last:
                    return _SoftmaxOutput.apply(x, t, rules)
            if L.get("flatten"):
                x = x.flatten(1)

    # -- learner interface -------------------------------------------------------------------------
    def gradients(self, x, t):
        """One BS/HP pass over a batch: the summed weight gradients (whole numbers in SSS) and the
        loss and per-layer activity, without touching the weights."""
        t = t.to(self.device)
        ws = [W.w.detach().requires_grad_() for W in self.weights]
        self.rules.log = {}
        x_active = []
        loss = self._train_loss(self._inputs(x), t, ws, self.rules, x_active)
        loss.backward()
        dy_nonzero = self.rules.log.get("dy_nonzero", [])[::-1]  # backward runs output first
        # every statistic in one read (one host synchronisation per batch on an accelerator)
        vals = torch.stack([loss.detach().float(), *[v.float() for v in x_active],
                            *[v.float() for v in dy_nonzero]]).tolist()
        n = len(x_active)
        activity = [{"x_active": xa, "dy_nonzero": dn} for xa, dn in zip(vals[1:1 + n], vals[1 + n:])]
        return [w.grad for w in ws], vals[0] / len(t), activity

    def train_batch(self, x, t):
        grads, loss, activity = self.gradients(x, t)
        for W, g, a in zip(self.weights, grads, activity):
            c = W.step(g)
            a["carries_per_weight"] = None if c is None else c / g.numel()
        return {"loss": loss, "activity": activity}

    @torch.no_grad()
    def predict(self, x, method: str, votes: int = 1, curve=None):
        """Class predictions. ``stochastic``: majority vote of ``votes`` sampled passes (ties go to
        the lowest class index); ``curve``, a dict {R: None}, gets the predictions after R votes."""
        p = self._inputs(x)
        ws = [W.w for W in self.weights]
        if method != "stochastic":
            return self._forward(p, method, ws).argmax(1).cpu()
        counts = torch.zeros(len(p), 10, device=self.device)
        for r in range(1, votes + 1):
            counts.scatter_add_(1, self._forward(p, "stochastic", ws).argmax(1, keepdim=True),
                                torch.ones(len(p), 1, device=self.device))
            if curve is not None and r in curve:
                curve[r] = counts.argmax(1).cpu()
        return counts.argmax(1).cpu()

    @torch.no_grad()
    def hidden_activations(self, x):
        """HP activations z of every hidden layer (for the activation CDF plots, Fig. 2f/g)."""
        p, out = self._inputs(x), []
        for L, W in zip(self.arch[:-1], self.weights):
            z = torch.sigmoid(self.cfg.a * self._linear(L, p, W.w))
            z = F.max_pool2d(z, 2) if L.get("pool") else z
            out.append(z.flatten().cpu())
            p = z.flatten(1) if L.get("flatten") else z
        return out

    def float_weights(self):
        return [W.w.detach().cpu() for W in self.weights]

    def state_dict(self):
        return {"weights": [W.state_dict() for W in self.weights], "gen": self.gen.get_state(),
                "wgen": self.wgen.get_state()}

    def load_state_dict(self, d):
        from bshw.golden.train import check_state_like

        check_state_like(d, self.state_dict(), "state")  # copy_ would broadcast a wrong shape
        for W, s in zip(self.weights, d["weights"]):
            W.load_state_dict(s)
        self.gen.set_state(d["gen"])
        self.wgen.set_state(d["wgen"])


def make_learner(cfg: TrainConfig):
    """The learner for ``cfg.mode``: this float model, or the hardware-exact one."""
    if cfg.mode == "exact":
        from bshw.golden.exact import make_learner as make_exact

        return make_exact(cfg)
    return FloatLearner(cfg)
