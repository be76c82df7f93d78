"""The model card: its format, the names of an export's files, and reading an export back.

A card comes from a folder or bucket the user controls and may have been edited by hand,
so every field prediction reads is checked here before it is used: a bad one is a
``UserInputError`` naming the card, never a traceback or an allocation the card chose.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from automl_core.artifacts import ArtifactNotFoundError, artifact_store_for, check_key
from automl_core.errors import UserInputError
from automl_core.state_format import TORCH_ARCHIVE_MAGIC, state_file_name

CARD_FORMAT = "automl-model-card/1"
WEIGHTS_STEM = "model"  # + the state format's suffix (automl_core.state_format)
CARD_KEY = "model_card.json"
#: The weights' names, one per state format: ``model.safetensors`` and ``model.pt``.
WEIGHTS_NAMES: tuple[str, ...] = tuple(
    state_file_name(WEIGHTS_STEM, data) for data in (b"", TORCH_ARCHIVE_MAGIC)
)
_CARD_FAMILY = "automl-model-card/"  # every version of the card's format starts with it
# What prediction needs from a card's data section.
_DATA_KEYS = ("dataset", "feature_shape", "num_classes", "class_values", "normalization")
# A staged weights file (write._write_export): this tool's to remove once no card names it.
_STAGED = re.compile(rf"{WEIGHTS_STEM}\.staged-[0-9a-f]{{12}}\.(safetensors|pt)")


def is_export_file(key: str) -> bool:
    """True for the names an export writes as weights (``WEIGHTS_NAMES`` and staged
    ``model.staged-<12 hex>.<suffix>``): the only files an export replaces or removes,
    and the only ones a card may name as its weights."""
    return key in WEIGHTS_NAMES or _STAGED.fullmatch(key) is not None


def is_model_card(card: object) -> bool:
    """True for a JSON object whose ``format`` is of the model card's family (any version)."""
    return isinstance(card, dict) and str(card.get("format", "")).startswith(_CARD_FAMILY)


def max_features() -> int:
    """The most features (the product of ``feature_shape``) a row of a data set can have:
    one float32 row must fit a packed buffer (``automl_core.data.packing.MAX_BUFFER_BYTES``),
    so no data set, hence no export, has more."""
    from automl_core.data.packing import MAX_BUFFER_BYTES

    return MAX_BUFFER_BYTES // 4  # float32


@dataclass(frozen=True)
class ExportedModel:
    """A model ready to predict with: its configuration, state bytes and card; ``origin``
    is the export it was loaded from (a folder or ``s3://`` URI), None when it was built
    from an experiment in the database (``best_model``)."""

    config: dict[str, Any]
    state: bytes
    card: dict[str, Any]
    origin: str | None = None

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.card["data"]["feature_shape"])

    @property
    def num_classes(self) -> int:
        return int(self.card["data"]["num_classes"])

    @property
    def class_values(self) -> list[Any]:
        return list(self.card["data"]["class_values"])

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """The features' names in training order (a CSV's columns); None when unknown
        (other sources, cards written before names were kept)."""
        names = self.card["data"].get("feature_names")
        return None if names is None else tuple(names)

    def predict_proba(self, x: Any) -> Any:
        """Class probabilities, float32 ``[n, num_classes]`` (columns in ``class_values``
        order, rows summing to 1), of raw rows ``x``: normalised first as the model's
        training data was (the card's ``normalization``: global, or per feature), as
        ``automl predict`` does.

        ``x``: an array ``[n, *feature_shape]`` or ``[n, prod(feature_shape)]`` (or one
        row), a pandas DataFrame of feature columns, or a sequence (a Series, say) of
        per-row arrays. A DataFrame's columns (and a one-row Series' index, as
        ``df.iloc[0]`` gives) are taken by name when the card has ``feature_names`` (a
        model trained on a CSV file) and a label is a string: the columns of those names,
        in training order, whatever their order in the DataFrame; other columns (an id,
        the label) are left out (``data.feature_names.frame_columns``). Otherwise (no
        names, or a DataFrame made from a bare array, whose columns are 0, 1, ...) they
        are taken by position, as arrays are.

        Raises UserInputError for a DataFrame that lacks a feature column (naming the
        first ones missing and the model's), has two columns of one feature's name, and
        for rows that are not numbers, do not fit ``feature_shape``, or hold NaN or inf.
        """
        import numpy as np

        from automl_core.data.feature_names import frame_columns
        from automl_core.data.reader import normalize
        from automl_core.training.engine import predict_proba

        info = self.dataset_info()
        x = frame_columns(x, info.feature_names, dataset=info.name)
        rows = np.asarray(_numbers(x) if hasattr(x, "to_numpy") else x)
        if rows.dtype == object and rows.ndim == 1:  # per-row arrays, as read from SQL
            try:
                rows = np.stack([np.asarray(r, dtype=np.float64) for r in rows])
            except (TypeError, ValueError) as exc:
                raise UserInputError(
                    f"The rows hold values that are not numbers ({exc}): pass the features "
                    "only (an id or a label is left out by name when the model knows its "
                    "features' names, feature_names), as numbers."
                ) from None
        normalized = normalize(rows, info)
        bad = ~np.isfinite(normalized.reshape(normalized.shape[0], -1)).all(axis=1)
        if bad.any():  # NaN would score as the first class, without an error
            raise UserInputError(
                f"Row {int(np.argmax(bad))} (counting from 0) has a missing or infinite "
                f"feature (NaN or inf, as pandas reads an empty cell), and {int(bad.sum())} "
                "rows in all: fill or drop them before scoring."
            )
        return predict_proba(
            self.config,
            self.state,
            normalized,
            input_shape=self.feature_shape,
            num_classes=self.num_classes,
        )

    def predict(self, x: Any) -> list[Any]:
        """The predicted label (a value of ``class_values``) of each raw row of ``x``, as
        :meth:`predict_proba` reads it."""
        classes = self.class_values
        return [classes[i] for i in self.predict_proba(x).argmax(axis=1).tolist()]

    def dataset_info(self) -> Any:
        """The card's data section as a ``DatasetInfo``, for ``reader.normalize``.

        Raises ValueError when ``data.normalization`` is not numbers ``mean`` and ``std``
        (global) or lists of one number per feature (per feature; ``Normalization.from_dict``),
        or ``data.feature_names``, when present and not null, is not a list of one distinct
        string per feature (``feature_names.check_feature_names``).
        """
        from automl_core.data.feature_names import check_feature_names
        from automl_core.data.packing import Normalization
        from automl_core.data.reader import DatasetInfo

        data = self.card["data"]
        n_features = math.prod(self.feature_shape)
        norm = Normalization.from_dict(
            data["normalization"], n_features=n_features, what="data.normalization"
        )
        names = check_feature_names(
            data.get("feature_names"), n_features, what="data.feature_names"
        )
        return DatasetInfo(
            name=str(data["dataset"]),
            feature_shape=self.feature_shape,
            num_classes=self.num_classes,
            class_values=self.class_values,
            partitions=int(data.get("partitions") or 1),
            n_train=int(data.get("n_train") or 0),
            n_valid=int(data.get("n_valid") or 0),
            normalization=norm.as_dict(),
            source_table=str(data.get("source_table") or ""),
            packed_table=str(data.get("packed_table") or ""),
            feature_names=names,
        )


