"""Hyperband's schedule (Li et al., JMLR 2018) and its promotion rule.

Implementation notes
--------------------
``R`` is the largest budget one configuration gets (epochs); ``eta`` the cut factor.
Algorithm 1 of the paper, in integers only:

- ``s_max = floor(log_eta(R))``: the largest ``s`` with ``eta**s <= R``, found by
  multiplying; a float log gets the boundaries ``R == eta**k`` wrong (``log(243, 3)``
  is ``4.999...``).
- For each bracket ``s = s_max, ..., 0``:
  ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` configurations, computed as
  ``-(-(s_max + 1) * eta**s // (s + 1))``.
- Rung ``i = 0..s`` of bracket ``s``: ``n_i = floor(n * eta**-i) = n // eta**i``
  configurations trained to ``r_i = R * eta**(i - s)`` epochs in total. When ``R`` is
  not a power of ``eta``, ``r_i = max(1, R // eta**(s - i))`` (floor, at least one
  epoch); the last rung of a full bracket is always ``R``.
- After rung ``i``, the best ``floor(n_i / eta)`` survive; that is exactly ``n_{i+1}``.
- ``skip_last = K`` drops the last ``K`` rungs of every bracket (a cheaper, shorter
  schedule); a bracket left with no rung is dropped.

A promoted configuration resumes from its checkpoint, so ``r_i`` is its *cumulative*
budget and rung ``i`` costs ``n_i * (r_i - r_{i-1})`` epochs (``r_{-1} = 0``): that is
``total_epochs``. ``total_epochs_from_scratch`` is the paper's ``sum n_i * r_i``, the
cost when every rung retrains from scratch.

The paper's Table 1 (R = 81, eta = 3) follows: s=4: n_i 81 27 9 3 1, r_i 1 3 9 27 81;
s=3: 34 11 3 1 / 3 9 27 81; s=2: 15 5 1 / 9 27 81; s=1: 8 2 / 27 81; s=0: 5 / 81.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.search.base import is_missing, rank
from automl_core.search.distinct import sample_distinct
from automl_core.space import SearchSpace


@dataclass(frozen=True)
class Rung:
    """``n_i`` configurations trained to ``r_i`` epochs in total (rung ``i``)."""

    i: int
    n_i: int
    r_i: int


@dataclass(frozen=True)
class Bracket:
    """One successive-halving run: its rungs in order, ``rungs[0].n_i`` configurations."""

    s: int
    rungs: tuple[Rung, ...]

    @property
    def n(self) -> int:
        """How many configurations the bracket starts with (``n_0``)."""
        return self.rungs[0].n_i

    def survivors(self, i: int) -> int:
        """How many configurations rung ``i`` promotes to rung ``i + 1`` (0 after the last)."""
        return self.rungs[i + 1].n_i if i + 1 < len(self.rungs) else 0

    @property
    def total_epochs(self) -> int:
        """Epochs this bracket trains when promoted models resume from their checkpoint."""
        previous = 0
        total = 0
        for rung in self.rungs:
            total += rung.n_i * (rung.r_i - previous)
            previous = rung.r_i
        return total

    @property
    def total_epochs_from_scratch(self) -> int:
        """``sum n_i * r_i``: the epochs if every rung retrained from scratch."""
        return sum(rung.n_i * rung.r_i for rung in self.rungs)


@dataclass(frozen=True)
class HyperbandSchedule:
    """The brackets of one Hyperband run, from ``s = s_max`` down."""

    R: int
    eta: int
    skip_last: int
    s_max: int
    brackets: tuple[Bracket, ...]

    @property
    def total_epochs(self) -> int:
        """Epochs the whole schedule trains, with promoted models resuming (see module)."""
        return sum(bracket.total_epochs for bracket in self.brackets)

    @property
    def total_epochs_from_scratch(self) -> int:
        """The paper's ``sum n_i * r_i`` over all brackets and rungs."""
        return sum(bracket.total_epochs_from_scratch for bracket in self.brackets)

    @property
    def n_configs(self) -> int:
        """Configurations sampled over all brackets."""
        return sum(bracket.n for bracket in self.brackets)

    def bracket(self, s: int) -> Bracket:
        """The bracket with index ``s``; ``KeyError`` when the schedule has none."""
        for bracket in self.brackets:
            if bracket.s == s:
                return bracket
        raise KeyError(f"The schedule has no bracket s={s}.")

    def first_trial(self, s: int) -> int:
        """The first trial id of bracket ``s``: trials are numbered bracket after bracket,
        in schedule order. ``KeyError`` when the schedule has no bracket ``s``."""
        offset = 0
        for bracket in self.brackets:
            if bracket.s == s:
                return offset
            offset += bracket.n
        raise KeyError(f"The schedule has no bracket s={s}.")

    def to_dict(self) -> dict[str, Any]:
        """``{"s_max": .., "brackets": [{"s": .., "rungs": [{"i", "n_i", "r_i"}]}]}``."""
        return {
            "s_max": self.s_max,
            "brackets": [
                {
                    "s": bracket.s,
                    "rungs": [{"i": r.i, "n_i": r.n_i, "r_i": r.r_i} for r in bracket.rungs],
                }
                for bracket in self.brackets
            ],
        }


