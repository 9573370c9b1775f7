"""Hand-worked cases of docs/arithmetic.md, one per rule: a change on either side shows here."""

import pytest
import torch

from bshw.golden.exact import carry, error, neuron, noise
from bshw.golden.exact.lfsr import (
    I16,
    N32,
    LfsrBank,
    leap,
    seed_state,
    splitmix64,
    step,
)

T_ = torch.tensor


def test_lfsr_sequence_from_state_1():  # §3: shift left, new bit = parity(state & taps)
    s, out = 1, []
    for _ in range(4):
        s = step(s, N32)
        out.append(s)
    assert out == [3, 6, 13, 27]  # taps 31,21,1,0: 1->1, 3->0, 6->1, 13->1
    s, out = 1, []
    for _ in range(4):
        s = step(s, I16)
        out.append(s)
    assert out == [2, 4, 8, 17]  # taps 15,14,12,3: only 8 has a tap bit


def test_seed_state_is_splitmix64():
    assert splitmix64(0) == 0xE220A8397B1DCDAF  # the published first SplitMix64 output for seed 0
    assert seed_state(0, 0, N32) == 0x7B1DCDAF
    assert seed_state(0, 0, I16) == 0xCDAF


def test_bank_draw_is_leap_of_fresh_bits():
    states = [1, 0xDEADBEEF]
    bank = LfsrBank(N32, states, 19)
    w = bank.draw(2)
    for j, s in enumerate(states):
        for m in range(2):
            s = leap(s, N32, 19)
            assert int(w[m, j]) == s & (2**19 - 1)
        assert int(bank.states[j]) == s


def test_noise_mapping():  # §4: words low bits first, S = sum, T = Smax // 2
    spec = noise.NoiseSpec((7, 7, 5))
    word = (21 << 14) | (3 << 7) | 127
    assert spec.split(word) == [127, 3, 21]
    S = sum(c * ((word >> q) & 1) for q, c in enumerate(spec.coef))
    assert (S, spec.smax, spec.T) == (151, 285, 142)  # n = S - T = 9
    assert neuron.fire(T_([-8, -9]), T_([151, 151]), spec.T).tolist() == [1, 0]  # y + n > 0


def test_comparator_at_zero():
    assert neuron.fire(T_([0, 0, 5]), T_([142, 143, 138]), 142).tolist() == [0, 1, 1]


def test_derivative_pair_and_k_or():
    A, B = T_([[1], [1], [0], [0]]), T_([[0], [1], [0], [1]])  # 4 neurons, k = 1 (dim -2)
    assert neuron.derivative(A.T, B.T).tolist() == [1, 0, 0, 0]  # A AND NOT B
    A = T_([[1, 0, 1, 0], [1, 1, 1, 1]]).T  # pairs m along dim -2 (k = 4), 2 neurons
    B = T_([[1, 0, 0, 1], [1, 1, 1, 1]]).T
    assert neuron.derivative(A, B).tolist() == [1, 0]  # pair 3 gives 1; all (1,1) give 0


def test_sample_neurons_draw_order():  # §6: X, A1, B1, A2, B2
    S = T_([[[200, 200, 0, 0, 200]]]).view(1, 5, 1)
    x, A, B, d = neuron.sample_neurons(T_([[0]]), S, 142, 2)
    assert (x.item(), A.view(-1).tolist(), B.view(-1).tolist(), d.item()) == (1, [1, 0], [0, 1], 1)


@pytest.mark.parametrize("rule, driven, want", [
    ("gated", True, [1, 1, -1]), ("zero", True, [1, 0, -1]), ("plus", True, [1, 1, -1]),
    ("gated", False, [1, 0, -1]), ("plus", False, [1, 1, -1])])
def test_tie_rules(rule, driven, want):  # §7
    dx = T_([[3, 0, -2]])
    assert error.tie_sign(dx, T_([driven]), rule).view(-1).tolist() == want


def test_gated_zero_when_nothing_driven():
    assert error.tie_sign(T_([[0, 0]]), T_([False]), "gated").tolist() == [[0, 0]]
    assert error.tie_sign(T_([[0, 0]]), T_([False]), "plus").tolist() == [[1, 1]]


def test_ternary_encoding():  # §7: en/neg = -V0 / high impedance / +V0
    en, neg = error.encode(T_([1, 0, -1]))
    assert (en.tolist(), neg.tolist()) == ([1, 0, 1], [0, 0, 1])
    assert error.decode(en, neg).tolist() == [1, 0, -1]
    with pytest.raises(ValueError):
        error.decode(T_([0]), T_([1]))
    assert error.ternary_error(T_([1, 0, 1]), T_([-1, 1, 0])).tolist() == [-1, 0, 0]


def test_threshold_and_counter_width():  # §9
    assert carry.threshold(1 / 128, 100, 0.1) == 8
    assert carry.threshold(1 / 128, 100, 1.0) == 1  # round(0.78)
    assert carry.threshold(1 / 128, 4, 0.1) == 1  # at least 1
    assert carry.default_counter_bits(8, 100) == 8  # |c| <= 107


def test_carry_at_threshold_and_clear():
    c, w = T_([[8, 7, -8, -7]]), T_([[0, 0, 0, 0]])
    c2, w2, st = carry.carry(c, w, 8, -128, 127)
    assert (c2.tolist(), w2.tolist(), st.tolist()) == ([[0, 7, 0, -7]], [[-1, 0, 1, 0]], [[-1, 0, 1, 0]])


def test_weight_saturation_still_clears():
    c2, w2, st = carry.carry(T_([[9, -8]]), T_([[-128, 127]]), 8, -128, 127)
    assert (c2.tolist(), w2.tolist(), st.tolist()) == ([[0, 0]], [[-128, 127]], [[-1, 1]])


def test_counter_saturation_per_sample():
    c = T_([[6]])  # 4-bit counter: [-8, 7]
    x, dy = T_([[1], [1], [1]]), T_([[1], [1], [-1]])
    assert carry.accumulate(c, x, dy, 4).tolist() == [[6]]  # 7, 7 (saturated), 6
    assert carry.accumulate(c, x, dy, 8).tolist() == [[7]]  # wide: plain sum


def test_input_sampling():  # §5
    r = T_([0x1234, 0x1234, 0xFFFF, 0xFFFF, 255])
    assert noise.mod255(r).tolist() == [70, 70, 0, 0, 0]
    assert noise.sample_inputs(T_([70, 71, 1, 0, 255]), r).tolist() == [0, 1, 1, 0, 1]


def test_auto_noise_words():  # §4 defaults
    assert noise.auto_words(4 / 128) == (7, 7, 5)
    assert noise.auto_words(4 / 8) == (3, 3, 2)
    dev, y = noise.worst_deviation((7, 7, 5), 4 / 128)
    assert abs(dev - 0.01902) < 5e-6 and abs(y) == 115
