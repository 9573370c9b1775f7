"""The float golden model: HP and binary stochastic learning, every F/E/D variant (paper Fig. 1a-c).

One neuron does everything a BS layer's periphery does:

  forward   z = sigma(a y)  [-> 2x2 max-pool]  ->  x = Bernoulli(z)   (F:S)   or  x = z   (F:H)
  backward  dz = sign(dx) with a tie rule     (E:S)   or  dz = dx                        (E:H)
            d  ~ Bernoulli(min(1, a z (1-z))) or k pairs (A AND NOT B) OR-ed   (D:S)
                 or  d = a z (1 - z)                                                      (D:H)
            dy = dz * d                       [-> routed back to the pool's winner]

FC nets train by hand (FloatLearner._fc_pass: per layer one forward and one fused backward step,
the crossbar sums y = x W^T, dx = dy W and the weight gradient x^T dy of Eqs. 1-2 as BLAS products,
or as sums of rows where x is the sparse binary input, BinaryRows); conv nets through autograd
(the linear/conv op + _Neuron). Gradients are kept as *sums* over the batch: with BS learning they
are whole numbers, which is what the periodic-carry counters (bshw.golden.weights) accumulate.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from bshw.golden.config import TrainConfig
from bshw.golden.inputs import downsample, to_unit
from bshw.golden.weights import make_weights

# ---- the three binarized factors -------------------------------------------------------------

def make_generator(seed: int, device) -> "np.random.Generator | torch.Generator":
    """The random source of the training draws. On the CPU a numpy ``PCG64`` generator: its float32
    uniforms are ``k / 2^24`` with ``k`` uniform on ``[0, 2^24)`` (float64: ``k / 2^53``), the same
    distribution as ``torch.rand``'s, and it fills them about twice as fast as torch's mt19937 (the
    ~150k draws of a 784-500-200-10 SSS step were ~1/5 of its time; issue 21). Elsewhere a
    ``torch.Generator`` on the device."""
    device = torch.device(device)
    if device.type == "cpu":
        return np.random.Generator(np.random.PCG64(seed))
    return torch.Generator(device).manual_seed(seed)


def uniform(shape, gen, like):
    """``U[0, 1)`` draws of ``shape`` with ``like``'s dtype and device, from ``gen``: a numpy
    generator (:func:`make_generator`), a ``torch.Generator`` or None (torch's default)."""
    if isinstance(gen, np.random.Generator):
        dt = np.float64 if like.dtype == torch.float64 else np.float32
        u = torch.from_numpy(np.asarray(gen.random(tuple(shape), dtype=dt)))
        return u if u.dtype == like.dtype and like.device.type == "cpu" else u.to(like.device, like.dtype)
    return torch.rand(shape, generator=gen, device=like.device, dtype=like.dtype)


def generator_state(gen) -> torch.Tensor:
    """``gen``'s state as a uint8 tensor (for checkpoints; :func:`set_generator_state` restores it).
    A numpy PCG64 generator: its 128-bit state and increment, the buffered-half flag and the
    buffered 32 bits, 37 bytes little endian."""
    if not isinstance(gen, np.random.Generator):
        return gen.get_state()
    s = gen.bit_generator.state
    raw = (s["state"]["state"].to_bytes(16, "little") + s["state"]["inc"].to_bytes(16, "little")
           + bytes([s["has_uint32"]]) + s["uinteger"].to_bytes(4, "little"))
    return torch.tensor(list(raw), dtype=torch.uint8)


def set_generator_state(gen, state: torch.Tensor) -> None:
    """Inverse of :func:`generator_state`."""
    if not isinstance(gen, np.random.Generator):
        gen.set_state(state)
        return
    raw = bytes(state.cpu().tolist())
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(raw[:16], "little"), "inc": int.from_bytes(raw[16:32], "little")},
        "has_uint32": raw[32], "uinteger": int.from_bytes(raw[33:37], "little")}


def bernoulli(p, gen=None):
    """x ~ Bernoulli(p) elementwise, as p.dtype: a uniform draw compared with p (P(u < p) = p),
    in place in the draw's own buffer (faster than torch.bernoulli on CPU)."""
    return uniform(p.shape, gen, p).lt_(p)


