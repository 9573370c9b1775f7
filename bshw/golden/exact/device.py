"""The memristor device model of the crossbar in integers (docs/arithmetic.md §16; paper Methods,
"Modeling of the synaptic behaviors of the memristors", Eqs. 7-9).

A device holds its conductance as an unsigned integer ``g`` in units of ``G_LSB = G0 / 2^f``, where
``G0`` is the conductance of one weight level and ``f = frac_bits``: ``g = 0`` is G_min, ``g = R =
(wmax - wmin) 2^f`` is G_max, and the array contributes ``g - g_ref`` with ``g_ref = -wmin 2^f``
(the level-0 conductance). A potentiation / depression pulse moves ``g`` by the integer mean step of
Eq. 7 / Eq. 8 at the present ``g`` (a linear function of ``g``, computed with fixed-point constants
and rounded half up), plus the cycle-to-cycle draw of Eq. 9 from the column's N32 LFSR, clamped to
``[0, R]``. A stuck device never moves. With device-to-device variation (``d2d`` > 0) each device
scales its Eq. 7 / Eq. 8 steps by its own factors, drawn once from a splitmix64 hash of (seed, layer,
i, j). The ``ideal`` preset (f = 0, one level per pulse, no
variation, no faults) is today's integer weight exactly.

:class:`DeviceModel` holds and validates the physical parameters (ValueError); :meth:`DeviceModel.resolve`
turns them into the integers every implementation uses (the trace header's ``params.device``);
:class:`ArrayDevice` applies them (golden model, numpy macro model).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from bshw.core import MASK64, N32, splitmix64  # noqa: F401  (§3, one definition)

STEP_FRAC = 24  # fixed-point fraction bits of the step constants (§16)
GAMMA_FRAC = 8  # fixed-point fraction bits of gamma (§16)
NOISE_BITS = 24  # one write-noise draw: a 24-step leap, three 8-bit words (§16)
NOISE_STREAM = 1 << 31  # column j of layer l draws from stream 2^31 + l 2^20 + j (§3 seeding)
STUCK_STREAM = 1 << 30  # device (i, j) of layer l: stream 2^30 + l 2^24 + i fan_out + j
D2D_STREAM = 1 << 29  # device (i, j) of layer l: its d2d factors, stream 2^29 + l 2^24 + i fan_out + j
D2D_FRAC = 8  # fixed-point fraction bits of d2d (§16)
SCALE_FRAC = 16  # fraction bits of a device's step factor m_p / m_d (§16)
D2D_MAX = 1 / 3  # d2d < 1/3: d2d_fix <= 85, so 2^16 - 765 d2d_fix > 0 (the factor at the draw's bound)

PRESETS = {
    # today's integer weights: one level per pulse, no variation (nothing changes, §16)
    "ideal": {"g_max": 1.0, "g_min": 0.0, "n_p": 0, "n_d": 0, "alpha_p": 0.0, "alpha_d": 0.0,
              "gamma": 0.0, "frac_bits": 0, "stuck": 0.0},
    # paper Fig. 5b (SiGe epitaxial memory): Methods after Eq. 9
    "paper-fig5": {"g_max": 25.0, "g_min": 0.1, "n_p": 100, "n_d": 100, "alpha_p": 1.0, "alpha_d": 2.0,
                   "gamma": 2.0, "frac_bits": 8, "stuck": 0.0},
    # seed 002 (Nandakumar et al.): 32 levels (31 equal pulses across the range), on/off ratio 15
    "32-level": {"g_max": 15.0, "g_min": 1.0, "n_p": 31, "n_d": 31, "alpha_p": 0.0, "alpha_d": 0.0,
                 "gamma": 0.0, "frac_bits": 8, "stuck": 0.0},
}
KEYS = ("g_max", "g_min", "n_p", "n_d", "alpha_p", "alpha_d", "gamma", "frac_bits", "stuck")
# optional keys: absent from PRESETS and from params.device while 0, so no existing trace changes (§16)
OPTIONAL = {"d2d": 0.0}


def noise_seed(seed: int, layer: int, column: int) -> int:
    """Initial N32 state of the write-noise stream of ``column`` (0-based) of weight layer ``layer``
    (1-based): §3's ``seed_state`` of stream ``2^31 + layer 2^20 + column``."""
    return (splitmix64(((seed << 32) + NOISE_STREAM + (layer << 20) + column) & MASK64) & N32.mask) or 1


