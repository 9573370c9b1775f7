"""Hardware parameters of the exact mode (``TrainConfig.hw``), defaults and validation
(docs/arithmetic.md §12): :class:`ExactParams` holds a configuration's overrides,
:meth:`ExactParams.resolve` turns them into the typed :class:`bshw.hwparams.HwParams` that every
implementation takes."""

from dataclasses import asdict, dataclass, fields

from bshw.core import (
    OUTPUTS,
    check_choice,
    check_deriv_k,
    check_int,
    check_noise_words,
    check_tie,
)
from bshw.errors import BshwError
from bshw.golden.exact.carry import default_counter_bits, threshold
from bshw.golden.exact.device import DeviceModel
from bshw.golden.exact.noise import auto_words
from bshw.hwparams import HwParams


@dataclass
class ExactParams:
    """Overrides from ``cfg.hw``; ``None``/``"auto"`` mean "derive from the config".

    Parameters
    ----------
    noise_words : "auto" or list of int
        Widths of the uniform LFSR words summed into a neuron's noise (§4), 1-4 words of 1-16 bits,
        at most 32 bits in all. ``auto``: the 3 widths closest to ``sigma(a s y)``.
    deriv_k : int or None
        Derivative pairs OR-ed together (1, 2, 4); None: ``cfg.deriv_k``, else 4.
    tie : {"gated", "zero", "plus"}
        Rule for ``dx == 0`` (§7).
    output : {"onchip", "host"}
        Output layer form (§7).
    th : int or None
        Carry threshold; None: ``round(s * batch / lr)``.
    counter_bits : int or None
        Signed counter width; None: the least that never saturates.
    device : str or dict
        The memristor device model of the array (§16): a preset name (``ideal``, the default and
        today's integer weights; ``paper-fig5``; ``32-level``) or ``{"preset": name, overrides...}``
        (:class:`bshw.golden.exact.device.DeviceModel`).
    """

    noise_words: object = "auto"
    deriv_k: int | None = None
    tie: str = "gated"
    output: str = "onchip"
    th: int | None = None
    counter_bits: int | None = None
    device: object = "ideal"

    @classmethod
    def from_dict(cls, d: dict) -> "ExactParams":
        if not isinstance(d, dict):
            raise BshwError(f"hw = {d!r:.60} is not valid: a table of hardware parameters")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known, key=str)
        if bad:
            raise BshwError(f"hw: unknown key {bad[0]!r} (known: {', '.join(sorted(known))})")
        p = cls(**d)
        p.validate()
        return p

    def validate(self):
        """Each override against the one rule of :mod:`bshw.core` that :class:`HwParams` and the HDL
        components use; BshwError ``hw.<name> = <value> is not valid: <rule>``."""
        def optional(check):
            return lambda v: v is None or check(v)

        rules = {"noise_words": lambda v: v == "auto" or check_noise_words(v),
                 "deriv_k": optional(check_deriv_k), "tie": check_tie,
                 "output": lambda v: check_choice("output", v, OUTPUTS),
                 "th": optional(lambda v: check_int("th", v, 1, (1 << 31) - 1)),
                 "counter_bits": optional(lambda v: check_int("counter_bits", v, 2, 32))}
        for name, check in rules.items():
            v = getattr(self, name)
            try:
                check(v)
            except (TypeError, ValueError) as e:
                raise BshwError(f"hw.{name} = {v!r} is not valid: {e}") from None
        try:
            DeviceModel.from_spec(self.device)
        except ValueError as e:
            raise BshwError(f"hw.{e}" if str(e).startswith("device") else f"hw.device: {e}") from None

    def resolve(self, cfg) -> HwParams:
        """All numbers of the hardware for ``cfg`` (the trace header's ``params``, §11)."""
        if cfg.net != "fc":
            raise BshwError(f"net = {cfg.net!r}: the exact mode implements the fc net only")
        if cfg.algo != "SSS":
            raise BshwError(f"algo = {cfg.algo!r}: the exact mode is binary stochastic learning, algo SSS")
        b = cfg.bits
        if b is None:
            raise BshwError(f"weights = {cfg.weights!r}: the exact mode needs integer weights "
                            "(int8, int4, ternary or intN)")
        scale = cfg.weight_range / (1 << (b - 1))
        wmin, wmax = (-1, 1) if cfg.weights == "ternary" else (-(1 << (b - 1)), (1 << (b - 1)) - 1)
        words = tuple(auto_words(cfg.a * scale) if self.noise_words == "auto" else self.noise_words)
        device = DeviceModel.from_spec(self.device)
        dev = None
        if not device.is_default:  # §16: the ideal device adds no key, so every figure stays as it was
            try:
                dev = device.resolve(wmin, wmax, cfg.seed)
            except ValueError as e:
                raise BshwError(f"hw.{e}") from None
        # §16: one carry is worth the device's nominal pulse at g_ref (one LSB for the ideal device)
        unit = scale if dev is None else scale * dev["nominal"] / (1 << dev["frac_bits"])
        th = self.th or threshold(unit, cfg.batch, cfg.learning_rate)
        cb = self.counter_bits or default_counter_bits(th, cfg.batch)
        if cb > 32:
            raise BshwError(f"the carry threshold th = {th} (scale {scale:g} x batch {cfg.batch} / lr "
                            f"{cfg.learning_rate:g}) needs a {cb}-bit counter; at most 32 bits: raise lr "
                            "or set hw.th")
        if (1 << (cb - 1)) - 1 < th:
            raise BshwError(f"hw.counter_bits = {cb} cannot hold the carry threshold th = {th}")
        k = self.deriv_k or cfg.deriv_k or 4
        try:
            return HwParams(noise_words=words, deriv_k=k, tie=self.tie, output=self.output, th=th,
                            counter_bits=cb, weight_bits=b, wmin=wmin, wmax=wmax, scale=scale, a=cfg.a,
                            device=dev)
        except (TypeError, ValueError) as e:
            raise BshwError(f"hw: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)


# docs/arithmetic.md §1: the default hardware network (64-32-10 on 8x8 MNIST, INT8)
DEFAULT_NET = {"hidden": (32,), "input_side": 8, "weights": "int8"}


def config_from_args(args, keys, fixed: dict | None = None, where: str = "cli"):
    """The exact-mode ``TrainConfig`` of a command line (``bshw trace``, ``bshw rtl``).

    ``keys``: the argparse attributes that override the config when given (``hidden`` becomes a
    tuple); ``args.hw``: hardware parameters as JSON; ``args.config``: a TOML with a [train] table,
    else the §1 default network. ``fixed`` (e.g. ``{"mode": "exact"}``) is applied last.
    """
    import json

    from bshw.golden.config import TrainConfig

    over = {}
    for k in keys:
        v = getattr(args, k)
        if v is not None:
            over[k] = tuple(v) if k == "hidden" else v
    if getattr(args, "hw", None):
        try:
            over["hw"] = json.loads(args.hw)
        except json.JSONDecodeError as e:
            raise BshwError(f"--hw is not valid JSON: {e}") from None
    over.update(fixed or {"mode": "exact"})
    if getattr(args, "config", None):
        d = TrainConfig.read_toml(args.config)
        d.update(over)
        if d.get("mode") == "exact":
            d.setdefault("weights", DEFAULT_NET["weights"])  # the hardware's INT8 (§1), not fp32
        return TrainConfig.from_dict(d, where=str(args.config))
    return TrainConfig.from_dict({**DEFAULT_NET, **over}, where=where)
