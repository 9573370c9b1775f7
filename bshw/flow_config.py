"""The flow's configuration: the ``[flow]`` table (:class:`FlowConfig`), the shipped configurations
(bshw/configs/), and reading a flow configuration (:func:`load_config`: ``[train]`` + ``[flow]``,
every value checked before anything runs). docs/flow.md §1 lists the keys; bshw/flow.py runs them.
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from bshw.errors import BshwError

# The built-in steps' names, in flow order (bshw.flow.default_steps defines them)
STAGES = ("train-float", "train-baseline", "train-exact", "trace", "rtl", "sim", "synth", "energy", "report")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # shipped as package data
DEFAULT_CONFIG = CONFIG_DIR / "flow.toml"


def resolve_config(name) -> Path:
    """A flow configuration: a TOML file's path, or the name of a shipped one (``flow``, ``flow-tiny``,
    ``paper``, ``demo``; bshw/configs/), so that an installed bshw runs outside a checkout."""
    p = Path(name)
    if p.exists() or p.suffix == ".toml" and len(p.parts) > 1:
        return p
    shipped = CONFIG_DIR / (p.name if p.suffix == ".toml" else f"{p.name}.toml")
    if len(p.parts) == 1 and shipped.is_file():
        return shipped
    return p  # load_config names the missing file


TRACE_FROM = ("trained", "init")
# Train keys the flow sets itself: the training stages pick the mode, [flow] out the directory.
FLOW_OWNED = {"mode": "the flow trains every mode (stages train-float, train-baseline and train-exact)",
              "out": "set the run directory with [flow] out or --out"}
# [flow] keys that change how the flow runs, never a figure: kept out of summary.json's config (so
# a summary reads the same whichever way it ran) and recorded under timing.execution instead.
EXECUTION = ("threads", "jobs")
JOBS = (1, 2)


@dataclass
class FlowConfig:
    """The ``[flow]`` table: what the stages after training do.

    Parameters
    ----------
    out : str
        Run directory (``--out`` overrides it).
    stages : list of str or None
        Stages to run, in flow order (None: all); ``--stages`` / ``--skip`` override.
    final_votes : int or None
        Repetitions of the stochastic majority vote in the last epoch's evaluation (None: the
        train table's ``votes``); earlier epochs use ``votes``.
    trace_steps : int
        Training steps (batches) in the golden trace the RTL must reproduce.
    trace_from : {"init", "trained"}
        ``init``: the trace starts from the seed's initial state (the RTL's reset state);
        ``trained``: from the trained exact network (its weights, counters and LFSR states after
        training, from ``exact/checkpoint.pt``; the bench loads them from the trace header).
    infer_samples : int
        Test images the RTL also classifies after the trace (bshw.sim.api ``infer_samples``; 0: none).
    sim_seed : int or None
        cocotb's seed (None: the training seed).
    waves : bool
        Dump waveforms in the sim stage.
    firing_points, firing_draws : int
        Points of the RTL neuron's firing curve (y from -5/(a s) to +5/(a s)) and draws per point.
    synth : bool
        Run the synth stage (false: recorded as skipped by configuration).
    synth_targets : list of str or None
        Modules to synthesize (None: bshw.synth's default list: neuron, counter, input sampler, HP neuron).
    synth_layers : list of str or None
        Whole-layer periphery targets ``"FAN_INxFAN_OUT"`` (e.g. ``["16x10"]``) added to them (None:
        none; a whole 64x32 layer's 2048 counters do not fit the iCE40 HX8K). The largest one's Fmax
        is the clock of the report's throughput figures.
    synth_asic : bool
        Add the CMOS transistor-count proxy of every synthesized target (``bshw synth --asic``).
    energy_array : int
        Memristor crossbar size N (N x N) of the energy estimate.
    threads : int or None
        torch CPU threads (None: torch's choice, or 1 in both processes with ``jobs = 2``;
        ``--threads`` overrides).
    jobs : {1, 2}
        Processes: 2 runs :data:`SIDE_STAGES` in a side process beside the exact chain, 1 runs every
        stage in this process in flow order (``--jobs`` overrides). The figures are the same.
    """

    out: str = "runs/flow"
    stages: list | None = None
    final_votes: int | None = None
    trace_steps: int = 2
    trace_from: str = "init"
    infer_samples: int = 0
    sim_seed: int | None = None
    waves: bool = False
    firing_points: int = 33
    firing_draws: int = 2000
    synth: bool = True
    synth_targets: list | None = None
    synth_layers: list | None = None
    synth_asic: bool = False
    energy_array: int = 128
    threads: int | None = None
    jobs: int = 2

    def __post_init__(self):
        def bad(name, v, want):
            raise BshwError(f"flow.{name} = {v!r} is not valid: {want}")

        def whole(name, lo, allow_none=False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(name, v, f"a whole number >= {lo}" + (" or unset" if allow_none else ""))

        if not isinstance(self.out, str) or not self.out:
            bad("out", self.out, "a directory name")
        if self.stages is not None:
            if not isinstance(self.stages, list) or not self.stages:
                bad("stages", self.stages, f"a non-empty list of {', '.join(STAGES)}")
            self.stages = [parse_stage(s, "flow.stages") for s in self.stages]
        whole("final_votes", 1, True)
        if isinstance(self.final_votes, int) and self.final_votes > 1000:
            bad("final_votes", self.final_votes, "at most 1000 repetitions")
        whole("trace_steps", 1)
        if self.trace_from not in TRACE_FROM:
            bad("trace_from", self.trace_from, " or ".join(TRACE_FROM))
        whole("infer_samples", 0)
        whole("sim_seed", 0, True)
        whole("firing_points", 2)
        whole("firing_draws", 1)
        whole("energy_array", 1)
        whole("threads", 1, True)
        if isinstance(self.jobs, bool) or self.jobs not in JOBS:
            bad("jobs", self.jobs, "1 (every stage in one process) or 2 (the RTL, the float trainings and the "
                                   "synthesis in a side process)")
        for name in ("waves", "synth", "synth_asic"):
            if not isinstance(getattr(self, name), bool):
                bad(name, getattr(self, name), "true or false")
        for name in ("synth_targets", "synth_layers"):
            t = getattr(self, name)
            if t is not None and (not isinstance(t, list) or not t or any(not isinstance(s, str) or not s for s in t)):
                bad(name, t, "a non-empty list of names, or unset" if name == "synth_targets"
                    else 'a non-empty list like ["8x4"], or unset')

    def to_dict(self) -> dict:
        """The settings that decide the figures (:data:`EXECUTION` keys left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in EXECUTION}

    def execution(self) -> dict:
        """How the flow runs: the :data:`EXECUTION` settings."""
        return {k: getattr(self, k) for k in EXECUTION}


def parse_stage(name, where: str = "--stages", names=STAGES) -> str:
    if name not in names:
        raise BshwError(f"{where}: unknown stage {name!r} (stages: {', '.join(names)})")
    return name


def load_config(source, overrides: dict | None = None):
    """``(TrainConfig, FlowConfig)`` from a TOML file, a dict or a TrainConfig.

    Parameters
    ----------
    source : path-like, str, dict or bshw.golden.config.TrainConfig
        A TOML file (or the name of a shipped one: ``flow``, ``flow-tiny``, ``paper``) with a ``[train]`` table (TrainConfig keys, ``mode`` and ``out`` excepted) and a
        ``[flow]`` table (:class:`FlowConfig`); the same as a dict; or a TrainConfig (flow defaults).
    overrides : dict or None
        ``{"train": {...}, "flow": {...}}`` applied on top (the CLI's flags).
    """
    from bshw.golden.config import TrainConfig

    overrides = overrides or {}
    if isinstance(source, TrainConfig):
        d, where = {"train": {k: v for k, v in source.to_dict().items() if k not in FLOW_OWNED}}, "config"
    elif isinstance(source, dict):
        d, where = source, "config"
    else:
        from bshw.io import read_toml

        path = resolve_config(source)  # a file, or a shipped configuration's name
        d = read_toml(path)
        where = str(path)
    unknown = sorted(set(d) - {"train", "flow"})
    if unknown:
        raise BshwError(f"{where}: unknown table {unknown[0]!r} (a flow config has [train] and [flow])")
    if not isinstance(d.get("train", {}), dict) or not isinstance(d.get("flow", {}), dict):
        raise BshwError(f"{where}: [train] and [flow] must be tables")
    train, flow_d = dict(d.get("train", {})), dict(d.get("flow", {}))
    for k, why in FLOW_OWNED.items():
        if k in train:
            raise BshwError(f"{where}: train.{k} is not allowed here: {why}")
    train.update(overrides.get("train", {}))
    flow_d.update(overrides.get("flow", {}))
    cfg = TrainConfig.from_dict(train, where=f"{where} [train]")
    known = {f.name for f in dataclasses.fields(FlowConfig)}
    bad = sorted(set(flow_d) - known)
    if bad:
        raise BshwError(f"{where}: unknown key flow.{bad[0]} (known: {', '.join(sorted(known))})")
    try:
        fcfg = FlowConfig(**flow_d)
    except BshwError as e:
        raise BshwError(f"{where}: {e}") from None
    exact_params(cfg, where)  # the exact stages' constraints, checked before anything runs
    return cfg, fcfg


def check_device(device: str):
    """Refuse a CUDA ``device`` (``[train] device`` or ``--device``) on a machine where torch sees none,
    before anything runs."""
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise BshwError(f"device {device!r} ([train] device or --device): torch sees no CUDA device on this "
                        "machine (torch.cuda.is_available() is false); use cpu")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise BshwError(f"device {device!r} ([train] device or --device): this machine has "
                        f"{torch.cuda.device_count()} CUDA device(s)")


def exact_params(cfg, where: str = "config"):
    """The resolved hardware parameters of ``cfg`` in exact mode (:class:`bshw.hwparams.HwParams`, §12)."""
    from bshw.golden.exact.params import ExactParams

    try:
        return ExactParams.from_dict(dict(cfg.hw)).resolve(dataclasses.replace(cfg, mode="exact"))
    except BshwError as e:
        raise BshwError(f"{where} [train]: {e}") from None