def _numbers(x: Any) -> Any:
    """A DataFrame's or Series' values; pandas' nullable columns (``Float64``, ``Int64``,
    as ``convert_dtypes`` makes them) as float64 with NaN for a missing value, which is
    then refused by row, instead of an object array refused as "not numbers"."""
    import numpy as np

    try:
        return x.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):  # text columns, per-row arrays: as they are
        return x.to_numpy()


def _checked_card(raw: bytes) -> tuple[ExportedModel, Any, str]:
    """The model (without state), its ``DatasetInfo`` and the weights' key of the card
    ``raw``. Raises ValueError, KeyError, TypeError, AttributeError, OverflowError
    (``Infinity`` as a count) or RecursionError (JSON nested too deep) naming the bad
    field."""
    card = json.loads(raw)
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"format is {card.get('format')!r}, expected {CARD_FORMAT!r}")
    weights_key = check_key(card["files"]["weights"])
    if not is_export_file(weights_key):  # read only what an export writes
        raise ValueError(
            f"files.weights is {weights_key!r}, but an export names its weights "
            f"{' or '.join(WEIGHTS_NAMES)}"
        )
    model = ExportedModel(config=dict(card["config"]), state=b"", card=card)
    missing = [k for k in _DATA_KEYS if k not in card["data"]]
    if missing:
        raise KeyError(f"data.{missing[0]}")
    info = model.dataset_info()  # converts and checks every field prediction reads
    if min(info.feature_shape, default=0) < 1 or len(info.class_values) != info.num_classes:
        raise ValueError("data.feature_shape, num_classes and class_values disagree")
    # Checked before predicting allocates a row of this shape (np.zeros((1, *shape))).
    features, most = math.prod(info.feature_shape), max_features()
    if features > most:
        raise ValueError(
            f"data.feature_shape is {list(info.feature_shape)}: {features:,} features, more "
            f"than the {most:,} a row of a data set can have"
        )
    return model, info, weights_key


def load_exported(target: str, *, s3_client: Any | None = None) -> ExportedModel:
    """The model exported at ``target`` (a folder or ``s3://bucket/prefix``).

    The card's fields that prediction uses are checked (``data.feature_shape`` has at
    most ``max_features()`` features in all), the weights against its SHA-256, then
    loaded once into the model the card describes, to predict one row of zeros.

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
        model, info, weights_key = _checked_card(raw)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        raise UserInputError(
            f"{store.describe(CARD_KEY)} is not a model card this version can read ({exc}): "
            "export the model again."
        ) from None
    card = model.card
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
    return ExportedModel(config=model.config, state=state, card=card, origin=target)
