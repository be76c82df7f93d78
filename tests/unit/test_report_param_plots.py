"""The report's hyperparameter view (value against best validation accuracy, per key)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automl_core.report.param_plots import plot_hyperparameters, varying_keys


def _board(configs: list[dict[str, object]], accuracy: list[float | None]) -> pd.DataFrame:
    return pd.DataFrame({"config": configs, "best_valid_accuracy": accuracy})


def test_varying_keys_leave_out_shared_keys_and_put_conditional_ones_last() -> None:
    configs = [
        {"architecture": "mlp", "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "bs": 32},
        {"architecture": "mlp", "optimizer": "adam", "lr": 0.01, "bs": 32},
        {"architecture": "mlp", "optimizer": "sgd", "lr": 0.05, "momentum": 0.8, "bs": 32},
    ]
    assert varying_keys(configs) == ["lr", "optimizer", "momentum"]
    assert varying_keys(configs[:1]) == []


def test_a_panel_per_varying_key_and_nothing_without_results(tmp_path: Path) -> None:
    configs = [
        {"architecture": a, "lr": lr, "depth": d}
        for a, lr, d in [("mlp", 1e-4, 1), ("cnn1d", 1e-2, 2), ("mlp", 3e-2, 1), ("cnn1d", 1e-3, 2)]
    ]
    path = plot_hyperparameters(_board(configs, [0.5, 0.9, None, 0.7]), tmp_path / "h.png")
    assert path is not None and path.read_bytes().startswith(b"\x89PNG")
    assert plot_hyperparameters(_board(configs, [None] * 4), tmp_path / "n.png") is None
    same = [{"architecture": "mlp"}] * 3
    assert plot_hyperparameters(_board(same, [0.5, 0.6, 0.7]), tmp_path / "s.png") is None
    assert not (tmp_path / "n.png").exists() and not (tmp_path / "s.png").exists()
