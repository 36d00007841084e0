"""What a requested grid of runs means right now: which cells are stored, which are already queued
or running (shared with whoever asked first), and which would train. The Run page shows this
before anything is submitted; computing it here keeps the page to reading and drawing."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Iterable

from lthvp.compute.jobs import ACTIVE
from lthvp.results.config import RunConfig
from lthvp.results.presets import resolve


@dataclass
class RunPlan:
    configs: dict[str, RunConfig] = field(default_factory=dict)  # config hash -> config, in request order
    cached: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per distinct invalid combination

    def to_submit(self) -> list[RunConfig]:
        return [self.configs[h] for h in self.todo]


def grid(levels: Iterable[int], methods: Iterable[str], shots: Iterable, seeds: Iterable[int],
         **fixed) -> tuple[list[RunConfig], list[str]]:
    """Every combination as a RunConfig (``fixed``: preset, family, dataset, arm, epochs), and the
    distinct reasons the invalid ones were refused."""
    configs, errors = [], []
    for level, method, shot, seed in product(levels, methods, shots, seeds):
        try:
            configs.append(RunConfig(method=method, level=int(level), shots=shot, seed=int(seed), **fixed))
        except ValueError as err:
            errors.append(str(err))
    return configs, sorted(set(errors))


def plan(configs: Iterable[RunConfig], store, queue, errors: Iterable[str] = ()) -> RunPlan:
    """Split ``configs`` by what the store and the job queue already hold (one queue read)."""
    out = RunPlan(configs={resolve(c).hash(): c for c in configs}, errors=list(errors))
    state = {j["id"]: j["state"] for j in queue.jobs()}
    for key in out.configs:
        if store.has(key):
            out.cached.append(key)
        elif state.get(key) in ACTIVE:
            out.pending.append(key)
        else:
            out.todo.append(key)
    return out
