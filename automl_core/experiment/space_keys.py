"""A search space read against the data before the experiment is created.

Configurations that training refuses on the data's shape (a ``cnn2d`` on 21 features)
would fail as trials: all of them is an error, some a warning.

Keys of a search space that training never reads:
Such a key changes nothing: most likely a typo (``hiden`` for ``hidden``) or a key in the
wrong place (``momentum`` where every option uses Adam, ``dropout`` for a CNN). A search
over it would spend its budget on configurations that differ in nothing, so it is said
before the experiment is created. Found by reading sample configurations as training
reads them (``training.engine.keys_read``), with the data's real shape: a user's
architecture counts as any built-in does.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from automl_core.errors import UserInputError
from automl_core.search.distinct import distinct_points
from automl_core.space import SearchSpace

log = logging.getLogger(__name__)

#: Configurations read: all of a space with at most this many, else this many draws.
SAMPLES = 64


@dataclass(frozen=True)
class SpaceReading:
    """What training made of sample configurations of a space on the data's shape."""

    held: set[str]  # keys the configurations that build hold
    read: set[str]  # keys training read in them
    refused: list[str]  # training's message for each configuration it refuses
    sampled: int  # configurations tried
    complete: bool  # False: a builder failed otherwise, and the keys say nothing


def read_space(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> SpaceReading:
    """Read all of ``space`` (at most ``SAMPLES`` configurations), else ``SAMPLES``
    seeded draws, as training reads them (``training.engine.keys_read``)."""
    from automl_core.training.engine import keys_read  # torch: only here

    configs = distinct_points(space, SAMPLES)
    if configs is None:  # continuous, or larger than SAMPLES: draws (seeded, repeatable)
        rng = np.random.default_rng(0)
        configs = [space.sample(rng) for _ in range(SAMPLES)]
    held: set[str] = set()
    read: set[str] = set()
    refused: list[str] = []
    for config in configs:
        try:
            read |= keys_read(config, input_shape, num_classes)
        except UserInputError as exc:
            refused.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - advice: it must never stop a search
            log.debug("unread-key check skipped: %r", exc)
            return SpaceReading(set(), set(), refused, len(configs), complete=False)
        held |= set(config)
    return SpaceReading(held, read, refused, len(configs), complete=True)


def unread_space_keys(
    space: SearchSpace, input_shape: Sequence[int], num_classes: int
) -> dict[str, list[str]]:
    """Each key that the sampled configurations hold and training reads in none of them,
    with up to two keys it does read that look alike (``difflib``).

    A configuration that training refuses is left out (it fails as a trial, with its own
    message); a key that appears in no configuration read says nothing either way. A
    builder that fails otherwise on a recorded configuration (a user's, reading it in a
    way the recorder does not serve) ends the check with nothing to say: it is advice,
    and must never stop a search that would train.
    """
    return _unread(read_space(space, input_shape, num_classes))


def _unread(reading: SpaceReading) -> dict[str, list[str]]:
    if not reading.complete:
        return {}
    held, read = reading.held, reading.read
    return {key: difflib.get_close_matches(key, sorted(read), n=2) for key in sorted(held - read)}


def check_space_on_data(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> None:
    """Refuse a space of which no sampled configuration can train on data of
    ``input_shape`` (every trial would fail: UserInputError with training's first
    message); warn when some cannot (their trials will fail), and name each key of
    ``space`` that training does not read."""
    reading = read_space(space, input_shape, num_classes)
    if reading.refused and len(reading.refused) == reading.sampled:
        raise UserInputError(
            f"No configuration of the search space can train on this data (features of "
            f"shape {list(input_shape)}, {num_classes} classes): {reading.refused[0]} "
            "Fix the search space."
        )
    if reading.refused:
        log.warning(
            "%d of %d configurations read from the search space cannot train on this data, "
            "and their trials will fail; the first: %s",
            len(reading.refused),
            reading.sampled,
            reading.refused[0],
        )
    for key, alike in _unread(reading).items():
        hint = f"did you mean {' or '.join(repr(k) for k in alike)}? " if alike else ""
        log.warning(
            "search-space key %r is read by no architecture or optimiser of these "
            "configurations, so it changes nothing: %scheck its spelling and where it sits "
            "(docs/reference.md, Training)",
            key,
            hint,
        )
