"""A successive-halving sweep with synthetic learning curves, and an offline replay of it.

The metric of a trial is a known function of its parameters and its budget (:func:`loss`),
so a test computes the expected promotions and winner without running anything
(:func:`replay`, written apart from ``experiments.model.sweeps`` on purpose). The experiment
file (:data:`EXPERIMENT`) writes exactly that metric to each trial's ``metrics.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from experiments import Artifact, ArtifactSet, Task
from experiments.model.sets import resolve_stages
from tests.support.experiments import done_markers

CONFIGS = [(x, y, z) for x in range(3) for y in range(3) for z in range(3)]  # 27, in order
BUDGETS = [1, 3, 9]


def loss(x: int, y: int, z: int, epochs: int) -> float:
    """The synthetic learning curve: the ranking changes between budgets (z learns slowly)."""
    return round((x - 1.2) ** 2 + 0.3 * y + (1.0 + 2 * z) / epochs, 6)


def replay(configs: Sequence[tuple[int, int, int]] = tuple(CONFIGS),
           budgets: Sequence[int] = tuple(BUDGETS), eta: int = 3,
           failed: frozenset[tuple[int, int, int, int]] = frozenset()
           ) -> list[list[tuple[int, int, int]]]:
    """The configurations run at each rung (the last list ranked best first); ``failed``
    holds ``(x, y, z, budget)`` of trials that fail (never promoted)."""
    rungs: list[list[tuple[int, int, int]]] = []
    current = list(configs)
    for k, b in enumerate(budgets):
        rungs.append(current)
        ok = [c for c in current if (*c, b) not in failed]
        ranked = sorted(ok, key=lambda c: (loss(*c, b), current.index(c)))
        if k == len(budgets) - 1:
            rungs[-1] = ranked
            break
        current = ranked[:max(1, len(current) // eta)]
    return rungs


@dataclass(frozen=True)
class Train(Artifact):
    """A trial: a configuration (x, y, z) trained for ``epochs``."""

    x: int
    y: int
    z: int
    epochs: int = 1
    previous: Any = None

    def construct(self, builder: Task) -> None:
        builder.run_command("true")


@dataclass
class World:
    """Outcomes in memory: what is built (with its metric), live or failed."""

    built_ids: set[str] = field(default_factory=set)
    live_ids: set[str] = field(default_factory=set)
    failed_ids: set[str] = field(default_factory=set)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)

    def built(self, art: Artifact) -> bool:
        return art.artifact_id in self.built_ids

    def live(self, art: Artifact) -> bool:
        return art.artifact_id in self.live_ids

    def failed(self, art: Artifact) -> bool:
        return art.artifact_id in self.failed_ids

    def metrics(self, art: Artifact) -> Mapping[str, Any]:
        return self.scores.get(art.artifact_id, {})

    def run(self, arts: ArtifactSet, fail: frozenset[tuple[int, int, int, int]] = frozenset()
            ) -> int:
        """Build (or fail) every artifact not built nor failed yet; how many ran."""
        ran = 0
        for a in arts:
            if self.built(a) or self.failed(a):
                continue
            ran += 1
            if isinstance(a, Train) and (a.x, a.y, a.z, a.epochs) in fail:
                self.failed_ids.add(a.artifact_id)
                continue
            self.built_ids.add(a.artifact_id)
            if isinstance(a, Train):
                self.scores[a.artifact_id] = {"val_loss": loss(a.x, a.y, a.z, a.epochs)}
        return ran


def drive(sweep: Any, world: World, fail: frozenset[tuple[int, int, int, int]] = frozenset()
          ) -> list[int]:
    """Plan and run until nothing new is planned, as the relays (or the local loop) do."""
    counts = []
    while True:
        stages, _ = resolve_stages({"sweep": sweep, "final": sweep.best(1)}, world)
        ran = world.run(stages["sweep"], fail) + world.run(stages["final"])
        if not ran:
            return counts
        counts.append(ran)


def hyperband_brackets(n_configs: int, r: int, big_r: int, eta: int
                       ) -> list[tuple[int, list[float]]]:
    """Per bracket (most exploratory first): its configurations and budgets, by the paper
    (Li et al. 2018): ``s_max = floor(log_eta(R/r))``, bracket s starts
    ``ceil((s_max+1)/(s+1) * eta^s)`` at ``R * eta^-s``; the set is dealt in order."""
    s_max = math.floor(math.log(big_r / r, eta) + 1e-9)
    out, left = [], n_configs
    for s in range(s_max, -1, -1):
        n = math.ceil((s_max + 1) / (s + 1) * eta ** s)
        take = min(n, left)
        left -= take
        if take:
            out.append((take, [big_r / eta ** (s - i) for i in range(s + 1)]))
    return out


def replay_hyperband(configs: Sequence[tuple[int, int, int]], r: int, big_r: int, eta: int,
                     failed: frozenset[tuple[int, int, int, int]] = frozenset()
                     ) -> tuple[list[list[list[tuple[int, int, int]]]], list[tuple[int, int, int]],
                                float]:
    """Per bracket the replayed rungs, the configurations ranked best first over every
    bracket's last rung (ties: listed first), and the budget spent if every trial runs."""
    brackets, ranked, spent, start = [], [], 0.0, 0
    for n, budgets in hyperband_brackets(len(configs), r, big_r, eta):
        chunk = list(configs[start:start + n])
        start += n
        rungs = replay(chunk, [int(b) for b in budgets], eta, failed)
        brackets.append(rungs)
        spent += sum(n * b for n, b in zip(_sizes(len(chunk), len(budgets), eta), budgets,
                                           strict=True))
        ranked += [c for c in rungs[-1] if (*c, budgets[-1]) not in failed]
    ranked.sort(key=lambda c: (loss(*c, big_r), list(configs).index(c)))
    return brackets, ranked, spent