#: The name docs/reference.md uses for the schedule type.
Schedule = HyperbandSchedule


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"The value of {name} is {value!r}, but must be an integer.")
    if value < minimum:
        raise UserInputError(f"The value of {name} is {value}, but must be >= {minimum}.")
    return value


def max_bracket(R: int, eta: int) -> int:
    """``s_max``: the largest ``s`` with ``eta**s <= R``, by integer multiplication."""
    s, power = 0, eta
    while power <= R:
        s += 1
        power *= eta
    return s


def hyperband_schedule(R: int, eta: int = 3, skip_last: int = 0) -> HyperbandSchedule:
    """The Hyperband schedule for maximum budget ``R`` epochs and cut factor ``eta``.

    Raises ``UserInputError`` unless ``R >= 1``, ``eta >= 2`` and
    ``0 <= skip_last <= s_max`` are all integers.
    """
    _check_int("R", R, 1)
    _check_int("eta", eta, 2)
    _check_int("skip_last", skip_last, 0)
    s_max = max_bracket(R, eta)
    if skip_last > s_max:
        raise UserInputError(
            f"The value of skip_last is {skip_last}, but must be <= s_max = {s_max} "
            f"(for R={R}, eta={eta}); a larger value would drop every rung."
        )
    brackets = []
    for s in range(s_max, -1, -1):
        n = -(-(s_max + 1) * eta**s // (s + 1))  # ceil((s_max+1)/(s+1) * eta^s), exact
        rungs = tuple(
            Rung(i=i, n_i=n // eta**i, r_i=max(1, R // eta ** (s - i)))
            for i in range(s + 1 - skip_last)
        )
        if rungs:
            brackets.append(Bracket(s=s, rungs=rungs))
    return HyperbandSchedule(
        R=R, eta=eta, skip_last=skip_last, s_max=s_max, brackets=tuple(brackets)
    )


def select_survivors(
    results: Sequence[tuple[int, float | None]], n_keep: int, mode: str = "max"
) -> list[int]:
    """The ids of the ``n_keep`` best trials of ``results`` (``(trial_id, metric)`` pairs).

    Best first; ties go to the smaller trial id. A ``None``/NaN metric (a failed trial)
    is never kept: successive halving keeps the best of the trials it could evaluate (Li
    et al., JMLR 2018), and a failed trial would only be trained, and fail, again. So
    fewer than ``n_keep`` ranked results keep just those, and none keep none (the
    bracket ends there). Raises ``UserInputError`` for a negative ``n_keep`` or an
    unknown ``mode``, ``ValueError`` for repeated trial ids.
    """
    _check_int("n_keep", n_keep, 0)
    scored = {trial_id for trial_id, metric in results if not is_missing(metric)}
    return [t for t in rank(results, mode) if t in scored][:n_keep]


def bracket_seed(seed: int, s: int) -> int:
    """A seed for bracket ``s`` derived from the experiment's ``seed``.

    Brackets get independent streams (``numpy.random.SeedSequence([seed, s])``), so a
    re-run of one bracket, or a schedule with ``skip_last``, samples the same
    configurations for the brackets it shares.
    """
    _check_int("seed", seed, 0)
    _check_int("s", s, 0)
    return int(np.random.SeedSequence([seed, s]).generate_state(1)[0])


def sample_bracket(
    space: SearchSpace, schedule: HyperbandSchedule, s: int, seed: int
) -> list[dict[str, Any]]:
    """The ``n_0`` configurations bracket ``s`` starts with, reproducible from ``(seed, s)``.

    No configuration is in two brackets or twice in one: bracket ``s`` draws from its own
    stream (``bracket_seed``) and skips what the brackets before it in the schedule
    (larger ``s``) drew, so the brackets can be sampled in any order, and ``skip_last``,
    which only drops brackets at the end, changes none of them.

    Raises ``KeyError`` when the schedule has no bracket ``s``, ``UserInputError`` when
    the space has fewer distinct configurations than the brackets up to ``s`` start with.
    """
    schedule.bracket(s)
    taken: list[dict[str, Any]] = []
    for bracket in schedule.brackets:
        rng = np.random.default_rng(bracket_seed(seed, bracket.s))
        configs = sample_distinct(space, bracket.n, rng, exclude=taken)
        if bracket.s == s:
            return configs
        taken.extend(configs)
    raise AssertionError("unreachable: schedule.bracket(s) found the bracket")
