"""Export the best model of an experiment, and load an exported model back.

An export is two artifacts in a folder or under an S3 prefix:

- ``model.safetensors``: the trial's state at its best epoch, byte for byte as the
  database holds it (weights under ``model/``, optimiser state, epoch and RNG, written by
  ``automl_core.training.state``); a checkpoint written before that format is exported as
  it is, as ``model.pt`` (a ``torch.save`` archive);
- ``model_card.json``: what is needed to use the weights and to trust them: the
  configuration and architecture, the input (feature shape, class values,
  normalisation), the metrics (per-epoch history, final, best, and those of the
  exported epoch) and the lineage (experiment, method, Airflow run, data, time,
  package version), plus the weights' file name and SHA-256.

A card always names weights with the bytes it describes, even while an export replaces
an earlier one (``_write_export``), so a target with a card holds a complete export.
"Best" is the leaderboard's rank (highest best validation accuracy, ties by trial id)
among trials that have a checkpoint, and the state is that trial's best epoch (the
leaderboard's ``best_epoch``; ``automl_core.store.repository`` keeps it), so the model
handed over is the one that was ranked (Keras' save-best-only, Ray Tune's checkpoint
score). Only a trial trained before best-epoch states were kept (schema version 4) falls
back to its latest state, with a warning; the card says which epoch and which kind.

Weights are read only by ``load_exported``, through the training package, to check
that they fit their card; ``ExportedModel.state`` stays bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from automl_core import PACKAGE, package_version
from automl_core.artifacts import ArtifactNotFoundError, artifact_store_for, check_key, read_uri
from automl_core.errors import UserInputError
from automl_core.state_format import state_file_name

log = logging.getLogger(__name__)

CARD_FORMAT = "automl-model-card/1"
WEIGHTS_STEM = "model"  # + the state format's suffix (automl_core.state_format)
CARD_KEY = "model_card.json"
_CARD_FAMILY = "automl-model-card/"  # every version of the card's format starts with it
# The registry's default (automl_core.training.registry.DEFAULT_ARCHITECTURE), repeated
# so that exporting does not import torch.
_DEFAULT_ARCHITECTURE = "mlp"
# What prediction needs from a card's data section.
_DATA_KEYS = ("dataset", "feature_shape", "num_classes", "class_values", "normalization")
# A staged weights file (_write_export): this tool's to remove once no card names it.
_STAGED = re.compile(rf"{WEIGHTS_STEM}\.staged-[0-9a-f]{{12}}\.(safetensors|pt)")


@dataclass(frozen=True)
class ExportedModel:
    """A model ready to predict with: its configuration, state bytes and card."""

    config: dict[str, Any]
    state: bytes
    card: dict[str, Any]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.card["data"]["feature_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.card["data"]["num_classes"])

    @property
    def class_values(self) -> list[Any]:
        return list(self.card["data"]["class_values"])

    def dataset_info(self) -> Any:
        """The card's data section as a ``DatasetInfo``, for ``reader.normalize``."""
        from automl_core.data.reader import DatasetInfo

        data = self.card["data"]
        return DatasetInfo(
            name=str(data["dataset"]),
            feature_shape=self.feature_shape,
            num_classes=self.num_classes,
            class_values=self.class_values,
            partitions=int(data.get("partitions") or 1),
            n_train=int(data.get("n_train") or 0),
            n_valid=int(data.get("n_valid") or 0),
            normalization={k: float(v) for k, v in data["normalization"].items()},
            source_table=str(data.get("source_table") or ""),
            packed_table=str(data.get("packed_table") or ""),
        )


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
            "normalization_formula": "(x - mean) / std",
            "source_table": info.source_table,
            "packed_table": info.packed_table,
            "partitions": info.partitions,
            "n_train": info.n_train,
            "n_valid": info.n_valid,
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
        for name in (f"{WEIGHTS_STEM}.safetensors", f"{WEIGHTS_STEM}.pt"):
            if store.exists(name):
                raise UserInputError(
                    f"{store.describe(name)} exists, but {CARD_KEY} does not, so it was not "
                    f"written by an export and exporting would replace it: {fix}"
                ) from None
        return store, None
    try:
        card = json.loads(raw)
    except ValueError:
        card = None
    if not (isinstance(card, dict) and str(card.get("format", "")).startswith(_CARD_FAMILY)):
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
    # Weights no card names any more. The old card's (say, a model.pt before a
    # model.safetensors) and stages (also those of exports that failed) were written
    # by an export: they are this tool's to remove.
    files = previous.get("files") if previous else None
    old = files.get("weights") if isinstance(files, dict) else None
    try:  # without the right to list (S3), at least this export's own stage goes
        stages = {key for key in store.list(f"{WEIGHTS_STEM}.staged-") if _STAGED.fullmatch(key)}
    except Exception:
        stages = set()
    for key in {staged, old, *stages} - {final, CARD_KEY, None}:
        try:
            store.delete(check_key(str(key)))
        except Exception as exc:  # the export is complete; a leftover file is harmless
            log.warning("could not remove %s: %s", store.describe(str(key)), exc)


