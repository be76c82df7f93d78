"""Data: load a source into a table, pack it into partitions, read partitions back.

``read_source`` + ``load_source`` (``automl data load``) make the source table
``<name>(id, features real[], label, split)``; ``prepare_dataset`` (``automl data
prepare``) packs it into ``<name>_packed`` and records it in ``automl.datasets``;
``dataset_info``, ``read_partition`` and ``normalize`` are what workers and scoring use.

Only the reader is imported eagerly: worker processes need nothing else.
"""

from automl_core.data.reader import DatasetInfo, dataset_info, normalize, read_partition

__all__ = [
    "DatasetInfo",
    "dataset_info",
    "load_source",
    "normalize",
    "prepare_dataset",
    "read_partition",
    "read_source",
]


def __getattr__(name: str) -> object:
    # Lazy re-exports keep `import automl_core.data` light for workers (no sklearn, csv).
    if name == "load_source":
        from automl_core.data.load import load_source

        return load_source
    if name == "prepare_dataset":
        from automl_core.data.prepare import prepare_dataset

        return prepare_dataset
    if name == "read_source":
        from automl_core.data.sources import read_source

        return read_source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
