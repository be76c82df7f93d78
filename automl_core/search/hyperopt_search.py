"""Hyperopt (TPE or random) as a batched ask/tell search whose state is its history.

Implementation notes
--------------------
hyperopt's ``fmin`` owns the loop; here we use its low-level API instead, so the search
never trains anything and can be rebuilt from stored trials alone:

- The state is the list of told ``(config, metric)`` pairs. Every ``ask_batch`` builds a
  fresh ``hyperopt.Trials`` from it: each config is turned back into hyperopt's
  label assignment (``SearchSpace.hyperopt_vals``) and inserted as a finished trial with
  ``loss = -metric`` (the metric is validation accuracy, higher is better). A failed
  trial (metric ``None``/NaN) is inserted with status ``fail``; TPE ranks it as
  infinitely bad. ``from_history`` is therefore exactly equivalent to telling.
- Batches: TPE ignores pending trials, so k calls to ``suggest`` would propose nearly
  the same point k times. After each proposal we insert it as a finished trial with a
  *constant liar* loss (by default the worst observed loss) before proposing the next:
  the fake bad result pushes the next proposal elsewhere. The lies live only in the
  throw-away ``Trials`` of this call.
- The first ``n_startup_jobs`` told trials come from random sampling, as in hyperopt;
  lies do not count towards that threshold, and neither is TPE used before one told
  trial has a result (failures alone leave it nothing to model). hyperopt's default of 20 is sized for
  hundreds of evaluations; a search of a few batches would never leave random search,
  so ``startup_trials`` sizes it to the budget (a third of it, 2 to 20).
- No repeats: a proposal equal to a told trial, a pending one or an earlier proposal of
  the batch (TPE does this in discrete spaces, whatever the liar) is drawn again with
  the next seed, up to ``RETRIES`` times; then one distinct random configuration is
  taken instead (``sample_distinct``), so a batch never trains a model twice.
- Seeds: proposal ``j`` of a batch made after ``t`` told trials uses the seed
  ``SeedSequence([seed, t, j])`` (retry ``a``: ``[seed, t, j, a]``), so a given seed and history always give the same batch
  (a retried Airflow task re-proposes exactly what the first attempt proposed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from automl_core.errors import UserInputError
from automl_core.search.base import is_missing
from automl_core.search.distinct import config_key, sample_distinct
from automl_core.space import SearchSpace

ALGOS = ("tpe", "rand")
LIARS = ("worst", "mean", "best")
#: hyperopt's own ``n_startup_jobs`` default: the most random start-up trials by default.
HYPEROPT_STARTUP = 20
#: Fewest random start-up trials by default: TPE splits the history into good and bad.
MIN_STARTUP = 2
#: New seeds tried when a proposal repeats a configuration, before a random one is taken.
RETRIES = 8
# The last word of the random fallback's seed (a retry number never reaches it).
_FALLBACK = 2**31 - 1


def startup_trials(given: int | None, total: int) -> int:
    """Finished trials sampled at random before TPE starts, for a search of ``total``.

    ``given`` is what the user set (None: the default, ``min(20, max(2, total // 3))``:
    a third of the budget explores at random, at least 2 so TPE has a good and a bad
    example, at most hyperopt's own 20). A given value must be an integer from 1 to
    ``total``: more than the whole budget would be random search.

    Raises ``UserInputError`` naming the value and the limits.
    """
    if given is None:
        return min(HYPEROPT_STARTUP, max(MIN_STARTUP, total // 3))
    if isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= max(1, total):
        raise UserInputError(
            f"The value of startup_trials is {given!r}, but must be an integer from 1 to "
            f"{max(1, total)} (the search's batches x batch_size); more would be random "
            "search (use --method random)."
        )
    return given


class HyperoptSearch:
    """Batched TPE/random proposals from all told trials.

    ``seed`` is a non-negative int; ``algo`` is ``"tpe"`` or ``"rand"``;
    ``n_startup_jobs`` trials are sampled at random before TPE starts (hyperopt's
    default is 20); ``liar`` is the loss given to in-batch proposals (``"worst"``,
    ``"mean"`` or ``"best"`` observed loss); ``n_ei_candidates`` is TPE's number of
    candidates per proposal. Raises ``UserInputError`` for invalid arguments.
    """

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        algo: str = "tpe",
        n_startup_jobs: int = 20,
        *,
        liar: str = "worst",
        n_ei_candidates: int = 24,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise UserInputError(f"The value of seed is {seed!r}, but must be an integer >= 0.")
        if algo not in ALGOS:
            raise UserInputError(f"The value of algo is {algo!r}, but must be one of {ALGOS}.")
        for name, value, minimum in (
            ("n_startup_jobs", n_startup_jobs, 0),
            ("n_ei_candidates", n_ei_candidates, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise UserInputError(
                    f"The value of {name} is {value!r}, but must be an integer >= {minimum}."
                )
        if liar not in LIARS:
            raise UserInputError(f"The value of liar is {liar!r}, but must be one of {LIARS}.")
        self.space = space
        self.seed = seed
        self.algo = algo
        self.n_startup_jobs = n_startup_jobs
        self.liar = liar
        self.n_ei_candidates = n_ei_candidates
        self._history: list[tuple[dict[str, Any], float | None]] = []
        self._vals: list[dict[str, list[Any]]] = []
        self._domain: Any = None

    @classmethod
    def from_history(
        cls,
        space: SearchSpace,
        history: Sequence[tuple[dict[str, Any], float | None]],
        seed: int,
        **kwargs: Any,
    ) -> HyperoptSearch:
        """A search that was told ``history`` (``(config, metric)`` in order).

        Gives the same proposals as the object that was told the same trials.
        """
        search = cls(space, seed, **kwargs)
        for config, metric in history:
            search.tell(config, metric)
        return search

    @property
    def history(self) -> list[tuple[dict[str, Any], float | None]]:
        """The told trials, in order."""
        return [(dict(config), metric) for config, metric in self._history]

    def tell(self, config: dict[str, Any], metric: float | None) -> None:
        """Record a finished trial (``metric``: higher is better; ``None``/NaN: failed).

        Raises ``UserInputError`` when ``config`` does not belong to the space.
        """
        vals = self.space.hyperopt_vals(config)  # validates before recording
        self._vals.append(vals)
        self._history.append((dict(config), None if is_missing(metric) else float(metric)))  # type: ignore[arg-type]

    def ask(self) -> dict[str, Any]:
        """One proposal (``ask_batch(1)[0]``)."""
        return self.ask_batch(1)[0]

    def ask_batch(self, k: int, pending: Sequence[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """``k`` proposals from the told trials, kept apart by a constant liar.

        ``pending`` are configurations already running (proposed earlier, not yet told);
        they are given the liar loss too, so the batch avoids them. No proposal equals a
        told trial, a pending one or another of the batch. Deterministic for a given
        seed, history and ``pending``. Raises ``UserInputError`` when ``k < 1`` or the
        space has fewer than ``k`` configurations that are neither told nor pending.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserInputError(f"The batch size k is {k!r}, but must be an integer >= 1.")
        from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Trials

        domain = self._hyperopt_domain()
        trials = Trials()
        docs = []
        for tid, ((_, metric), vals) in enumerate(zip(self._history, self._vals, strict=True)):
            result = (
                {"status": STATUS_FAIL}
                if metric is None
                else {"status": STATUS_OK, "loss": -metric}
            )
            docs.append(_finished_doc(trials, domain, tid, vals, result, JOB_STATE_DONE))
        liar_result = {"status": STATUS_OK, "loss": self._liar_loss()}
        for config in pending:
            vals = self.space.hyperopt_vals(config)
            docs.append(_finished_doc(trials, domain, len(docs), vals, liar_result, JOB_STATE_DONE))
        trials.insert_trial_docs(docs)
        trials.refresh()

        use_tpe = self.uses_tpe
        taken = [config for config, _ in self._history] + list(pending)
        seen = {config_key(c) for c in taken}
        proposals: list[dict[str, Any]] = []
        for j in range(k):
            tid = len(docs) + j
            found, doc = self._propose_new(domain, trials, tid, j, use_tpe, seen)
            if found is None:
                rng = np.random.default_rng([self.seed, len(self._history), j, _FALLBACK])
                (config,) = sample_distinct(self.space, 1, rng, exclude=taken + proposals)
                vals = self.space.hyperopt_vals(config)
                doc = _finished_doc(trials, domain, tid, vals, liar_result, JOB_STATE_DONE)
            else:
                config = found
            seen.add(config_key(config))
            proposals.append(config)
            doc["state"] = JOB_STATE_DONE
            doc["result"] = dict(liar_result)
            trials.insert_trial_docs([doc])
            trials.refresh()
        return proposals

    @property
    def uses_tpe(self) -> bool:
        """Whether the next batch comes from TPE (else from random sampling): after
        ``n_startup_jobs`` told trials, once one of them has a result. With failures only,
        TPE would have nothing to model but the batch's own lies (which then all rank
        best) and would draw the batch towards itself."""
        return (
            self.algo == "tpe"
            and len(self._history) >= max(1, self.n_startup_jobs)
            and any(metric is not None for _, metric in self._history)
        )

    def _propose_new(
        self, domain: Any, trials: Any, tid: int, j: int, use_tpe: bool, seen: set[Any]
    ) -> tuple[dict[str, Any] | None, Any]:
        """A proposal (and its hyperopt doc) whose configuration is not in ``seen``, or
        ``(None, None)`` when ``RETRIES`` seeds gave only repeats."""
        from hyperopt import rand, tpe

        for attempt in range(RETRIES):
            spawn = [self.seed, len(self._history), j] + ([attempt] if attempt else [])
            seed = int(np.random.SeedSequence(spawn).generate_state(1)[0])
            if use_tpe:
                # n_startup_jobs=0: the threshold was checked on real trials only,
                # since hyperopt would also count the lies.
                (doc,) = tpe.suggest(
                    [tid],
                    domain,
                    trials,
                    seed,
                    n_startup_jobs=0,
                    n_EI_candidates=self.n_ei_candidates,
                    verbose=False,
                )
            else:
                (doc,) = rand.suggest([tid], domain, trials, seed)
            config = self.space.config_from_hyperopt(doc["misc"]["vals"])
            if config_key(config) not in seen:
                return config, doc
        return None, None

    def _liar_loss(self) -> float:
        losses = [-metric for _, metric in self._history if metric is not None]
        if not losses:
            return 0.0  # unused: with no result yet, proposals are random (uses_tpe)
        if self.liar == "worst":
            return max(losses)
        if self.liar == "best":
            return min(losses)
        return math.fsum(losses) / len(losses)

    def _hyperopt_domain(self) -> Any:
        if self._domain is None:
            from hyperopt.base import Domain

            # The objective is never called: trials are evaluated by the runner.
            self._domain = Domain(_never_called, self.space.to_hyperopt())
        return self._domain


def _never_called(_: Any) -> float:  # pragma: no cover - hyperopt needs some objective
    raise RuntimeError("HyperoptSearch never evaluates the objective itself.")


def _finished_doc(
    trials: Any,
    domain: Any,
    tid: int,
    vals: dict[str, list[Any]],
    result: dict[str, Any],
    state: int,
) -> dict[str, Any]:
    """A hyperopt trial document for a trial that already ran."""
    misc = {
        "tid": tid,
        "cmd": domain.cmd,
        "workdir": domain.workdir,
        "idxs": {label: [tid] if value else [] for label, value in vals.items()},
        "vals": {label: list(value) for label, value in vals.items()},
    }
    docs: list[dict[str, Any]] = trials.new_trial_docs([tid], [None], [dict(result)], [misc])
    (doc,) = docs
    doc["state"] = state
    return doc