class DeviceModel:
    """Physical parameters of the memristor array (paper Eqs. 7-9), validated.

    Parameters
    ----------
    preset : str
        ``ideal`` (default: today's integer weights), ``paper-fig5`` or ``32-level``.
    **overrides
        Any of ``g_max``, ``g_min`` (microsiemens, ``0 <= g_min < g_max``), ``n_p``, ``n_d`` (pulses
        from one end of the range to the other, >= 1; 0 only in ``ideal``: one level per pulse),
        ``alpha_p``, ``alpha_d`` (non-linearity, >= 0; 0 is the linear limit ``R / N``), ``gamma``
        (cycle-to-cycle variation, Eq. 9, >= 0), ``frac_bits`` f (0..16), ``stuck`` (fraction of
        devices that never move, [0, 1)), ``d2d`` (device-to-device spread of the steps, std as a
        fraction of the nominal step, [0, 1/3); default 0).

    Raises
    ------
    ValueError
        One line naming the bad parameter.
    """

    def __init__(self, preset: str = "ideal", **overrides):
        if not isinstance(preset, str) or preset not in PRESETS:
            raise ValueError(f"device preset {preset!r:.40}: choose one of {', '.join(PRESETS)}")
        bad = sorted(set(overrides) - set(KEYS) - set(OPTIONAL), key=str)
        if bad:
            raise ValueError(f"device: unknown parameter {bad[0]!r:.40} (known: preset, {', '.join((*KEYS, *OPTIONAL))})")
        self.preset = preset
        p = {**PRESETS[preset], **OPTIONAL, **overrides}
        for k in ("g_max", "g_min", "alpha_p", "alpha_d", "gamma", "stuck", "d2d"):
            v = p[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"device.{k} = {v!r:.40} is not valid: a finite number")
            p[k] = float(v)
        for k in ("n_p", "n_d", "frac_bits"):
            if isinstance(p[k], bool) or not isinstance(p[k], int):
                raise ValueError(f"device.{k} = {p[k]!r:.40} is not valid: a whole number")
        if not 0 <= p["g_min"] < p["g_max"]:
            raise ValueError(f"device: g_min = {p['g_min']:g}, g_max = {p['g_max']:g} µS: need 0 <= g_min < g_max")
        for k in ("n_p", "n_d"):
            if p[k] < (0 if preset == "ideal" else 1):
                raise ValueError(f"device.{k} = {p[k]} is not valid: pulses across the range, >= 1")
        for k in ("alpha_p", "alpha_d", "gamma"):
            if p[k] < 0:
                raise ValueError(f"device.{k} = {p[k]:g} is not valid: >= 0")
        if not 0 <= p["frac_bits"] <= 16:
            raise ValueError(f"device.frac_bits = {p['frac_bits']} is not valid: 0 to 16")
        if not 0 <= p["stuck"] < 1:
            raise ValueError(f"device.stuck = {p['stuck']:g} is not valid: a fraction in [0, 1)")
        if not 0 <= p["d2d"] < D2D_MAX:
            raise ValueError(f"device.d2d = {p['d2d']:g} is not valid: a fraction in [0, 1/3) "
                             "(the spread of each device's step factor; it must stay > 0)")
        if p["d2d"] == 0:  # §16: d2d = 0 is no key at all (every existing figure unchanged)
            del p["d2d"]
        self.p = p

    @classmethod
    def from_spec(cls, spec) -> "DeviceModel":
        """From ``hw.device``: a preset name, or a table ``{"preset": name, overrides...}``."""
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, dict):
            d = dict(spec)
            return cls(d.pop("preset", "ideal"), **d)
        raise ValueError(f"device = {spec!r:.40} is not valid: a preset name or a table of parameters")

    @property
    def is_default(self) -> bool:
        """The ideal preset without overrides: no device entry in the parameters (§16)."""
        return self.preset == "ideal" and self.p == PRESETS["ideal"]

    def resolve(self, wmin: int, wmax: int, seed: int) -> dict:
        """The integers of §16 for levels ``[wmin, wmax]`` and run ``seed`` (``params.device``).

        Raises ValueError when a step rounds to 0 or does not fit (raise ``frac_bits``), or the
        conductance does not fit 32 bits.
        """
        p, f = self.p, self.p["frac_bits"]
        levels = wmax - wmin
        R = levels << f
        if R >= 1 << 32:
            raise ValueError(f"device: {levels} levels x 2^{f} units do not fit a 32-bit conductance")
        one = 1 << STEP_FRAC

        def consts(alpha, n, pot):
            n = n or levels  # ideal: one level per pulse
            if alpha == 0:  # linear limit of Eqs. 7/8: R / N at every g
                return 0, round(R / n * one)
            k = -math.expm1(-alpha / n)  # 1 - exp(-alpha / N)
            a = R / -math.expm1(-alpha)  # (G_max - G_min) / (1 - exp(-alpha)), in units
            return round(k * one), round((a if pot else a - R) * k * one)

        kp, cp = consts(p["alpha_p"], p["n_p"], True)
        kd, cd = consts(p["alpha_d"], p["n_d"], False)
        d = {"preset": self.preset, **{k: p[k] for k in KEYS}, "g_range": R, "g_ref": -wmin << f,
             "g_bits": max(1, R.bit_length()), "step_frac": STEP_FRAC, "kp": kp, "cp": cp, "kd": kd, "cd": cd,
             "gamma_fix": round(p["gamma"] * (1 << GAMMA_FRAC)), "stuck_th": round(p["stuck"] * (1 << 32)),
             "seed": seed}
        d2d_fix = round(p.get("d2d", 0.0) * (1 << D2D_FRAC))
        if d2d_fix:  # §16: only with variation, so that d2d = 0 leaves params.device as it was
            d.update(d2d=p["d2d"], d2d_fix=d2d_fix)
        dev = ArrayDevice(d)
        ends = np.array([0, R], dtype=np.int64)
        lo = min(int(dev.step_pot(ends).min()), int(dev.step_dep(ends).min()))
        hi = max(int(dev.step_pot(ends).max()), int(dev.step_dep(ends).max()))
        if lo < 1 or hi > R:
            raise ValueError(f"device: the step table holds {lo}..{hi} units, outside 1..{R} "
                             f"(frac_bits = {f} is too coarse or N too small)")
        if max(cp, cd) + (kp + kd) * R >= 1 << 62:
            raise ValueError("device: the step constants do not fit 62 bits")
        d["nominal"] = (int(dev.step_pot(np.array([d["g_ref"]]))[0]) + int(dev.step_dep(np.array([d["g_ref"]]))[0])) / 2
        return d