def sign_with_tie(dx, tie: str, gen=None):
    """sign(dx) in {-1, 0, +1} with the tie rule for dx == 0 (docs/algorithm.md, "Tie rule")."""
    s = torch.sign(dx)
    if tie == "plus":  # the paper's literal sign(0) = +1
        return torch.where(dx == 0, torch.ones_like(s), s)
    if tie == "random":
        if isinstance(gen, np.random.Generator):
            coin = torch.from_numpy(gen.integers(0, 2, tuple(dx.shape))).to(dx.device, dx.dtype) * 2 - 1
        else:
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
    v = torch.addcmul(z, z, z, value=-1)  # z (1 - z), one pass
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
        dy = neuron_backward(dx, ctx.saved_tensors[0], r)
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


def neuron_backward(dx, z, r):
    """``dy = dz * d`` of a logistic neuron from the error ``dx`` at its output and its activation
    ``z``: dz = sign(dx) with the tie rule (E:S) or dx, d sampled (D:S) or a z (1 - z) (D:H)."""
    dz = sign_with_tie(dx, r.tie, r.gen) if r.E else dx
    d = sample_derivative(z, r.a, r.k, r.gen) if r.D else torch.addcmul(z, z, z, value=-1).mul_(r.a)
    return d.mul_(dz)


class BinaryRows:
    """A 0/1 matrix ``x [B, n]`` held as the positions of its ones, row by row, for index-based
    products: ``x W`` is, per row, the sum of W's rows at its ones, and ``x^T dy``, per column, the
    sum of dy's rows at its ones (``F.embedding_bag``, sum mode). The input layer's x under F:S is
    sparse (MNIST: ~12% ones), so these are far fewer adds than a dense product's multiply-adds.

    CPU only: the index bookkeeping (which pixels are lit, the regrouping by column) runs in numpy,
    several times faster there than torch's nonzero/sort on these small arrays (numpy's stable
    argsort of 16-bit keys is a radix sort); every product stays in torch, and the draws come from
    the learner's generator (:func:`make_generator`)."""

    def __init__(self, ones, shape):
        """``ones``: the flat indices ``b * n + i`` of the ones, ascending (a numpy array or a CPU
        tensor); ``shape``: ``(B, n)``."""
        B, n = shape
        self.shape = shape
        ones = np.asarray(ones, dtype=np.int64)
        bounds = np.searchsorted(ones, np.arange(B + 1) * n)  # each row's first one (ones ascending)
        self.counts = np.diff(bounds)  # ones per row
        self.cols = torch.from_numpy(ones - np.repeat(np.arange(B) * n, self.counts))
        self.offsets = torch.from_numpy(bounds[:-1])

    @property
    def rows(self):
        """The row of each one (``cols``' companion)."""
        return torch.from_numpy(np.repeat(np.arange(self.shape[0]), self.counts))

    @staticmethod
    def lit(pixels):
        """The flat positions of the nonzero entries of ``pixels`` (CPU), ascending, as numpy."""
        return np.flatnonzero(pixels.reshape(-1).numpy() != 0)

    @classmethod
    def sample(cls, pixels, lit, gen):
        """``x ~ Bernoulli(p)``, ``p = pixels / 255``, drawn at the flat positions ``lit`` of the
        nonzero pixels (ascending); x = 0 for sure at the others, no draw. The same draws and
        comparisons as ``uniform(len(lit)) < to_unit(pixels)[lit]`` (:func:`uniform`)."""
        lit = np.asarray(lit, dtype=np.int64)
        p = _UNIT.take(pixels.reshape(-1).numpy().take(lit))  # = to_unit(pixel), bit for bit
        if isinstance(gen, np.random.Generator):
            u = gen.random(len(lit), dtype=np.float32)
        else:
            u = torch.rand(len(lit), generator=gen).numpy()
        return cls(lit.compress(u < p), pixels.shape)  # take/compress: faster than [] indexing

    def mm(self, w):
        """``x @ w``."""
        return F.embedding_bag(self.cols, w, self.offsets, mode="sum")

    def t_mm(self, dy, live=None):
        """``x^T @ dy``: the ones regrouped by column (a stable sort keeps each column's rows
        ascending). ``live`` (ascending row numbers): dy holds only those rows of the batch."""
        B, n = self.shape
        cols, counts = self.cols.numpy(), self.counts
        if live is not None:  # the ones in live rows, rows renumbered as dy's rows
            counts = counts[np.asarray(live)]
            keep = np.zeros(B, dtype=bool)
            keep[np.asarray(live)] = True
            cols = cols[np.repeat(keep, self.counts)]
        order = np.argsort(cols.astype(np.int16) if n <= 1 << 15 else cols, kind="stable")
        rows = np.repeat(np.arange(len(counts)), counts)[order]
        per_col = np.bincount(cols, minlength=n)
        offsets = per_col.cumsum() - per_col  # each column's first one in the regrouped order
        return F.embedding_bag(torch.from_numpy(rows), dy, torch.from_numpy(offsets), mode="sum")

    def sum(self):
        return torch.tensor(float(len(self.cols)))

    def dense(self, dtype=torch.bool):
        """``x`` as a dense ``[B, n]`` tensor."""
        x = torch.zeros(self.shape, dtype=dtype)
        x[self.rows, self.cols] = 1
        return x


