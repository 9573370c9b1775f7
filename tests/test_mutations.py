"""The mutation check (bshw/sim/mutations.py, `make mutants`): rules of docs/arithmetic.md broken in
the RTL, each caught by the network bench with its first mismatch naming the expected signal.

`make mutants` runs every mutant; here a CI-sized subset, one per part of the spec, runs under Icarus.
"""

import pytest

from bshw.sim.mutations import MUTANTS, _recompiled, named_signal
from bshw.sim.runner import have_simulator

# one mutant per part of the spec, each failing within its trace's first batch
CI_SUBSET = ["lfsr-load-ignored", "cmp-ge", "mod255-no-wrap", "seq-skip-draw", "infer-runs-backward",
             "counter-wraps", "clamp-wmax-1", "acc-zero-error"]


def test_the_suite_covers_the_spec():
    assert len(MUTANTS) >= 20
    sections = {s for m in MUTANTS.values() for s in m.section.split() if s.startswith("§")}
    assert sections >= {"§3", "§4", "§5", "§6", "§7", "§8", "§9", "§15"}
    parts = " ".join(m.section for m in MUTANTS.values())
    for part in ("host", "macro", "memory"):  # §15's host ports, macro pins, counter-memory pipeline
        assert f"§15 {part}" in parts
    assert set(CI_SUBSET) <= set(MUTANTS)


def test_named_signal_is_exact():
    assert named_signal("step 0 sample 3: signal x1[5] expected 0, got 1") == "x1"
    assert named_signal("after loading: signal counter1[0][2] expected 3, got 0") == "counter1"
    assert named_signal("step 1 carry: signal pulse2[4][1] expected +1, got +0") == "pulse2"
    assert named_signal("test sample 0 after stochastic inference: signal lfsr2[3] expected 0x1, got 0x2") == "lfsr2"
    assert named_signal("training took 35 clocks") is None
    assert named_signal("signal carry") != "carry pulse"


def test_a_mutation_that_no_longer_applies_is_an_error():
    from bshw.input_sampler import sampled_input

    with pytest.raises(RuntimeError, match="occurs 0 times"):
        _recompiled(sampled_input, "no such text", "x")
    mutated = _recompiled(sampled_input, "return u < pixel", "return u <= pixel")
    assert mutated is not sampled_input and mutated.__name__ == "sampled_input"


@pytest.mark.sim
@pytest.mark.skipif(not have_simulator("icarus"), reason="iverilog not on PATH: apt-get install -y iverilog")
@pytest.mark.parametrize("name", CI_SUBSET)
def test_broken_rule_is_caught_by_the_network_bench(tmp_path_factory, name):
    from bshw.sim.mutations import run_mutant

    out = tmp_path_factory.getbasetemp() / "mutants"  # the traces are shared between the mutants
    r = run_mutant(name, out)
    assert r["caught"], f"mutant {name} ({MUTANTS[name].broken}) passed the network bench"
    assert r["named"], f"mutant {name}: the first mismatch names {r['signal']}, not {r['expected_signal']}: " \
                       f"{r['mismatch']}"
