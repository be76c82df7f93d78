"""Finding the best model of an experiment and writing it as an export (see the package)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from automl_core import PACKAGE, package_version
from automl_core.artifacts import ArtifactNotFoundError, artifact_store_for, read_uri
from automl_core.errors import UserInputError
from automl_core.export.card import (
    CARD_FORMAT,
    CARD_KEY,
    WEIGHTS_NAMES,
    WEIGHTS_STEM,
    ExportedModel,
    is_export_file,
    is_model_card,
)
from automl_core.state_format import state_file_name

log = logging.getLogger(__name__)

# The registry's default (automl_core.training.registry.DEFAULT_ARCHITECTURE), repeated
# so that exporting does not import torch.
_DEFAULT_ARCHITECTURE = "mlp"


def _best_with_checkpoint(conn: Any, experiment_id: int) -> tuple[dict[str, Any], Any, str]:
    """The leaderboard row of the best trial that has a checkpoint, the checkpoint of its
    best epoch (else, for a trial saved before those were kept, its latest) and which
    of the two it is (``"best"`` or ``"latest"``)."""
    from automl_core.store.repository import best_trial_with_checkpoint, load_checkpoint

    best = best_trial_with_checkpoint(conn, experiment_id)
    if best is None:
        return {}, None, ""
    checkpoint = load_checkpoint(conn, experiment_id, best["trial_id"], best=True)
    if checkpoint is not None:
        return best, checkpoint, "best"
    log.warning(
        "trial %s has no saved best-epoch state (trained before they were kept): "
        "using its latest state instead",
        best["trial_id"],
    )
    return best, load_checkpoint(conn, experiment_id, best["trial_id"]), "latest"


# How a card's data.normalization is applied, for readers of the card other than automl.
_FORMULAS = {
    "global": "(x - mean) / std",
    "per-feature": "(x[i] - mean[i]) / std[i] for each feature i of the row flattened in C order",
}

# What a card's history copies of each epoch (and its time, as ISO text).
_EPOCH_FIELDS = "epoch train_loss train_accuracy valid_loss valid_accuracy seconds samples"


def _history(conn: Any, experiment_id: int, trial_id: int) -> list[dict[str, Any]]:
    from automl_core.store.repository import epochs

    return [
        {
            **{k: getattr(e, k) for k in _EPOCH_FIELDS.split()},
            "recorded_at": e.recorded_at.isoformat() if e.recorded_at else None,
        }
        for e in epochs(conn, experiment_id, [trial_id])
    ]


def best_model(conn: Any, experiment_name: str, *, s3_client: Any | None = None) -> ExportedModel:
    """The experiment's best trial at its best epoch as an ``ExportedModel`` (its card
    without export fields).

    Raises UserInputError when the experiment is unknown or no trial has both a
    validation result and a checkpoint, or a checkpoint stored by reference (``uri``) is
    in an S3 bucket that cannot be used; ``ArtifactNotFoundError`` when it is missing.
    """
    from automl_core.data.packing import Normalization
    from automl_core.data.reader import experiment_dataset
    from automl_core.store.repository import experiment_record

    exp = experiment_record(conn, experiment_name)
    best, checkpoint, kind = _best_with_checkpoint(conn, exp.id)
    if checkpoint is None:
        raise UserInputError(
            f"The experiment {experiment_name!r} has no trial with a validation result and "
            "a checkpoint yet: train at least one epoch (automl run) before exporting."
        )
    state = (
        checkpoint.state if checkpoint.state is not None else read_uri(checkpoint.uri, s3_client)
    )
    info = experiment_dataset(conn, exp)  # it ends the read transaction it opens
    history = _history(conn, exp.id, best["trial_id"])
    at_checkpoint = next((h for h in history if h["epoch"] == checkpoint.epoch), {})
    config = dict(best["config"])
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "architecture": str(config.get("architecture") or _DEFAULT_ARCHITECTURE),
        "config": config,
        "data": {
            "dataset": info.name,
            "feature_shape": list(info.feature_shape),
            "num_classes": info.num_classes,
            "class_values": list(info.class_values),
            "normalization": dict(info.normalization),
            "normalization_formula": _FORMULAS[Normalization.from_dict(info.normalization).kind],
            "source_table": info.source_table,
            "packed_table": info.packed_table,
            "partitions": info.partitions,
            "n_train": info.n_train,
            "n_valid": info.n_valid,
            # A CSV's feature columns, in training order: predict_proba picks a
            # DataFrame's columns by these names. null for other sources.
            "feature_names": None if info.feature_names is None else list(info.feature_names),
        },
        "trial": {
            **{k: best[k] for k in ("status", "bracket", "batch", "rung")},
            "trial_id": int(best["trial_id"]),
            "rank": int(best["rank"]),
        },
        "checkpoint": {
            "epoch": checkpoint.epoch,
            "kind": kind,
            "valid_accuracy": at_checkpoint.get("valid_accuracy"),
            "valid_loss": at_checkpoint.get("valid_loss"),
            "stored_as": "bytea" if checkpoint.state is not None else checkpoint.uri,
        },
        "metrics": {
            "best_valid_accuracy": best["best_valid_accuracy"],
            "best_epoch": best["best_epoch"],
            "best_valid_loss": best["best_valid_loss"],
            "final_valid_accuracy": best["final_valid_accuracy"],
            "final_valid_loss": best["final_valid_loss"],
            "epochs": best["epochs"],
            "train_seconds": best["train_seconds"],
            "history": history,
        },
        "lineage": {
            "experiment": exp.name,
            "experiment_id": exp.id,
            "method": exp.method,
            "seed": exp.seed,
            "airflow_run_id": exp.airflow_run_id,
            "dataset": exp.dataset,
            "source_table": info.source_table,
            "experiment_created_at": exp.created_at.isoformat() if exp.created_at else None,
            "package": PACKAGE,
            "package_version": package_version(),
        },
        "files": {
            "weights": state_file_name(WEIGHTS_STEM, state),
            "weights_sha256": hashlib.sha256(state).hexdigest(),
            "weights_bytes": len(state),
        },
    }
    return ExportedModel(config=config, state=bytes(state), card=card)


def check_export_target(target: str, *, s3_client: Any | None = None) -> Any:
    """The artifact store for ``target``, if an export may be written there.

    A target may be written when it holds no ``model_card.json`` and no weights file of
    an export's name (``model.safetensors``, ``model.pt``), or when its card is a model
    card (a JSON object whose ``format`` starts with ``automl-model-card/``): that is what
    "made by automl" means here, so re-exporting to the same place replaces the earlier
    export and nothing else. Reads the card and leaves nothing written.

    Raises UserInputError naming the target and the fix for a bad target
    (``artifact_store_for``), one that cannot be written (``check_writable``: a folder
    the OS refuses; a missing, denied or unreachable bucket, no credentials), a
    ``model_card.json`` that is not a model card, or a weights file without a card.
    """
    return _checked_target(target, s3_client)[0]


def _checked_target(target: str, s3_client: Any) -> tuple[Any, dict[str, Any] | None]:
    """The store and the model card already there (or None), if ``target`` may be
    written; see check_export_target."""
    store = artifact_store_for(target, client=s3_client)
    store.check_writable()
    fix = "choose another target, or remove the file if it may be replaced."
    try:
        raw = store.get_bytes(CARD_KEY)
    except ArtifactNotFoundError:
        for name in WEIGHTS_NAMES:
            if store.exists(name):
                raise UserInputError(
                    f"{store.describe(name)} exists, but {CARD_KEY} does not, so it was not "
                    f"written by an export and exporting would replace it: {fix}"
                ) from None
        return store, None
    try:
        card = json.loads(raw)
    except (ValueError, RecursionError):
        card = None
    if not is_model_card(card):
        raise UserInputError(
            f"{store.describe(CARD_KEY)} exists and is not a model card written by automl, "
            f"so exporting would replace it: {fix}"
        )
    return store, card


def export_best(
    conn: Any, experiment_name: str, target: str, *, s3_client: Any | None = None
) -> dict[str, Any]:
    """Write the best trial's weights (``model.safetensors``) and ``model_card.json`` to
    ``target``.

    ``target`` is a folder (created if missing) or ``s3://bucket/prefix``; ``s3_client``
    is used for S3 (default: one from the environment). An earlier export at the same
    target is replaced, so a retried export is harmless; if writing fails part way, the
    target still holds a loadable export, the earlier one or the new one (see
    ``_write_export``). Returns the card.

    Raises UserInputError (before writing) for a bad target or one holding files that an
    export did not write (``check_export_target``), an unknown experiment or one with
    nothing to export; and (while writing) when an S3 target stops being usable.
    """
    store, previous = _checked_target(target, s3_client)
    model = best_model(conn, experiment_name, s3_client=s3_client)
    card, where = dict(model.card), store.describe()
    now = datetime.now(UTC).isoformat()
    card["lineage"] = {**card["lineage"], "exported_at": now, "exported_to": where}
    _write_export(store, card, model.state, previous)
    trial, epoch = card["trial"]["trial_id"], card["checkpoint"]["epoch"]
    log.info("exported trial %s of %s (epoch %s) to %s", trial, experiment_name, epoch, where)
    return card


def _write_export(
    store: Any, card: dict[str, Any], state: bytes, previous: dict[str, Any] | None
) -> None:
    """Write ``card`` and ``state`` so that the target holds a loadable export after every
    single write, whichever write fails.

    Each ``put_bytes`` replaces one key atomically (a rename in a folder, one PUT on S3),
    but two keys cannot be switched together, and a card must never name weights of
    other bytes. So the card is the switch: the weights go to a staging key first, a card
    naming them replaces the old card, then the weights go to their usual name and a card
    naming that replaces the first. An export thus writes its weights twice; in exchange
    the layout stays ``model.safetensors`` + ``model_card.json``, and local folders and
    S3 share this one code path.
    """
    final = card["files"]["weights"]
    # Named by the bytes: two exports to one target never share (and delete) a stage.
    staged = state_file_name(f"{WEIGHTS_STEM}.staged-{card['files']['weights_sha256'][:12]}", state)

    def put_card(weights: str) -> None:
        body = {**card, "files": {**card["files"], "weights": weights}}
        store.put_bytes(CARD_KEY, json.dumps(body, indent=2, sort_keys=True).encode("utf-8"))

    store.put_bytes(staged, state)
    put_card(staged)  # the old export is replaced here, by a complete new one
    store.put_bytes(final, state)
    put_card(final)
    # Weights no card names any more: the old card's (say, a model.pt before a
    # model.safetensors) and stages (also those of exports that failed). Only names an
    # export writes are removed: the old card is a file in the user's target, and one
    # edited to name "notes.txt" as its weights must not make the export delete it.
    files = previous.get("files") if previous else None
    old = files.get("weights") if isinstance(files, dict) else None
    try:  # without the right to list (S3), at least this export's own stage goes
        stages = set(store.list(f"{WEIGHTS_STEM}.staged-"))
    except Exception:
        stages = set()
    leftovers = {staged, *stages, *([old] if isinstance(old, str) else [])} - {final}
    for key in sorted(k for k in leftovers if is_export_file(k)):
        try:
            store.delete(key)
        except Exception as exc:  # the export is complete; a leftover file is harmless
            log.warning("could not remove %s: %s", store.describe(key), exc)