class ArrayDevice:
    """The integer device rules of §16 from a resolved ``params.device`` dict (numpy and torch).

    Parameters
    ----------
    d : dict
        :meth:`DeviceModel.resolve`'s output.
    """

    def __init__(self, d: dict):
        self.d = d
        self.f, self.R, self.g_ref = d["frac_bits"], d["g_range"], d["g_ref"]
        self.q, self.kp, self.cp, self.kd, self.cd = d["step_frac"], d["kp"], d["cp"], d["kd"], d["cd"]
        self.gamma_fix, self.stuck_th, self.seed = d["gamma_fix"], d["stuck_th"], d["seed"]
        self.half = 1 << (self.q - 1)
        self.d2d_fix = d.get("d2d_fix", 0)

    # Eq. 7 / Eq. 8 mean steps, rounded half up: floor((C -/+ K g + 2^(q-1)) / 2^q)
    def step_pot(self, g):
        """Eq. 7: the potentiation step (units, > 0) at conductance ``g``."""
        return (self.cp - self.kp * g + self.half) >> self.q

    def step_dep(self, g):
        """Eq. 8: the depression step's magnitude (units, > 0) at conductance ``g``."""
        return (self.cd + self.kd * g + self.half) >> self.q

    def scaled(self, step, m):
        """A device's step (§16 d2d): ``floor((step m + 2^15) / 2^16)``, ``m`` its factor in units
        of 2^-16 (``m`` None: ``step`` itself)."""
        if m is None:
            return step
        return (step * m + (1 << (SCALE_FRAC - 1))) >> SCALE_FRAC

    def noise(self, word, step):
        """Eq. 9: the write-noise of one pulse from its 24-bit ``word`` and mean step magnitude.

        ``v = 2 (u_1 + u_2 + u_3) - 765`` (u_k the three bytes, low first; zero mean, std 255.998),
        ``e = gamma_fix step v``, noise = ``sign(e) floor((|e| + 2^15) / 2^16)`` (half away from 0)."""
        v = 2 * ((word & 0xFF) + ((word >> 8) & 0xFF) + ((word >> 16) & 0xFF)) - 765
        e = self.gamma_fix * step * v
        sh = 2 * GAMMA_FRAC
        mag = (abs(e) + (1 << (sh - 1))) >> sh
        return mag * np.sign(e) if isinstance(e, np.ndarray) else (mag * torch.sign(e) if isinstance(e, torch.Tensor)
                                                                    else (mag if e >= 0 else -mag))

    def pulse(self, g, direction, word, m=None):
        """The conductance after one pulse: ``direction`` +1 (potentiation) / -1 (depression);
        ``m`` the device's factor for that direction (§16 d2d; None: 1)."""
        step = self.scaled(self.step_pot(g) if direction > 0 else self.step_dep(g), m)
        new = g + direction * step + self.noise(word, step)
        return min(max(new, 0), self.R)

    def level(self, g):
        """The weight level a read-back reports: ``floor((g - g_ref + 2^(f-1)) / 2^f)`` (round half up)."""
        h = (1 << (self.f - 1)) if self.f else 0
        return (g - self.g_ref + h) >> self.f

    def y_pin(self, ysum):
        """The column sum at the pins: ``ceil(Y / 2^f)`` (exact for the comparator, §16)."""
        return -((-ysum) >> self.f)

    def dx_pin(self, dsum):
        """The row sum at the pins: ``sign(D) ceil(|D| / 2^f)`` (sign and zero kept, §16)."""
        m = (1 << self.f) - 1
        if isinstance(dsum, (np.ndarray, torch.Tensor)):
            a = abs(dsum)
            return ((a + m) >> self.f) * (np.sign(dsum) if isinstance(dsum, np.ndarray) else torch.sign(dsum))
        return ((abs(dsum) + m) >> self.f) * (1 if dsum > 0 else -1 if dsum < 0 else 0)

    def _device_hashes(self, stream: int, layer: int, n: int) -> np.ndarray:
        """``splitmix64((seed << 32) + stream + layer 2^24 + d)`` for devices ``d = i fan_out + j`` in
        ``[0, n)`` (uint64; :func:`bshw.core.splitmix64`, vectorised), the per-device draws of §16."""
        with np.errstate(over="ignore"):
            z = np.uint64(((self.seed << 32) + stream + (layer << 24)) & MASK64) + np.arange(n, dtype=np.uint64)
            z = z + np.uint64(0x9E3779B97F4A7C15)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))

    def stuck_mask(self, layer: int, fan_in: int, fan_out: int) -> np.ndarray:
        """Bool ``[fan_in, fan_out]``: device (i, j) of ``layer`` (1-based) is stuck iff the high 32
        bits of ``splitmix64((seed << 32) + 2^30 + layer 2^24 + i fan_out + j)`` are ``< stuck_th``."""
        if self.stuck_th == 0:
            return np.zeros((fan_in, fan_out), dtype=bool)
        z = self._device_hashes(STUCK_STREAM, layer, fan_in * fan_out)
        return ((z >> np.uint64(32)) < np.uint64(self.stuck_th)).reshape(fan_in, fan_out)

    def d2d_factors(self, layer: int, fan_in: int, fan_out: int):
        """The devices' step factors ``(m_p, m_d)``, int64 ``[fan_in, fan_out]`` in units of 2^-16
        (§16): ``z = splitmix64((seed << 32) + 2^29 + layer 2^24 + i fan_out + j)``, ``v_p = 2 (b_0 +
        b_1 + b_2) - 765``, ``v_d = 2 (b_3 + b_4 + b_5) - 765`` (b_k the bytes of z, low first),
        ``m = 2^16 + d2d_fix v``. None without variation (``d2d_fix`` = 0)."""
        if not self.d2d_fix:
            return None
        z = self._device_hashes(D2D_STREAM, layer, fan_in * fan_out)
        b = [((z >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64) for k in range(6)]
        v_p = 2 * (b[0] + b[1] + b[2]) - 765
        v_d = 2 * (b[3] + b[4] + b[5]) - 765
        one = 1 << SCALE_FRAC
        return ((one + self.d2d_fix * v_p).reshape(fan_in, fan_out),
                (one + self.d2d_fix * v_d).reshape(fan_in, fan_out))

    def noise_seeds(self, layer: int, fan_out: int) -> list:
        """Initial states of the layer's column noise streams."""
        return [noise_seed(self.seed, layer, j) for j in range(fan_out)]

    def verilog_parameters(self, layer: int) -> dict:
        """Parameters of ``bshw_crossbar_model`` for weight layer ``layer`` (1-based); ``D2D_FIX`` only
        with device-to-device variation (§16: d2d = 0 emits what it did before)."""
        return {"DEVICE": 1, "FRAC": self.f, "GW": self.d["g_bits"], "GRANGE": self.R, "GREF": self.g_ref,
                "QS": self.q, "KP": self.kp, "CP": self.cp, "KD": self.kd, "CD": self.cd,
                "GAMMA_FIX": self.gamma_fix, "STUCK_TH": self.stuck_th, "SEED": self.seed, "LAYER": layer,
                **({"D2D_FIX": self.d2d_fix} if self.d2d_fix else {})}
