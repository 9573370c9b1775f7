"""The flow as named steps: each declares what it reads and writes, and how it runs (docs/flow.md).

A :class:`Step` is one job of ``bshw flow`` (train, trace, RTL, simulation, synthesis, energy,
report). :class:`Steps` is an ordered registry of them: the flow runs the steps it is given in
registry order, so a user can script the flow from Python, insert a step of their own, replace one,
or re-run a few over an existing run directory (``bshw.run_flow(..., stages=[...])``)::

    import bshw
    from bshw.steps import Step

    steps = bshw.flow_steps()
    steps.insert(Step("count-lines", run=lambda flow, selected: f"{len(open(flow.out / 'trace.jsonl').readlines())} lines",
                      requires=("trace",)), after="trace")
    bshw.run_flow("flow-tiny", "runs/mine", steps=steps, stages=["train-exact", "trace", "count-lines", "report"])

``requires`` names the steps whose products a step reads: they must come before it in the registry,
and where one of them runs in the side process ([flow] jobs = 2) the step waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Step:
    """One named job of the flow.

    Parameters
    ----------
    name : str
        Its name on the command line (``--stages``, ``--skip``) and in summary.json: lower-case
        letters, digits and ``-``.
    run : callable
        ``run(flow, selected) -> str``: does the job on the :class:`bshw.flow.Flow` context (its
        configuration ``flow.cfg``/``flow.fcfg``, run directory ``flow.out``, data ``flow.data``, and
        ``flow.results[name]`` for what it found) and returns a one-line note. It raises
        :class:`bshw.errors.BshwError` for bad input; ``selected`` lists the steps of this run.
    requires : tuple of str
        The steps whose products it reads (they must come earlier in the registry).
    produces : tuple of str
        What it writes, as paths relative to the run directory (documentation and ``bshw flow
        --list-steps``).
    side : bool
        It may run in the side process beside the exact chain (``[flow] jobs = 2``); honoured for
        the built-in steps only (a step of one's own runs in the main process).
    doc : str
        One line saying what it does.
    """

    name: str
    run: Callable
    requires: tuple = ()
    produces: tuple = ()
    side: bool = False
    doc: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or not all(c.islower() or c.isdigit() or c == "-"
                                                                       for c in self.name):
            raise ValueError(f"step name {self.name!r}: lower-case letters, digits and - only")
        if not callable(self.run):
            raise TypeError(f"step {self.name!r}: run must be callable run(flow, selected) -> str, got {self.run!r}")
        for field in ("requires", "produces"):
            v = getattr(self, field)
            if isinstance(v, str) or not all(isinstance(x, str) for x in v):
                raise TypeError(f"step {self.name!r}: {field} must be a tuple of str, got {v!r}")
            object.__setattr__(self, field, tuple(v))


class Steps:
    """An ordered registry of :class:`Step` objects (the flow runs them in this order).

    Parameters
    ----------
    steps : iterable of Step

    Raises
    ------
    ValueError
        Two steps of one name, or a step that requires one that is not before it.
    """

    def __init__(self, steps=()):
        self._steps: list[Step] = []
        for s in steps:
            self.insert(s)

    # -- reading -----------------------------------------------------------------------------------
    @property
    def names(self) -> tuple:
        return tuple(s.name for s in self._steps)

    def __iter__(self):
        return iter(list(self._steps))

    def __len__(self) -> int:
        return len(self._steps)

    def __contains__(self, name) -> bool:
        return name in self.names

    def __getitem__(self, name: str) -> Step:
        for s in self._steps:
            if s.name == name:
                return s
        raise KeyError(f"no step {name!r} (steps: {', '.join(self.names)})")

    def __repr__(self) -> str:
        return f"Steps({', '.join(self.names)})"

    def copy(self) -> "Steps":
        return Steps(self._steps)

    # -- changing ----------------------------------------------------------------------------------
    def insert(self, step: Step, *, before: str | None = None, after: str | None = None) -> "Steps":
        """Add ``step`` at the end, or just before / after the named step; returns self."""
        if not isinstance(step, Step):
            raise TypeError(f"a Step, got {step!r}")
        if step.name in self:
            raise ValueError(f"there is a step {step.name!r} already (replace it with .replace)")
        if before is not None and after is not None:
            raise ValueError("give before or after, not both")
        at = len(self._steps)
        if before is not None:
            at = self.names.index(self[before].name)
        elif after is not None:
            at = self.names.index(self[after].name) + 1
        self._check(step, self.names[:at])
        self._steps.insert(at, step)
        return self

    def replace(self, step: Step) -> "Steps":
        """Put ``step`` in the place of the step of its name; returns self."""
        at = self.names.index(self[step.name].name)
        self._check(step, self.names[:at])
        self._steps[at] = step
        return self

    def remove(self, name: str) -> "Steps":
        """Drop the step ``name`` (refused while a later step requires it); returns self."""
        self[name]
        users = [s.name for s in self._steps if name in s.requires]
        if users:
            raise ValueError(f"step {name!r} is required by {', '.join(users)}")
        self._steps = [s for s in self._steps if s.name != name]
        return self

    @staticmethod
    def _check(step: Step, earlier):
        missing = [r for r in step.requires if r not in earlier]
        if missing:
            raise ValueError(f"step {step.name!r} requires {', '.join(missing)}, which must come before it")