_UNIT = to_unit(torch.arange(256, dtype=torch.uint8)).numpy()  # pixel value -> p, for BinaryRows


def t_mm(x, dy, live=None, exact=False):
    """``x^T @ dy`` for a dense or :class:`BinaryRows` ``x`` (the summed weight gradient, Eqs. 1-2);
    ``live`` (row numbers): dy holds only those rows of the batch, the others being 0. ``exact``:
    every product and sum is a whole number (binary x, ternary dy), so the summation order is free;
    then a thin dy (the output layer's) takes the BLAS call that is several times faster there,
    ``(dy^T x)^T``."""
    if isinstance(x, BinaryRows):
        return x.t_mm(dy, live)
    x = x if live is None else x.index_select(0, live)
    return dy.t().mm(x).t() if exact and dy.shape[1] <= 32 else x.t().mm(dy)


class Rules:
    """The F/E/D choices, shape a, tie rule and random generator shared by every neuron.

    ``log`` collects the conv nets' per-layer statistics as tensors (no host synchronisation on the
    training path); :class:`FloatLearner` reads them all at once at the end of the step."""

    def __init__(self, cfg: TrainConfig, gen):
        self.F, self.E, self.D = cfg.F, cfg.E, cfg.D
        self.a, self.tie, self.k, self.gen = cfg.a, cfg.tie, cfg.deriv_k, gen
        self.log = {}

    def record(self, key, value):
        self.log.setdefault(key, []).append(value)

    def record_nonzero(self, dy):
        """The fraction of nonzero entries of ``dy`` (a 0-d tensor, read later)."""
        self.record("dy_nonzero", dy.count_nonzero() / dy.numel())


# ---- networks ----------------------------------------------------------------------------------

