"""One training configuration: CLI flags and TOML files both end up here, validated once."""

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from golden.errors import BshwError

NETS = ("fc", "cnn", "vgg")
TIES = ("plus", "zero", "random")
DATASETS = ("mnist", "fashion-mnist", "cifar10")
NAMED_BITS = {"int8": 8, "int4": 4, "ternary": 2}  # ternary: levels {-1, 0, +1} (2-bit signed, -2 unused)


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
        docs/arithmetic.md (golden.exact).
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
    input_side: int = 28  # MNIST-like images are area-downsampled to side x side (golden.inputs)
    memristor: dict = field(default_factory=dict)  # overrides of golden.weights.MemristorParams
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
        def bad(name, value, want):
            raise BshwError(f"{name} = {value!r} is not valid: {want}")

        if self.net not in NETS:
            bad("net", self.net, f"choose one of {', '.join(NETS)}")
        if not (isinstance(self.algo, str) and len(self.algo) == 3 and set(self.algo.upper()) <= {"H", "S"}):
            bad("algo", self.algo, "three letters H or S for forwarding, error, derivative (e.g. SSS, HHH, SHS)")
        self.algo = self.algo.upper()
        if self.tie not in TIES:
            bad("tie", self.tie, f"choose one of {', '.join(TIES)}")
        if self.deriv_k is not None and self.deriv_k not in (1, 2, 4):
            bad("deriv_k", self.deriv_k, "1, 2 or 4 flip-flop pairs, or unset for the ideal draw")
        w = str(self.weights).lower()
        if w.startswith("int") and w not in NAMED_BITS:
            if not w[3:].isdigit():
                bad("weights", self.weights, "fp32, int8, int4, ternary, intN or memristor")
            if int(w[3:]) < 2:
                bad("weights", self.weights, "an integer weight needs at least 2 bits")
            if int(w[3:]) > 24:
                bad("weights", self.weights, "at most 24 bits (exact in float32)")
        elif w not in ("fp32", "memristor") and w not in NAMED_BITS:
            bad("weights", self.weights, "fp32, int8, int4, ternary, intN or memristor")
        self.weights = w
        self.hidden = tuple(self.hidden)
        if any((not isinstance(h, int)) or h < 1 for h in self.hidden):
            bad("hidden", self.hidden, "positive layer sizes (none: a single-layer net)")
        for name in ("batch", "votes"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                bad(name, v, "a positive whole number")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            bad("epochs", self.epochs, "a whole number >= 0")
        if self.votes > 1000:
            bad("votes", self.votes, "at most 1000 repetitions")
        for name in ("train_limit", "test_limit"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                bad(name, v, "a positive whole number or unset")
        for name in ("a", "w_range", "init_gain"):
            v = getattr(self, name)
            if v is None and name == "w_range":
                continue
            if not isinstance(v, (int, float)) or not v > 0:
                bad(name, v, "a positive number")
        if self.lr is not None and (not isinstance(self.lr, (int, float)) or not self.lr > 0):
            bad("lr", self.lr, "a positive number")
        if self.dataset is not None and self.dataset not in DATASETS:
            bad("dataset", self.dataset, f"choose one of {', '.join(DATASETS)}")
        if self.mode not in ("float", "exact"):
            bad("mode", self.mode, "float or exact")
        if not isinstance(self.input_side, int) or not 2 <= self.input_side <= 28:
            bad("input_side", self.input_side, "a whole number from 2 to 28")
        if not isinstance(self.hw, dict):
            bad("hw", self.hw, "a table of hardware parameters")
        if not isinstance(self.memristor, dict):
            bad("memristor", self.memristor, "a table of device parameters")

    # -- conversion ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise BshwError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
        try:
            return cls(**d)
        except TypeError as e:  # wrong type deep inside a comparison
            raise BshwError(f"{where}: {e}") from None

    @classmethod
    def from_toml(cls, path, overrides: dict | None = None) -> "TrainConfig":
        path = Path(path)
        try:
            d = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BshwError(f"config file {path} does not exist") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise BshwError(f"config file {path} is not valid TOML: {e}") from None
        d = d.get("train", d)  # either a [train] table or top-level keys
        d.update(overrides or {})
        return cls.from_dict(d, where=str(path))
