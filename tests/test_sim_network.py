"""The periphery and system tops under Icarus against golden traces, bit for bit (bshw/sim/bench_network.py).

- the §1 default 64-32-10 net trained on 200 MNIST samples (2 batches of 100), weights compared
  after every batch, then 100 test samples through binary and stochastic inference, with the numpy
  macro models in the bench (every update pulse compared);
- random stimulus: 1,000 training samples of a 16-8-10 net in batches of 10 (100 carries) on the
  system top (the Verilog macro model), and a deeper 16-8-4-10 net with a read latency of 3;
- the 784-input shape (784-100-10) for a few samples;
- every operation's clock count against the §15 formula, and after every operation (training sample,
  carry, binary and stochastic inference) every LFSR state, weight and counter (in the bench);
- a net whose weights reach both limits and whose counters saturate, with the bench's counts of it;
- the mutation check (each rule broken in the RTL caught by the bench): tests/test_mutations.py.
"""

import pytest

from bshw.sim.runner import have_simulator

pytestmark = [pytest.mark.sim, pytest.mark.skipif(not have_simulator("icarus"),
                                                  reason="iverilog not on PATH: apt-get install -y iverilog")]


def _check(res):
    assert res["passed"], res["mismatch"]
    return res


def test_default_network_200_samples_then_inference(tmp_path):
    from bshw.golden.config import TrainConfig
    from bshw.golden.data import load_dataset
    from bshw.golden.exact.trace import make_trace
    from bshw.io import atomic_write_text
    from bshw.sim.network import run_network

    cfg = TrainConfig.from_dict({"hidden": (32,), "input_side": 8, "weights": "int8", "mode": "exact", "seed": 0},
                                where="test")
    data = load_dataset(cfg.dataset_name, cfg.data)
    trace = atomic_write_text(tmp_path / "trace.jsonl", make_trace(cfg, 2, data.train_x, data.train_y))
    res = _check(run_network(trace, rtl_dir="rtl", build_dir=tmp_path / "b", infer_samples=100, seed=0))
    assert (res["steps"], res["samples"]) == (2, 200)
    assert res["infer"] == {"samples": 100, "agree": 100}
    print(f"64-32-10: {res['cycles']} cycles, {res['compared']} values compared, {res['cycles_per_s']:.0f} cycles/s")


def test_random_stimulus_1000_samples_system_top(tmp_path):
    """The whole learner with the Verilog macro model inside (no Python array model)."""
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(tmp_path / "trace.jsonl", {"hidden": (8,), "input_side": 4}, steps=100, batch=10)
    res = _check(run_network(trace, build_dir=tmp_path / "b", seed=0, macro="hdl", infer_samples=20))
    assert res["samples"] == 1000 and res["steps"] == 100 and res["macro"] == "hdl"
    assert res["infer"] == {"samples": 20, "agree": 20}


def test_deeper_net_with_read_latency(tmp_path):
    """Two hidden layers, a macro read latency of 3 clocks: the same draws, the §15 clocks."""
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(tmp_path / "trace.jsonl", {"hidden": (8, 4), "input_side": 4}, steps=3, batch=10)
    for macro in ("numpy", "hdl"):
        res = _check(run_network(trace, build_dir=tmp_path / macro, seed=0, macro=macro, read_latency=3,
                                 infer_samples=5))
        assert res["samples"] == 30 and res["op_cycles"]["carry"] == 16 + 4
        assert res["op_cycles"]["binary"] == 1 + 3 * 3 + 1


@pytest.mark.slow
def test_mnist_shaped_784_inputs(tmp_path):
    from bshw.sim.network import run_network, write_random_trace

    trace = write_random_trace(tmp_path / "trace.jsonl", {"hidden": (100,), "input_side": 28}, steps=1, batch=3)
    res = _check(run_network(trace, build_dir=tmp_path / "b", seed=0))
    assert res["samples"] == 3


def test_weight_limits_and_counter_saturation_reached(tmp_path):
    """A 16-8-10 net with 3-bit weights ([-4, 3]), th = 2 and 3-bit counters, lr 1, random labels:
    within 12 batches the weights reach both limits (carries clamped there) and the counters saturate
    both ways, on the system top (the Verilog array model does the clamping) with the whole state
    compared after every operation. The bench counts each event; the mutation check's `limits`
    trace is this one (bshw/sim/mutations.py: counter-wraps, clamp-wmax-1)."""
    from bshw.sim.mutations import TRACES
    from bshw.sim.network import run_network, write_random_trace

    over, steps, batch, _ = TRACES["limits"]
    trace = write_random_trace(tmp_path / "trace.jsonl", over, steps, batch)
    res = _check(run_network(trace, build_dir=tmp_path / "b", seed=0, macro="hdl", infer_samples=3))
    assert res["state_every_op"] and res["samples"] == steps * batch
    lim = res["limits"]
    print("limits hit:", lim)
    for event in ("counter_saturated_max", "counter_saturated_min", "weight_clamped_max", "weight_clamped_min",
                  "weights_at_max", "weights_at_min"):
        assert lim[event] > 0, f"{event} never happened: {lim}"


def test_bshw_sim_cli(tmp_path, capsys):
    from bshw.cli import main
    from bshw.sim.network import write_random_trace

    trace = write_random_trace(tmp_path / "t.jsonl", {"hidden": (4,), "input_side": 3}, steps=1, batch=4)
    assert main(["sim", str(trace), "--build-dir", str(tmp_path / "b"), "--seed", "1"]) == 0
    assert "bit-exact" in capsys.readouterr().out
    assert main(["sim", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["sim", str(trace), "--steps", "0"]) == 2
    err = capsys.readouterr().err
    assert "bad trace" in err and "--steps 0" in err


def test_sigterm_ends_the_simulator_child(tmp_path):
    """issue 18 (8): `bshw sim` stopped with SIGTERM exits 130 and leaves no vvp behind."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from bshw.sim.network import write_random_trace

    trace = write_random_trace(tmp_path / "t.jsonl", {"hidden": (8,), "input_side": 4}, steps=40, batch=10)
    root = Path(__file__).resolve().parents[1]
    p = subprocess.Popen([sys.executable, "-m", "bshw.cli", "sim", str(trace), "--build-dir", str(tmp_path / "b"),
                          "--seed", "1"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def descendants(pid):
        """PIDs below ``pid`` with their argv[0] (from /proc)."""
        kids, found = {}, {}
        for d in Path("/proc").iterdir():
            try:
                stat = (d / "stat").read_text()
                kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
            except (OSError, ValueError, IndexError):
                continue
        todo = [pid]
        while todo:
            for c in kids.get(todo.pop(), []):
                try:
                    found[c] = (Path(f"/proc/{c}/cmdline").read_bytes().split(b"\0")[0]).decode(errors="replace")
                except OSError:
                    continue
                todo.append(c)
        return found

    deadline, sims = time.time() + 120, {}
    while time.time() < deadline and not sims and p.poll() is None:
        sims = {c: exe for c, exe in descendants(p.pid).items() if exe.endswith("vvp")}
        time.sleep(0.2)
    assert sims, f"the simulator never started (bshw sim exit {p.poll()})"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    time.sleep(0.5)
    left = [c for c in sims if Path(f"/proc/{c}").exists()
            and (Path(f"/proc/{c}/stat").read_text().split()[2] != "Z")]
    assert not left, f"processes left running: {left}"
