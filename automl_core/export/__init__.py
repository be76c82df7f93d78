"""Export the best model of an experiment, and load an exported model back.

An export is two artifacts in a folder or under an S3 prefix:

- ``model.safetensors``: the trial's state at its best epoch, byte for byte as the
  database holds it (weights under ``model/``, optimiser state, epoch and RNG, written by
  ``automl_core.training.state``); a checkpoint written before that format is exported as
  it is, as ``model.pt`` (a ``torch.save`` archive);
- ``model_card.json``: what is needed to use the weights and to trust them: the
  configuration and architecture, the input (feature shape, class values,
  normalisation, and a CSV's feature column names), the metrics (per-epoch history, final, best, and those of the
  exported epoch) and the lineage (experiment, method, Airflow run, data, time,
  package version), plus the weights' file name and SHA-256.

A card always names weights with the bytes it describes, even while an export replaces
an earlier one (``write._write_export``), so a target with a card holds a complete
export. "Best" is the leaderboard's rank (highest best validation accuracy, ties by
trial id) among trials that have a checkpoint, and the state is that trial's best epoch
(the leaderboard's ``best_epoch``; ``automl_core.store.repository`` keeps it), so the
model handed over is the one that was ranked (Keras' save-best-only, Ray Tune's
checkpoint score). Only a trial trained before best-epoch states were kept (schema
version 4) falls back to its latest state, with a warning; the card says which epoch
and which kind.

An export only ever writes, and removes, files of its own names (``card.is_export_file``):
a card edited to name another file as its weights cannot make an export delete it.
Weights are read only by ``load_exported``, through the training package, to check
that they fit their card; ``ExportedModel.state`` stays bytes.

``card`` holds the card's format, ``ExportedModel`` and ``load_exported``; ``write`` finds
the best model and writes an export.
"""

from automl_core.export.card import (
    CARD_FORMAT,
    CARD_KEY,
    WEIGHTS_NAMES,
    WEIGHTS_STEM,
    ExportedModel,
    is_export_file,
    load_exported,
)
from automl_core.export.write import best_model, check_export_target, export_best

__all__ = [
    "CARD_FORMAT",
    "CARD_KEY",
    "WEIGHTS_NAMES",
    "WEIGHTS_STEM",
    "ExportedModel",
    "best_model",
    "check_export_target",
    "export_best",
    "is_export_file",
    "load_exported",
]
