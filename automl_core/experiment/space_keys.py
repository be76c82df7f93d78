"""Keys of a search space that training never reads.

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

import numpy as np

from automl_core.errors import UserInputError
from automl_core.search.distinct import distinct_points
from automl_core.space import SearchSpace

log = logging.getLogger(__name__)

#: Configurations read: all of a space with at most this many, else this many draws.
SAMPLES = 64


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
    from automl_core.training.engine import keys_read  # torch: only here

    configs = distinct_points(space, SAMPLES)
    if configs is None:  # continuous, or larger than SAMPLES: draws (seeded, repeatable)
        rng = np.random.default_rng(0)
        configs = [space.sample(rng) for _ in range(SAMPLES)]
    held: set[str] = set()
    read: set[str] = set()
    for config in configs:
        try:
            read |= keys_read(config, input_shape, num_classes)
        except UserInputError:
            continue
        except Exception as exc:  # noqa: BLE001 - see above
            log.debug("unread-key check skipped: %r", exc)
            return {}
        held |= set(config)
    return {key: difflib.get_close_matches(key, sorted(read), n=2) for key in sorted(held - read)}


def warn_unread_keys(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> None:
    """Log a warning naming each key of ``space`` that training does not read."""
    for key, alike in unread_space_keys(space, input_shape, num_classes).items():
        hint = f"did you mean {' or '.join(repr(k) for k in alike)}? " if alike else ""
        log.warning(
            "search-space key %r is read by no architecture or optimiser of these "
            "configurations, so it changes nothing: %scheck its spelling and where it sits "
            "(docs/reference.md, Training)",
            key,
            hint,
        )
