"""Hardware-exact integer mode of the golden model (docs/arithmetic.md).

``make_learner(cfg)`` returns an :class:`ExactLearner`, the learner interface of the float model
(``train_batch``, ``predict``, ``state_dict``/``load_state_dict``, ``float_weights``, ``layers``)
computed with integer weights, per-neuron LFSR noise, ternary errors and periodic carry, bit for
bit as the RTL does it. Modules: lfsr, noise, neuron, error, carry, params, network, trace.
"""

from bshw.golden.exact.network import ExactLearner
from bshw.golden.exact.params import ExactParams


def make_learner(cfg) -> ExactLearner:
    """The exact-mode learner for ``cfg`` (raises BshwError for parameters it cannot build)."""
    return ExactLearner(cfg)


def validate_state(learner: ExactLearner, d: dict) -> None:
    """Check a saved exact-mode state (``learner.state_dict()``'s layout, e.g. from a checkpoint)
    against ``learner`` before :meth:`ExactLearner.load_state_dict` uses it.

    Raises BshwError ``"FIELD ...: what was expected"`` for: another kind or version, other hardware
    parameters, a missing or extra layer, a wrong shape, a non-integer tensor, weights outside
    ``[wmin, wmax]``, counters outside the signed ``counter_bits`` range, LFSR states that are zero
    or do not fit their register.
    """
    from bshw.errors import BshwError
    from bshw.golden.exact.lfsr import I16, N32

    def bad(field, what):
        raise BshwError(f"{field} {what}")

    if not isinstance(d, dict):
        bad("state", f"is a {type(d).__name__}, expected a dict")
    if d.get("kind") != "bshw-exact" or d.get("version") != 1:
        bad("kind", f"= {d.get('kind')!r}, version {d.get('version')!r}: expected an exact-mode state "
                    "('bshw-exact', version 1)")
    if d.get("params") != learner.P.as_dict():
        mine = learner.P.as_dict()
        saved = d.get("params") if isinstance(d.get("params"), dict) else {}
        diff = next((k for k in mine if saved.get(k) != mine[k]), "params")
        bad(f"params.{diff}", f"= {saved.get(diff)!r}, expected {mine.get(diff)!r} "
                              "(made with other hardware parameters)")
    P = learner.P
    cmax = (1 << (P.counter_bits - 1)) - 1
    groups = [("weights", learner.W, P.wmin, P.wmax), ("counters", learner.C, -cmax - 1, cmax)]
    for name, mine, lo, hi in groups:
        vals = d.get(name)
        if not isinstance(vals, (list, tuple)) or len(vals) != len(mine):
            n = len(vals) if isinstance(vals, (list, tuple)) else type(vals).__name__
            bad(name, f"has {n} layers, expected {len(mine)}")
        for l, (v, m) in enumerate(zip(vals, mine)):
            _int_tensor(f"{name}[{l}]", v, tuple(m.shape), lo, hi)
    _int_tensor("lfsr_in", d.get("lfsr_in"), tuple(learner.in_bank.states.shape), 1, I16.mask)
    lf = d.get("lfsr")
    if not isinstance(lf, (list, tuple)) or len(lf) != len(learner.banks):
        bad("lfsr", f"expected one entry per layer ({len(learner.banks)})")
    for l, (v, b) in enumerate(zip(lf, learner.banks)):
        if b is None:
            if v is not None:
                bad(f"lfsr[{l}]", "expected null (the host draws the output layer)")
        else:
            _int_tensor(f"lfsr[{l}]", v, tuple(b.states.shape), 1, N32.mask)
    hb = learner.host_bank
    if hb is None:
        if d.get("host_lfsr") is not None:
            bad("host_lfsr", "expected null (on-chip output layer)")
    else:
        _int_tensor("host_lfsr", d.get("host_lfsr"), tuple(hb.states.shape), 1, N32.mask)


def _int_tensor(field, v, shape, lo, hi):
    import torch

    from bshw.errors import BshwError

    if not isinstance(v, torch.Tensor):
        raise BshwError(f"{field} is a {type(v).__name__}, expected an integer tensor of shape {list(shape)}")
    if tuple(v.shape) != shape:
        raise BshwError(f"{field} has shape {list(v.shape)}, expected {list(shape)}")
    if v.dtype.is_floating_point or v.dtype.is_complex or v.dtype == torch.bool:
        raise BshwError(f"{field} has dtype {str(v.dtype).split('.')[-1]}, expected an integer tensor")
    if v.numel() and (int(v.min()) < lo or int(v.max()) > hi):
        raise BshwError(f"{field} holds values in [{int(v.min())}, {int(v.max())}], expected [{lo}, {hi}]")


__all__ = ["ExactLearner", "ExactParams", "make_learner", "validate_state"]
