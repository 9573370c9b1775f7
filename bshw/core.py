"""The dependency-free core shared by the HDL, the golden model and the benches: the LFSRs and stream
seeding of §3, the rules that every hardware parameter obeys (one definition each, §4, §6, §7, §9,
§12), and the clock formula of the periphery's operations (docs/arithmetic.md §15).

Nothing here imports torch, numpy or Amaranth, so every layer above may use it: the golden model
(bshw/golden/exact/lfsr.py) and the HDL (bshw/lfsr.py) take the LFSR definitions of §3 from here,
and :class:`bshw.hwparams.HwParams` and the HDL components validate with the checks below.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class LfsrSpec:
    """A shift-left Fibonacci LFSR: ``new = parity(state & tapmask)``, ``state = state << 1 | new``."""

    width: int
    taps: tuple  # state bit positions XOR-ed into the new bit

    @property
    def tapmask(self) -> int:
        return sum(1 << t for t in self.taps)

    @property
    def mask(self) -> int:
        return (1 << self.width) - 1


N32 = LfsrSpec(32, (31, 21, 1, 0))  # x^32 + x^22 + x^2 + x + 1, neuron noise
I16 = LfsrSpec(16, (15, 14, 12, 3))  # x^16 + x^15 + x^13 + x^4 + 1, input sampling


MASK64 = (1 << 64) - 1
TIE_RULES = ("gated", "zero", "plus")  # §7: the rule for dx == 0
OUTPUTS = ("onchip", "host")  # §7: the output layer's form
DERIV_K = (1, 2, 4)  # §6: derivative pairs OR-ed together


def splitmix64(z: int) -> int:
    """One output of SplitMix64 for state ``z`` (§3 stream seeding, §16 device hashes)."""
    z = (z + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def seed_state(seed: int, stream: int, spec: LfsrSpec) -> int:
    """Initial state of stream ``stream`` for run seed ``seed`` (§3; never 0)."""
    return (splitmix64(((seed << 32) + stream) & MASK64) & spec.mask) or 1


def stream_id(layer: int, neuron: int) -> int:
    """Stream number of neuron ``neuron`` (0-based) of weight layer ``layer`` (1-based, §3); pixel i
    is stream i. Layer ``L + 1`` is the host generator of the host-mode output layer (§7)."""
    return layer * (1 << 20) + neuron


def initial_lfsr_states(sizes, seed: int, output: str = "onchip") -> dict:
    """The reset states of every LFSR of a net with layer widths ``sizes`` for run seed ``seed`` (§3,
    §10): ``{"lfsr_in": [...], "lfsr": [[...] per layer], "host_lfsr": [...] or None}``, as in the
    trace header's ``init``. The golden learner and the RTL generator both start from this; in host
    mode (§7) the output layer has no neuron LFSRs (``None``) and the host generator has 10 streams."""
    L = len(sizes) - 1
    lfsr = [[seed_state(seed, stream_id(l, j), N32) for j in range(sizes[l])]
            if l < L or output == "onchip" else None for l in range(1, L + 1)]
    host = [seed_state(seed, stream_id(L + 1, j), N32) for j in range(10)] if output == "host" else None
    return {"lfsr_in": [seed_state(seed, i, I16) for i in range(sizes[0])], "lfsr": lfsr, "host_lfsr": host}


def check_int(name, value, lo, hi=None):
    """``value`` if it is an int (not a bool) in ``[lo, hi]``; else TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return value


INPUT_LANES = 16  # §15: pixels the input samplers draw per clock, by default


def op_cycles(op: str, sizes, k: int, read_latency: int = 1, acc_rows=None, input_lanes: int = INPUT_LANES) -> int:
    """Clocks of one operation, from the ``start`` clock to the ``done`` clock inclusive (§15).

    ``acc_rows``: for ``train``, the rows each layer's accumulate walks (``popcount(x^{l-1})``, or 0
    when the layer's error is all zero), one entry per layer. ``input_lanes``: pixels drawn per
    clock; the input draw walks ``ceil(sizes[0] / input_lanes)`` words.
    """
    L, lat = len(sizes) - 1, read_latency
    sample = sample_words(sizes[0], input_lanes)
    if op == "train":
        draws = [1 + 2 * k] * (L - 1) + [1]
        walk = max((n + 2 if n else 1) for n in acc_rows)
        return 1 + sample + sum(lat + d for d in draws) + (L - 1) * lat + 1 + walk + 1
    if op == "infer":
        return 1 + sample + (L - 1) * (lat + 1) + lat + 1
    if op == "binary":
        return 1 + L * lat + 1
    if op == "carry":
        return max(sizes[:-1]) + 4
    raise ValueError(f"unknown operation {op!r}")


def check_lanes(lanes, name: str = "input_lanes") -> int:
    """Streams per word of an :class:`InputSamplerBank`'s state memory: a power of two, 1-256."""
    check_int(name, lanes, 1, 256)
    if lanes & (lanes - 1):
        raise ValueError(f"{name} = {lanes}: must be a power of two (the host's stream number splits into word and lane bits)")
    return lanes


def sample_words(n: int, lanes: int) -> int:
    """Words of the state memory, and clocks of one draw's walk (§15): ``ceil(n / lanes)``."""
    return -(-n // lanes)


def check_choice(name, value, choices):
    """``value`` if it is one of the strings ``choices``; else TypeError / ValueError naming ``name``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} = {value!r}: choose one of {', '.join(choices)}")
    return value


def check_tie(tie):
    """The §7 tie rule ``tie`` (``gated``, ``zero`` or ``plus``), or TypeError / ValueError."""
    return check_choice("tie", tie, TIE_RULES)


def check_deriv_k(k, name: str = "deriv_k"):
    """The §6 number of derivative pairs (1, 2 or 4), or TypeError / ValueError."""
    check_int(name, k, 1)
    if k not in DERIV_K:
        raise ValueError(f"{name} must be 1, 2 or 4, got {k!r}")
    return k


def check_noise_words(noise_words, name: str = "noise_words") -> tuple:
    """The §4 noise word widths as a tuple (1-4 words of 1-16 bits, at most 32 bits), or ValueError."""
    words = tuple(noise_words) if isinstance(noise_words, (tuple, list)) else noise_words
    if not isinstance(words, tuple) or not 1 <= len(words) <= 4:
        raise ValueError(f"{name} must have 1-4 widths, got {noise_words!r}")
    for w in words:
        check_int(f"{name} word width", w, 1, 16)
    if sum(words) > 32:
        raise ValueError(f"{name} {noise_words!r} need more than 32 bits")
    return words


def check_counter(th, counter_bits) -> tuple:
    """The §9 carry threshold and signed counter width ``(th, counter_bits)``: 2-32 bits, and the
    counter must hold ``th`` (``1 <= th <= 2^(counter_bits-1) - 1``); else TypeError / ValueError."""
    cb = check_int("counter_bits", counter_bits, 2, 32)
    check_int("th", th, 1)
    cmax = (1 << (cb - 1)) - 1
    if th > cmax:
        raise ValueError(f"th = {th} does not fit a {cb}-bit counter (max {cmax})")
    return th, cb
