"""The typed hardware parameters (bshw/hwparams.py) and the one initial state (bshw.core): one
record validated once, the trace header's form key for key, and the RTL generator without a golden
learner (issue 17)."""

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, replace
from pathlib import Path

import pytest

from bshw.core import initial_lfsr_states
from bshw.golden.config import TrainConfig
from bshw.hwparams import HEADER_KEYS, HwParams

BASE = dict(noise_words=(7, 7, 5), deriv_k=4, tie="gated", th=8, counter_bits=8, wmin=-128, wmax=127)


def _cfg(**over):
    return TrainConfig.from_dict({"hidden": (6,), "input_side": 4, "weights": "int8", "mode": "exact", **over},
                                 where="test")


def test_derived_values_and_defaults():
    p = HwParams(**BASE)
    assert (p.noise_bits, p.smax, p.T) == (19, 127 + 127 + 31, (127 + 127 + 31) // 2)  # §4
    assert (p.cmin, p.cmax, p.weight_bits, p.output) == (-128, 127, 8, "onchip")
    assert HwParams(**{**BASE, "wmin": -1, "wmax": 1}).weight_bits == 2  # ternary: a 2-bit level
    with pytest.raises(FrozenInstanceError):
        p.th = 9


@pytest.mark.parametrize("field,value,message", [
    ("noise_words", (0, 7), "noise_words word width"), ("noise_words", (16, 16, 1), "more than 32 bits"),
    ("deriv_k", 3, "deriv_k must be 1, 2 or 4"), ("tie", "sometimes", "tie = 'sometimes'"),
    ("tie", None, "tie must be a str"), ("output", "board", "output = 'board'"),
    ("th", 200, "th = 200 does not fit a 8-bit counter"), ("counter_bits", 40, "counter_bits"),
    ("wmin", 0, "wmin"), ("wmax", 1.5, "wmax must be an int"), ("weight_bits", 4, "do not fit weight_bits = 4"),
    ("scale", -1.0, "scale must be a positive number"), ("a", "4", "a must be a positive number"),
    ("device", [1], "device must be a dict"),
])
def test_each_field_is_checked_naming_it(field, value, message):
    with pytest.raises((TypeError, ValueError), match=message):
        HwParams(**{**BASE, field: value})


def test_header_form_round_trips_and_matches_the_learner():
    """as_dict is the trace header's params, key for key and in §11's order; from_dict reads it back,
    and refuses an unknown key, a missing one and derived values that disagree (naming them)."""
    from bshw.golden.exact import make_learner
    from bshw.golden.exact.trace import header

    learner = make_learner(_cfg())
    d = header(learner, 0)["params"]
    assert tuple(d) == HEADER_KEYS and d == learner.P.as_dict()
    back = HwParams.from_dict(json.loads(json.dumps(d)))
    assert back == learner.P and back.as_dict() == d
    with pytest.raises(ValueError, match=r"params\.bogus: unknown"):
        HwParams.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match=r"params\.th is missing"):
        HwParams.from_dict({k: v for k, v in d.items() if k != "th"})
    with pytest.raises(ValueError, match=r"params\.smax = 1 disagrees with noise_words"):
        HwParams.from_dict({**d, "smax": 1})
    dev = make_learner(_cfg(hw={"device": "paper-fig5"})).P
    assert dev.as_dict()["device"] == dict(dev.device) and "device" not in d  # §16: the ideal adds no key


def test_initial_state_is_one_function_for_both_sides():
    """The golden learner's LFSRs start where bshw.core.initial_lfsr_states says, and so does the RTL
    (bshw.rtl.build), which no longer makes a golden learner to learn them."""
    from bshw import rtl
    from bshw.golden import exact
    from bshw.golden.exact import make_learner

    cfg = _cfg(seed=5)
    learner = make_learner(cfg)
    init = initial_lfsr_states(learner.sizes, 5)
    assert init["lfsr_in"] == learner.in_bank.states.tolist()
    assert init["lfsr"] == [b.states.tolist() for b in learner.banks] and init["host_lfsr"] is None
    host = initial_lfsr_states(learner.sizes, 5, "host")
    assert host["lfsr"][-1] is None and len(host["host_lfsr"]) == 10
    real = exact.make_learner
    try:
        exact.make_learner = lambda *a, **k: pytest.fail("rtl.build made a golden learner")
        top = rtl.build(cfg)
    finally:
        exact.make_learner = real
    top._MustUse__silence = True
    for c in top.counters:
        c._MustUse__silence = True
    assert top.seeds == {"lfsr_in": init["lfsr_in"], "lfsr": init["lfsr"]} and top.params == learner.P


def test_hdl_takes_the_record_without_torch():
    """An HDL user builds HwParams by hand and the periphery from it; torch is never imported."""
    code = ("import sys\nfrom bshw.hwparams import HwParams\nfrom bshw.periphery import BshwPeriphery\n"
            f"p = BshwPeriphery([9, 4, 10], HwParams(**{BASE!r}))\n"
            "assert p.params.th == 8 and p.k == 4\n"
            "print('torch' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "False"


def test_mutant_parameters_replace_one_field():
    p = HwParams(**BASE)
    assert replace(p, th=9).th == 9 and replace(p, th=9).counter_bits == 8
    with pytest.raises(ValueError, match="th = 300"):
        replace(p, th=300)


def test_energy_takes_the_record():
    """The energy estimator counts the neuron evaluations of the record's k (the flow passes its
    HwParams; a sweep point its configuration's k), not a fixed k = 4."""
    from bshw import energy as E

    c = E.load_constants()
    layers = E.describe("fc", [32])[0]
    synth = {"neuron": {"luts": 40, "ffs": 30}}
    for k in (1, 2, 4):
        res = E.network_energy(layers, c, synth=synth, hw=HwParams(**{**BASE, "deriv_k": k}))
        assert res["periphery"]["neuron_passes"] == 1 + 2 * k + 1
    assert E.deriv_k_of({"hw": {"deriv_k": 2}, "deriv_k": 1}) == 2 and E.deriv_k_of({"deriv_k": 1}) == 1
    assert E.deriv_k_of(_cfg(hw={"deriv_k": 1})) == 1 and E.deriv_k_of({}) == 4