def architecture(cfg: TrainConfig):
    """Layer list of the configured net: dicts with kind, shapes, pool and flatten flags.

    fc  : 784-500-200-10 (Fig. 2a), or ``side^2``-hidden-10.
    cnn : conv 8@9x9 -> pool -> conv 12@5x5 -> pool -> FC 108x10 (Fig. 4a).
    vgg : [conv 3x3 pad] x2 -> pool, three times (32, 64, 128 channels) -> FC 2048-512-128-10
          (Fig. 4f's VGG style; the figure's exact widths are not in the text, these are ours).
    """
    if cfg.net == "fc":
        sizes = cfg.sizes
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

    FC weights are stored as ``[fan_in, fan_out]`` (the crossbar's layout; ``W.w`` is its transposed
    view, ``[fan_out, fan_in]``), so every product of the hand-written FC pass is a plain BLAS call
    or a sum of rows. ``SPARSE``: on the CPU, the F:S input layer runs as :class:`BinaryRows` when at
    most this fraction of the batch's pixels is nonzero (MNIST: ~0.19). ``SKIP_ERROR_FREE``: the
    backward of an FC net skips the samples whose output error is 0 (see :meth:`_fc_pass`).

    Implements the learner interface the training loop uses (the exact mode, bshw.golden.exact, has
    the same one): ``train_batch``, ``predict``, ``state_dict``/``load_state_dict``,
    ``float_weights``, ``hidden_activations`` and ``layers``.
    """

    SPARSE = 0.5
    SKIP_ERROR_FREE = True

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        init_gen = torch.Generator().manual_seed(cfg.seed)
        self.gen = make_generator(cfg.seed + 1, self.device)  # every training draw
        self.arch = architecture(cfg)
        self.layers = describe_network(cfg)
        # The weight-kind generator (stochastic rounding, memristor write noise) is its own stream.
        self.wgen = torch.Generator(self.device).manual_seed(cfg.seed + 2)
        self.weights = []
        for L in self.arch:
            w0 = init_weight(L, init_gen, cfg.init_gain).to(self.device)
            if L["kind"] == "fc":  # [fan_in, fan_out] storage, the same values
                w0 = w0.t().contiguous().t()
            self.weights.append(make_weights(w0, cfg, self.wgen))
        self.rules = Rules(cfg, self.gen)

    # -- one pass ---------------------------------------------------------------------------------
    def _pixels(self, x):
        """uint8 images as the first layer takes them: ``[B, side^2]`` (fc) or ``[B, C, H, W]``."""
        x = x.to(self.device)
        if self.cfg.net == "fc":
            return downsample(x, self.cfg.input_side).flatten(1)
        return x[:, None] if x.dim() == 3 else x

    def _inputs(self, x):
        return to_unit(self._pixels(x))

    def _linear(self, L, x, w):
        return F.linear(x, w) if L["kind"] == "fc" else F.conv2d(x, w, padding=L["pad"])

    def _forward(self, p, method, weights, rules=None, record=None):
        """Membrane potentials of the output layer. ``method``: hp | binary | stochastic (inference;
        training goes through :meth:`_fc_pass` or :meth:`_train_loss`)."""
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

    def _sample_input(self, pixels):
        """The first layer's x: ``p = pixels / 255`` (F:H) or ``Bernoulli(p)`` (F:S; Methods "The
        input to the first layer"), as :class:`BinaryRows` drawn only at the nonzero pixels where
        few are (on the CPU: finding them would be a host synchronisation on an accelerator)."""
        if self.cfg.F and pixels.device.type == "cpu":
            lit = BinaryRows.lit(pixels)
            if len(lit) <= self.SPARSE * pixels.numel():
                return BinaryRows.sample(pixels, lit, self.gen)
        p = to_unit(pixels)
        return bernoulli(p, self.gen) if self.cfg.F else p

    def _fc_pass(self, pixels, t):
        """The training pass of an FC net by hand, one forward and one fused backward step per layer
        and no autograd graph. Forward ``z = sigma(a x W^T)``, ``x' ~ Bernoulli(z)`` (F:S) or ``z``;
        output ``dy = z_B - t`` (Eq. 6) or ``z - t`` (Eq. 5); backward per hidden layer ``dy = dz d``
        (:func:`neuron_backward`), then the summed gradient ``dW^T = x^T dy`` (Eqs. 1-2) and the
        error below ``dx = dy W``. Returns the gradients ``[fan_out, fan_in]`` and the statistics
        (:meth:`_pass`)."""
        r, n = self.rules, len(self.weights)
        wts = [W.w.t() for W in self.weights]  # the [fan_in, fan_out] storage (W.w is its view)
        xs, zs = [self._sample_input(pixels)], []
        for wt in wts[:-1]:
            z = xs[-1].mm(wt).mul_(r.a).sigmoid_()
            zs.append(z), xs.append(bernoulli(z, r.gen) if r.F else z)
        logz = torch.log_softmax(xs[-1].mm(wts[-1]), dim=1)
        loss = F.nll_loss(logz, t, reduction="sum")
        z = logz.exp_()
        dy = (bernoulli(z, r.gen) if r.E else z).scatter_add_(1, t[:, None], z.new_full((len(t), 1), -1.0))
        # A sample whose output dy is 0 (z_B = t) has dy = 0 in every layer below: dx = 0 there, so
        # dz = sign(0) = 0 under the zero tie rule, or dz = dx = 0 in E:H. The backward runs on the
        # ``live`` samples only (on the CPU: finding them would be a host sync on an accelerator).
        live = None
        if self.SKIP_ERROR_FREE and pixels.device.type == "cpu" and not (r.E and r.tie != "zero"):
            live = dy.any(1).nonzero().squeeze(1)
            live, dy = (None, dy) if len(live) == len(dy) else (live, dy.index_select(0, live))
        grads, dy_nonzero, dx = [None] * n, [None] * n, None
        for l in reversed(range(n)):
            if l < n - 1:  # dx: the error at this layer's output, from the layer above
                dy = neuron_backward(dx, zs[l] if live is None else zs[l].index_select(0, live), r)
            ternary = r.E and (r.D or l == n - 1)  # dy in {-1, 0, 1}: count = sum |dy| (cheaper)
            dy_nonzero[l] = (dy.abs().sum() if ternary else dy.count_nonzero(), len(t) * dy.shape[1])
            grads[l] = t_mm(xs[l], dy, live, exact=r.F and ternary).t()
            if l > 0:
                dx = dy.mm(self.weights[l].w)
        return grads, [(loss, len(t)), *[(x.sum(), math.prod(x.shape)) for x in xs], *dy_nonzero]

    def _train_loss(self, p, t, weights, rules, record):
        """The conv nets' training pass through autograd: summed loss (backward gives the summed
        weight gradients); each weight layer is its linear/conv op + :class:`_Neuron`, the output
        :class:`_SoftmaxOutput`. ``record`` gets each layer's mean input (0-d tensors)."""
        x = bernoulli(p, self.gen) if self.cfg.F else p
        for i, (L, w) in enumerate(zip(self.arch, weights)):
            record.append(x.mean())
            y = self._linear(L, x, w)
            if i == len(self.arch) - 1:
                return _SoftmaxOutput.apply(y, t, rules)
            x = _Neuron.apply(y, rules, L.get("pool", False))
            if L.get("flatten"):
                x = x.flatten(1)

    def _pass(self, x, t):
        """One BS/HP pass: the summed weight gradients and the statistics, unread: pairs (0-d
        tensor, divisor) of the loss, then each layer's x_active, then each layer's dy_nonzero."""
        t = t.to(self.device)
        if self.cfg.net == "fc":
            return self._fc_pass(self._pixels(x), t)
        ws = [W.w.detach().requires_grad_() for W in self.weights]
        self.rules.log, x_active = {}, []
        loss = self._train_loss(self._inputs(x), t, ws, self.rules, x_active)
        loss.backward()
        stats = [loss, *x_active, *self.rules.log["dy_nonzero"][::-1]]  # backward ran output first
        return [w.grad for w in ws], [(loss, len(t))] + [(v, 1) for v in stats[1:]]

    @staticmethod
    def _read(stats, n_layers):
        """Every statistic in one read (one host synchronisation per batch on an accelerator):
        the loss per sample, the activity dicts and any further values."""
        vals = [v / d for v, (_, d) in zip(torch.stack([v for v, _ in stats]).tolist(), stats)]
        act = [{"x_active": xa, "dy_nonzero": dn} for xa, dn in zip(vals[1:1 + n_layers], vals[1 + n_layers:])]
        return vals[0], act, vals[1 + 2 * n_layers:]

    # -- learner interface -------------------------------------------------------------------------
    def gradients(self, x, t):
        """One BS/HP pass over a batch: the summed weight gradients (whole numbers in SSS) and the
        loss and per-layer activity, without touching the weights."""
        grads, stats = self._pass(x, t)
        loss, activity, _ = self._read(stats, len(grads))
        return grads, loss, activity

    def train_batch(self, x, t):
        grads, stats = self._pass(x, t)
        changed = [W.step(g) for W, g in zip(self.weights, grads)]  # weights changed (0-d tensors)
        loss, activity, frac = self._read(stats + [(c, g.numel()) for c, g in zip(changed, grads) if c is not None],
                                          len(grads))
        frac = iter(frac)
        for a, c in zip(activity, changed):
            a["carries_per_weight"] = None if c is None else next(frac)
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
        return [W.w.detach().cpu().contiguous() for W in self.weights]

    def state_dict(self):
        return {"weights": [W.state_dict() for W in self.weights], "gen": generator_state(self.gen),
                "wgen": self.wgen.get_state()}

    def load_state_dict(self, d):
        from bshw.golden.train import check_state_like

        check_state_like(d, self.state_dict(), "state")  # copy_ would broadcast a wrong shape
        for W, s in zip(self.weights, d["weights"]):
            W.load_state_dict(s)
        set_generator_state(self.gen, d["gen"])
        self.wgen.set_state(d["wgen"])


def make_learner(cfg: TrainConfig):
    """The learner for ``cfg.mode``: this float model, or the hardware-exact one."""
    if cfg.mode == "exact":
        from bshw.golden.exact import make_learner as make_exact

        return make_exact(cfg)
    return FloatLearner(cfg)
