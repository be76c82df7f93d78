"""The shape of a search: its groups (brackets or batches) and the rungs each one trains.

A method's ``plan`` returns these (``automl_core.search.methods``); the DAG factory maps
them to task groups and the engine's driver walks them. Pure values, no search logic.
"""

from __future__ import annotations

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
        for g in self.groups:
            if g.kind == kind and g.index == index:
                return g
        raise KeyError(f"{kind} {index} is not in this search's plan")

    def rungs_to_go(self, bracket: int, rung: int) -> int:
        """How many rungs bracket ``bracket`` trains from ``rung`` on, counting it: the
        promotions still ahead of a trial of that rung. ``KeyError`` as ``group``."""
        return len(self.group("bracket", bracket).rungs) - rung
