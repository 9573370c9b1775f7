"""Bit-for-bit pins of the hardware-exact mode (issue 21): SHA-256 of short golden traces and of raw
LFSR bank draws, computed with the per-draw implementation before the block/bit-parallel rewrite.

The trace hash covers every recorded bit (the header's initial state and every step line of
``bshw.golden.exact.trace.make_trace``) but not the header's ``config``/``params`` echo, so that a new
config field elsewhere does not look like a change of arithmetic. The stimulus is made the way
``bshw.sim.network.write_random_trace`` makes it: uniformly random 28x28 images and labels from a seeded
generator.
"""

import hashlib
import json

import pytest
import torch

from bshw.golden.config import TrainConfig
from bshw.golden.exact import make_learner
from bshw.golden.exact.lfsr import I16, N32, LfsrBank, seed_state
from bshw.golden.exact.trace import make_trace


def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g),
            torch.randint(0, 10, (n,), generator=g))


def _bits_hash(text: str) -> str:
    lines = text.splitlines()
    blob = json.dumps(json.loads(lines[0])["init"], separators=(",", ":")) + "\n" + "\n".join(lines[1:])
    return hashlib.sha256(blob.encode()).hexdigest()


CASES = {
    "784-100-10": (dict(hidden=(100,), input_side=28), 2, 4,
                   "6c87cc226cde5b09038b92bfb7fa8090b06b36f7833ccee2193b185a5aa922bc"),
    "784-100-10-host-k1-zero": (dict(hidden=(100,), input_side=28,
                                     hw={"output": "host", "deriv_k": 1, "tie": "zero"}), 1, 3,
                                "20444387ba272699fd69a1886f7ab086cd42fc1d6f2a8686e48780aa77142865"),
    "64-32-10-saturating": (dict(hidden=(32,), input_side=8, hw={"th": 3, "counter_bits": 3}), 2, 8,
                            "178d26d96c2c81cba00d3c1e76728d4dc41d0826679982cbd2e3abab24bdfc67"),
    "64-32-16-10-words": (dict(hidden=(32, 16), input_side=8,
                               hw={"noise_words": [8, 8, 8, 8], "deriv_k": 2, "th": 2}), 3, 5,
                          "ef8ab6dc81d76dc67f2366a65208e3580572d9e3d965e0e523424a1c6ddf0f74"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_trace_hash(name):
    over, steps, batch, want = CASES[name]
    cfg = TrainConfig.from_dict({"weights": "int8", "mode": "exact", "batch": batch, "seed": 7, **over},
                                where="hash test")
    x, t = _data(steps * batch, 7)
    assert _bits_hash(make_trace(cfg, steps, x, t)) == want


def test_bank_draws_hash():
    """Raw words and weighted sums, odd leaps, across the old 1024-draw chunk, 0/1-draw calls."""
    h = hashlib.sha256()
    for spec, leap, n in ((N32, 1, 37), (N32, 13, 1100), (N32, 24, 5), (I16, 16, 2100), (I16, 3, 9)):
        b = LfsrBank(spec, [seed_state(3, i, spec) for i in range(7)], leap)
        for m in (n, 1, 0, 2):
            h.update(json.dumps(b.draw(m).tolist()).encode())
        h.update(json.dumps(b.draw(3, list(range(1, leap + 1))).tolist()).encode())
        h.update(json.dumps(b.states.tolist()).encode())
    assert h.hexdigest() == "9efa9c48c774665c5f8e1cb812bcc7bd0a45503761c81c24a1f27d7075011416"


def test_stochastic_predict_hash():
    cfg = TrainConfig.from_dict({"weights": "int8", "mode": "exact", "batch": 4, "seed": 7, "hidden": (100,),
                                 "input_side": 28}, where="hash test")
    L = make_learner(cfg)
    x, t = _data(8, 3)
    L.train_batch(x[:4], t[:4])
    curve = {1: None, 3: None}
    p = L.predict(x, "stochastic", votes=5, curve=curve)
    blob = json.dumps([p.tolist(), curve[1].tolist(), curve[3].tolist(), L.in_bank.states.tolist(),
                       [b.states.tolist() for b in L.banks]])
    assert hashlib.sha256(blob.encode()).hexdigest() == \
        "2e6992d0b4fe6c854f1f73d94ea73b6c4a5b85dd160bfbc1122f5ab26c775bf2"