def load_exported(target: str, *, s3_client: Any | None = None) -> ExportedModel:
    """The model exported at ``target`` (a folder or ``s3://bucket/prefix``).

    The card's fields that prediction uses are checked, the weights against its SHA-256,
    then loaded once into the model the card describes, to predict one row of zeros.

    Raises UserInputError naming the target when it holds no export, the card is not
    a model card of this format or has a bad field, the weights do not match the card
    (their SHA-256, or their model: not a consistent export), or the trainer refuses
    the card's configuration (say, an architecture not registered in this process).
    """
    store = artifact_store_for(target, client=s3_client)
    try:
        raw = store.get_bytes(CARD_KEY)
    except ArtifactNotFoundError:
        raise UserInputError(
            f"There is no exported model at {target!r} ({CARD_KEY} is missing): export one "
            f"with `automl export EXPERIMENT --to {target}`."
        ) from None
    try:
        card = json.loads(raw)
        if card.get("format") != CARD_FORMAT:
            raise ValueError(f"format is {card.get('format')!r}, expected {CARD_FORMAT!r}")
        weights_key = check_key(card["files"]["weights"])
        model = ExportedModel(config=dict(card["config"]), state=b"", card=card)
        missing = [k for k in _DATA_KEYS if k not in card["data"]]
        if missing:
            raise KeyError(f"data.{missing[0]}")
        norm = card["data"]["normalization"]
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in norm.values()):
            raise ValueError(f"data.normalization is {norm!r}: its values must be numbers")
        info = model.dataset_info()  # converts every other field prediction reads
        if min(info.feature_shape, default=0) < 1 or len(info.class_values) != info.num_classes:
            raise ValueError("data.feature_shape, num_classes and class_values disagree")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserInputError(
            f"{store.describe(CARD_KEY)} is not a model card this version can read ({exc}): "
            "export the model again."
        ) from None
    try:
        state = store.get_bytes(weights_key)
    except ArtifactNotFoundError:
        raise UserInputError(
            f"The export at {target!r} has a card but no {weights_key}: export it again."
        ) from None
    if hashlib.sha256(state).hexdigest() != card["files"].get("weights_sha256"):
        raise UserInputError(
            f"{store.describe(weights_key)} does not match the SHA-256 in its model card "
            "(changed or truncated after export): export the model again."
        )
    import numpy as np

    from automl_core.training.engine import predict

    shape, where = model.feature_shape, store.describe()
    try:  # a model card edited by hand, or weights of another model with their SHA-256
        zeros = np.zeros((1, *shape), np.float32)
        predict(model.config, state, zeros, input_shape=shape, num_classes=info.num_classes)
    except UserInputError as exc:  # a configuration the trainer refuses
        raise UserInputError(f"The model card at {where} cannot be used: {exc}") from None
    except (ValueError, RuntimeError) as exc:  # InvalidStateError, torch's size mismatch
        raise UserInputError(
            f"{where} is not a consistent export: its weights do not fit its model card "
            f"({' '.join(str(exc).split())[:300]}): export the model again."
        ) from None
    return ExportedModel(config=model.config, state=state, card=card)
