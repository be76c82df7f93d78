"""The seeded order in which a model visits the partitions in each training pass.

A model's weights after an epoch depend on the order in which it trained on the
partitions (SGD is not commutative), and on nothing else that the hopper decides. So when
that order is a function of ``(seed, model, epoch)`` alone, the whole search is repeatable
whichever worker is free first: the scheduler then only decides *when* a model takes its
next partition, never *which* one (issue 14; Cerebro's schedule, Nakandala et al., VLDB
2020, leaves the order free, which makes the weights depend on timing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["train_order"]

_MASK = 2**63 - 1  # SeedSequence takes non-negative integers


def train_order(seed: int, model_id: int, epoch: int, partitions: Sequence[int]) -> tuple[int, ...]:
    """The partition ids in the order model ``model_id`` trains on them in ``epoch``.

    A permutation of ``sorted(partitions)`` drawn from numpy's SeedSequence hashing of
    ``(seed, model_id, epoch)``: the same arguments give the same order on every machine
    and in every process. Raises ValueError when ``partitions`` is empty.
    """
    pids = sorted(int(p) for p in partitions)
    if not pids:
        raise ValueError("The value of partitions is empty, but must list at least one id.")
    entropy = [int(seed) & _MASK, int(model_id) & _MASK, int(epoch) & _MASK]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    return tuple(pids[i] for i in rng.permutation(len(pids)))
