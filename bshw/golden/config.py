"""One training configuration: CLI flags and TOML files both end up here, validated once."""

import dataclasses
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path


from bshw.errors import BshwError

NETS = ("fc", "cnn", "vgg")
TIES = ("plus", "zero", "random")
DATASETS = ("mnist", "fashion-mnist", "cifar10")
NAMED_BITS = {"int8": 8, "int4": 4, "ternary": 2}  # ternary: levels {-1, 0, +1} (2-bit signed, -2 unused)
SEED_LIMIT = 1 << 63  # seeds are 0 <= seed < 2**63 (torch.Generator.manual_seed, the LFSR seeding)
MAX_WIDTH = 100_000  # neurons per hidden layer
MAX_BATCH = 10_000_000
MAX_EPOCHS = 1_000_000
MAX_REAL = 1e6  # a, w_range, init_gain, lr
DEVICE = re.compile(r"cpu|cuda(:[0-9]+)?")
# top-level tables a config file may hold besides [train] (bshw flow's file has [flow])
OTHER_TABLES = ("flow",)


@dataclass
class TrainConfig:
    """Everything that decides a training run.

    Parameters
    ----------
    net : {"fc", "cnn", "vgg"}
        ``fc`` is 784-``hidden``-10 (default 784-500-200-10, paper Fig. 2a); ``cnn`` the MNIST CNN of
        Fig. 4a; ``vgg`` the CIFAR-10 net of Fig. 4f.
    algo : str
        Three letters, each ``H`` (high precision) or ``S`` (stochastic/sign), for forwarding F,
        error E and derivative D, in that order: ``HHH`` is HP learning, ``SSS`` BS learning.
    tie : {"plus", "zero", "random"}
        What sign(dx) gives where dx == 0 in E:S (``zero``: dz = 0, the default; ``plus``: the
        paper's literal sign(0) = +1; ``random``: +1 or -1 with equal odds). See docs/algorithm.md.
        The float model's rule only: the exact mode (and so the RTL) follows ``hw.tie`` (default
        ``gated``, docs/arithmetic.md §7), which a trace header records as ``params.tie``; there
        ``config.tie`` is the unused float default, and ``bshw train --mode exact --tie`` is refused.
    deriv_k : int or None
        D:S only. None: the ideal Bernoulli draw of min(1, a z (1 - z)). 1, 2 or 4: the hardware
        form, k independent pairs (A AND NOT B) OR-ed together (paper Eq. 4 and its k-fold OR).
    a : float
        Shape of the logistic activation z = 1 / (1 + exp(-a y)).
    weights : str
        ``fp32``, ``int8``, ``int4``, ``ternary``, ``intN`` (any N >= 2) for periodic-carry integer
        weights, or ``memristor`` for the device model of Eqs. 7-9 driven by periodic carry.
    w_range : float or None
        Integer and memristor weights span [-w_range, w_range] in float units (paper: w_min = -1,
        w_max = 1); the integer scale is w_range / 2**(bits - 1). None: 1.0 for memristor and for
        integers of 6 bits or more, 0.25 for 3 to 5 bits, 0.1 for ternary (docs/algorithm.md).
    mode : {"float", "exact"}
        ``float``: this package's torch model; ``exact``: the hardware-exact integer mode of
        docs/arithmetic.md (bshw.golden.exact).
    """

    net: str = "fc"
    hidden: tuple = (500, 200)
    algo: str = "SSS"
    tie: str = "zero"
    deriv_k: int | None = None
    a: float = 4.0
    weights: str = "fp32"
    w_range: float | None = None
    init_gain: float = 2.0  # initial weights uniform in +-init_gain/sqrt(fan_in)
    lr: float | None = None  # None: the net's default (0.1; 0.01 for vgg)
    batch: int = 100
    epochs: int = 10
    seed: int = 0
    dataset: str | None = None  # None: mnist, or cifar10 for vgg
    data: str | None = None
    train_limit: int | None = None  # use only the first N training samples (quick runs)
    test_limit: int | None = None
    votes: int = 10  # R of the stochastic majority-vote inference
    device: str = "cpu"
    mode: str = "float"
    out: str | None = None
    input_side: int = 28  # MNIST-like images are area-downsampled to side x side (bshw.golden.inputs)
    memristor: dict = field(default_factory=dict)  # overrides of bshw.golden.weights.MemristorParams
    hw: dict = field(default_factory=dict)  # overrides of the exact mode's hardware parameters

    def __post_init__(self):
        self.validate()

    # -- derived -------------------------------------------------------------------------
    @property
    def F(self) -> bool:  # True: stochastic binary forwarding
        return self.algo[0] == "S"

    @property
    def E(self) -> bool:  # True: sign errors
        return self.algo[1] == "S"

    @property
    def D(self) -> bool:  # True: sampled binary derivative
        return self.algo[2] == "S"

    @property
    def sizes(self) -> list:
        """Layer widths ``[n0, hidden..., 10]`` of the fc net (§1): ``input_side^2`` pixels in."""
        return [self.input_side ** 2, *self.hidden, 10]

    @property
    def bits(self) -> int | None:
        """Integer weight width, or None for fp32 and memristor weights."""
        w = self.weights.lower()
        if w in NAMED_BITS:
            return NAMED_BITS[w]
        if w.startswith("int"):
            return int(w[3:])
        return None

    @property
    def weight_range(self) -> float:
        """The float span +-W of integer/memristor weights (w_range, or the width's default)."""
        if self.w_range is not None:
            return float(self.w_range)
        b = self.bits
        return 1.0 if b is None or b >= 6 else 0.25 if b >= 3 else 0.1

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.net == "vgg" else 0.1)

    @property
    def dataset_name(self) -> str:
        return self.dataset or ("cifar10" if self.net == "vgg" else "mnist")

    def validate(self):
        """Check every field's type and range; raise one BshwError naming the field and the value.

        The one validation layer between TOML files, the command line, saved config.json / trace
        headers and the learners. Whole numbers must be ``int`` (``true`` is not a number), real
        numbers finite, strings strings; ``hw`` and ``memristor`` tables are checked key by key.
        """
        def bad(name, value, want):
            raise BshwError(f"{name} = {value!r} is not valid: {want}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def is_real(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def whole(name, lo, hi=None, optional=False, want=None):
            v = getattr(self, name)
            if v is None and optional:
                return
            if not is_int(v) or v < lo or (hi is not None and v > hi):
                bad(name, v, want or (f"a whole number from {lo} to {hi}" if hi is not None
                                      else f"a whole number >= {lo}") + (" or unset" if optional else ""))

        def text(name, optional=False):
            v = getattr(self, name)
            if not (isinstance(v, str) or (optional and v is None)):
                bad(name, v, "a string" + (" or unset" if optional else ""))

        for name in ("net", "algo", "tie", "weights", "device", "mode"):
            text(name)
        for name in ("dataset", "data", "out"):
            text(name, optional=True)
        if self.net not in NETS:
            bad("net", self.net, f"choose one of {', '.join(NETS)}")
        if not (len(self.algo) == 3 and set(self.algo.upper()) <= {"H", "S"}):
            bad("algo", self.algo, "three letters H or S for forwarding, error, derivative (e.g. SSS, HHH, SHS)")
        self.algo = self.algo.upper()
        if self.tie not in TIES:
            bad("tie", self.tie, f"choose one of {', '.join(TIES)}")
        if self.deriv_k is not None and (not is_int(self.deriv_k) or self.deriv_k not in (1, 2, 4)):
            bad("deriv_k", self.deriv_k, "1, 2 or 4 flip-flop pairs, or unset for the ideal draw")
        w = self.weights.lower()
        if w.startswith("int") and w not in NAMED_BITS:
            if not (w[3:].isascii() and w[3:].isdigit()):
                bad("weights", self.weights, "fp32, int8, int4, ternary, intN or memristor")
            if int(w[3:]) < 2:
                bad("weights", self.weights, "an integer weight needs at least 2 bits")
            if int(w[3:]) > 24:
                bad("weights", self.weights, "at most 24 bits (exact in float32)")
        elif w not in ("fp32", "memristor") and w not in NAMED_BITS:
            bad("weights", self.weights, "fp32, int8, int4, ternary, intN or memristor")
        self.weights = w
        if not isinstance(self.hidden, (list, tuple)):
            bad("hidden", self.hidden, "a list of positive layer sizes, e.g. [500, 200] (empty: a single-layer net)")
        self.hidden = tuple(self.hidden)
        if any(not is_int(h) or not 1 <= h <= MAX_WIDTH for h in self.hidden):
            bad("hidden", self.hidden, f"positive layer sizes up to {MAX_WIDTH} (none: a single-layer net)")
        whole("batch", 1, MAX_BATCH)
        whole("epochs", 0, MAX_EPOCHS)
        whole("votes", 1, 1000)
        whole("seed", 0, SEED_LIMIT - 1, want="a whole number from 0 to 2**63 - 1")
        whole("train_limit", 1, optional=True)
        whole("test_limit", 1, optional=True)
        whole("input_side", 2, 28)
        for name, optional in (("a", False), ("w_range", True), ("init_gain", False), ("lr", True)):
            v = getattr(self, name)
            if v is None and optional:
                continue
            if not is_real(v) or not 0 < v <= MAX_REAL:
                bad(name, v, f"a finite number > 0 and <= {MAX_REAL:g}" + (" or unset" if optional else ""))
        if self.dataset is not None and self.dataset not in DATASETS:
            bad("dataset", self.dataset, f"choose one of {', '.join(DATASETS)}")
        if not DEVICE.fullmatch(self.device):
            bad("device", self.device, "cpu, cuda or cuda:N")
        if self.mode not in ("float", "exact"):
            bad("mode", self.mode, "float or exact")
        for name in ("data", "out"):
            v = getattr(self, name)
            if v is not None and (not v.strip() or "\0" in v):
                bad(name, v, "a path")
        if not isinstance(self.hw, dict):
            bad("hw", self.hw, "a table of hardware parameters")
        if not isinstance(self.memristor, dict):
            bad("memristor", self.memristor, "a table of device parameters")
        if self.hw:
            from bshw.golden.exact.params import ExactParams

            ExactParams.from_dict(dict(self.hw))
        if self.memristor:
            _check_memristor(self.memristor)

    # -- conversion ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "TrainConfig":
        """A validated config from a dict (TOML table, config.json, trace header); every error is
        one BshwError that starts with ``where`` (the file or "command line")."""
        if not isinstance(d, dict):
            raise BshwError(f"{where}: expected a table of training settings, got {d!r:.60}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known, key=str)
        if unknown:
            raise BshwError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            return cls(**d)
        except BshwError as e:
            raise BshwError(f"{where}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:  # defensive: a type the checks missed
            raise BshwError(f"{where}: {e}") from None

    @staticmethod
    def read_toml(path) -> dict:
        """The training settings of a TOML file: its ``[train]`` table, else its top-level keys.

        Besides ``[train]`` a file may hold the tables of :data:`OTHER_TABLES` (``[flow]``); any
        other top-level key or table is refused, naming it.
        """
        from bshw.io import read_toml

        path = Path(path)
        d = read_toml(path)
        if "train" in d:
            if not isinstance(d["train"], dict):
                raise BshwError(f"{path}: train = {d['train']!r:.60} is not valid: a [train] table of settings")
            extra = sorted(k for k in d if k != "train" and k not in OTHER_TABLES)
            if extra:
                what = "table" if isinstance(d[extra[0]], dict) else "key"
                raise BshwError(f"{path}: unknown top-level {what} {extra[0]!r} beside [train] "
                                f"(allowed: train, {', '.join(OTHER_TABLES)})")
            return dict(d["train"])
        tables = sorted(k for k, v in d.items() if isinstance(v, dict) and k not in ("hw", "memristor"))
        if tables:
            raise BshwError(f"{path}: unknown table [{tables[0]}] (put the settings in a [train] table)")
        return d

    @classmethod
    def from_toml(cls, path, overrides: dict | None = None) -> "TrainConfig":
        d = cls.read_toml(path)
        d.update(overrides or {})
        return cls.from_dict(d, where=str(path))


def _check_memristor(d: dict):
    """The ``memristor`` table: known keys of bshw.golden.weights.MemristorParams, finite numbers."""
    from bshw.golden.weights import MemristorParams

    types = {f.name: f.type for f in fields(MemristorParams)}
    for k, v in d.items():
        if k not in types:
            raise BshwError(f"memristor: unknown key {k!r} (known: {', '.join(sorted(types))})")
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and (types[k] not in (int, "int") or isinstance(v, int)))
        if not ok:
            want = "a whole number" if types[k] in (int, "int") else "a finite number"
            raise BshwError(f"memristor.{k} = {v!r} is not valid: {want}")
    MemristorParams.from_dict(d)  # ranges (g_max > g_min >= 0, ...)
