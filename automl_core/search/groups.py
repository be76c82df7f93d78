"""The shape of a search: its groups (brackets or batches) and the rungs each one trains.

A method's ``plan`` returns these (``automl_core.search.methods``); the DAG factory maps
them to task groups and the engine's driver walks them. Pure values, no search logic.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RungStep:
    """Train ``n`` trials to ``target_epoch`` epochs in total (rung ``rung`` of a group)."""

    rung: int
    n: int
    target_epoch: int


@dataclass(frozen=True)
class PlanGroup:
    """A bracket (rungs with a promotion after each) or a batch (one rung).

    ``after`` is the index of the group that must complete before this one is proposed
    (Hyperopt learns from every earlier batch); None when it can start at once.
    """

    kind: Literal["bracket", "batch"]
    index: int
    rungs: tuple[RungStep, ...]
    after: int | None = None

    @property
    def group_id(self) -> str:
        return f"{self.kind}_{self.index}"

    @property
    def promotes(self) -> bool:
        """True when survivors are picked between rungs (brackets)."""
        return self.kind == "bracket"

    def survivors(self, rung: int) -> int:
        """How many trials rung ``rung`` promotes to the next (0 after the last rung)."""
        return self.rungs[rung + 1].n if rung + 1 < len(self.rungs) else 0


@dataclass(frozen=True)
class SearchPlan:
    """Every group of one search, in the order they are listed to a user."""

    method: str
    groups: tuple[PlanGroup, ...]

    def group(self, kind: str, index: int) -> PlanGroup:
        """The group ``kind`` ``index``; ``KeyError`` when the plan has none."""
        try:
            return self._by_key[(kind, index)]
        except KeyError:
            raise KeyError(f"{kind} {index} is not in this search's plan") from None

    def followers(self, group: PlanGroup) -> tuple[PlanGroup, ...]:
        """The groups that start once ``group`` is complete (their ``after``), in order."""
        return self._followers.get((group.kind, group.index), ())

    # Indexes built once: a grid of 100,000 configurations in batches of one has as many
    # groups, and a scan per lookup made walking the plan quadratic.
    @functools.cached_property
    def _by_key(self) -> dict[tuple[str, int], PlanGroup]:
        return {(g.kind, g.index): g for g in self.groups}

    @functools.cached_property
    def _followers(self) -> dict[tuple[str, int], tuple[PlanGroup, ...]]:
        out: dict[tuple[str, int], list[PlanGroup]] = {}
        for g in self.groups:
            if g.after is not None:
                out.setdefault((g.kind, g.after), []).append(g)
        return {key: tuple(gs) for key, gs in out.items()}

    @property
    def planned_epochs(self) -> int:
        """Epochs the whole search trains when no trial fails: a promoted trial goes on
        from its last rung, so rung i adds ``n_i x (target_i - target_(i-1))``."""
        total = 0
        for g in self.groups:
            before = 0
            for step in g.rungs:
                total += step.n * (step.target_epoch - before)
                before = step.target_epoch
        return total

    def rungs_to_go(self, bracket: int, rung: int) -> int:
        """How many rungs bracket ``bracket`` trains from ``rung`` on, counting it: the
        promotions still ahead of a trial of that rung. ``KeyError`` as ``group``."""
        return len(self.group("bracket", bracket).rungs) - rung