def _sizes(n: int, rungs: int, eta: int) -> list[int]:
    """The schedule's rung sizes: n, n // eta, ... (at least 1)."""
    out = []
    for _ in range(rungs):
        out.append(n)
        n = max(1, n // eta)
    return out


EXPERIMENT = '''
import json, os
from dataclasses import dataclass
from experiments import Artifact, ArtifactSet, {executor}, Task

OUT = os.environ["OUT"]
FAIL = os.environ.get("FAIL_TRIAL", "")  # "x,y,z,epochs" of a trial that fails
SLOW = os.environ.get("TIMEOUT_TRIAL", "")  # ... of a trial that runs into its time limit
LIMIT = os.environ.get("TIMEOUT_LIMIT", "1:00")  # that trial's limit (Slurm: whole minutes)

def loss(x, y, z, epochs):
    return round((x - 1.2) ** 2 + 0.3 * y + (1.0 + 2 * z) / epochs, 6)

@dataclass(frozen=True)
class Train(Artifact):
    x: int
    y: int
    z: int
    epochs: int = 1
    previous: object = None
    def me(self):
        return f"{{self.x}},{{self.y}},{{self.z}},{{self.epochs}}"
    def get_requirements(self):
        return {{"time": LIMIT if self.me() == SLOW else "5:00"}}
    def construct(self, builder: Task):
        if FAIL == self.me():
            builder.run_command("exit 7")
        if SLOW == self.me():
            builder.run_command("sleep 600")
        if self.previous is not None:  # resumes from the previous rung's folder
            builder.run_command("test -f " + builder.artifact_path + "/"
                                + self.previous.relpath + "/metrics.json")
        builder.create_file("metrics.json", json.dumps(
            {{"val_loss": loss(self.x, self.y, self.z, self.epochs)}}))

@dataclass(frozen=True)
class Retrain(Artifact):
    base: Train
    seeds: int = 5
    def construct(self, builder: Task):
        builder.create_file("winner.txt", self.base.relpath)

trials = ArtifactSet.from_product(cls=Train, params={{"x": [0, 1, 2], "y": [0, 1, 2],
                                                      "z": [0, 1, 2]}})
if os.environ.get("HYPERBAND"):  # 3 brackets (9 at 1, 3, 9; 5 at 3, 9; 3 at 9): 17
    sweep = trials[:17].hyperband(budget="epochs", min_budget=1, max_budget=9, eta=3,
                                  metric="val_loss", mode="min", resume="previous")
else:
    sweep = trials.successive_halving(budget="epochs", budgets=[1, 3, 9], eta=3,
                                      metric="val_loss", mode="min", resume="previous")
ex = {executor}(project=os.environ["PROJECT"], artifact_path=OUT + "/a", code_path=OUT{extra})
ex.stage("sweep", sweep)
ex.stage("final", sweep.best(k=1).map(lambda t: Retrain(base=t)))
if __name__ == "__main__":
    ex.auto_cli()
'''


def built_trials(root: Path) -> list[tuple[int, int, int, int]]:
    """``(x, y, z, epochs)`` of every built Train trial under ``root`` (from its params)."""
    out = []
    for marker in done_markers(root):
        if marker.parent.parent.name == ".relays":  # a relay's own marker: not an artifact
            continue
        meta = json.loads((marker.parent / ".artifact.json").read_text())
        params = meta.get("params") or meta.get("parameters") or {}
        if "epochs" in params:
            out.append((params["x"], params["y"], params["z"], params["epochs"]))
    return out


def rung_sets(trials: list[tuple[int, int, int, int]]) -> dict[int, set[tuple[int, int, int]]]:
    """The configurations built at each budget."""
    got: dict[int, set[tuple[int, int, int]]] = {}
    for x, y, z, e in trials:
        got.setdefault(e, set()).add((x, y, z))
    return got


def winner_of(root: Path) -> str:
    """The relpath the retraining stage says it retrained."""
    (found,) = list(root.rglob("winner.txt"))
    return found.read_text()
