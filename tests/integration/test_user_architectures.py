"""A model built from a user architecture (``AUTOML_ARCHITECTURE_MODULES``) can be
exported and predicted with by the ``automl`` command in a fresh process, which learns
of the architecture only from that variable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from automl_core.data.load import load_source
from automl_core.data.prepare import prepare_dataset
from automl_core.data.reader import dataset_info, normalize, read_partition
from automl_core.data.sources import SourceData, SplitPart
from automl_core.store import repository as repo

REPO = Path(__file__).resolve().parents[2]
MODULE = "tests.integration.user_architecture"
CONFIG = {"architecture": "user_linear", "lr": 0.05, "batch_size": 16, "optimizer": "adam"}
ACCURACIES = [0.9, 0.6]  # the best epoch (1) is not the last (2)


def _train(conn: Any) -> dict[int, bytes]:
    """A toy table, prepared, and one trial of ``CONFIG`` trained for 2 epochs."""
    from automl_core.training.engine import train_partition

    importlib.import_module(MODULE)  # training registers it here; the CLI must do it alone
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    load_source(conn, SourceData("toy", (4,), "integer", (SplitPart("train", x, y),)), "toy")
    prepare_dataset(conn, "toy", partitions=2, seed=0)
    info = dataset_info(conn, "toy")
    parts = [read_partition(conn, "toy", p, "train", info=info) for p in range(2)]
    exp = repo.create_experiment(conn, name="user", method="random", dataset="toy", spec={},
                                 seed=0)  # fmt: skip
    repo.upsert_trials(conn, exp.id, [repo.TrialRow(0, CONFIG)])
    states: dict[int, bytes] = {}
    state = None
    for epoch, accuracy in enumerate(ACCURACIES, start=1):
        for px, py in parts:
            state, _ = train_partition(CONFIG, state, px, py, input_shape=(4,), num_classes=2,
                                       epoch=epoch, seed=0)  # fmt: skip
        repo.record_epoch(conn, exp.id, 0, epoch, train_loss=0.5, train_accuracy=accuracy,
                          valid_loss=0.5, valid_accuracy=accuracy, seconds=0.1,
                          samples=60)  # fmt: skip
        repo.save_checkpoint(conn, exp.id, 0, epoch, state=state)
        states[epoch] = state
    return states


def _scores(conn: Any, table: str) -> list[tuple[int, int, float]]:
    with conn.cursor() as cur:
        cur.execute(f"SELECT id, predicted, probability FROM {table} ORDER BY id")
        rows = [(int(i), int(p), float(q)) for i, p, q in cur.fetchall()]
    conn.rollback()
    return rows


def _expected(conn: Any, state: bytes) -> list[tuple[int, int, float]]:
    from automl_core.training.engine import predict_proba

    info = dataset_info(conn, "toy")
    with conn.cursor() as cur:
        cur.execute("SELECT id, features FROM toy ORDER BY id")
        rows = cur.fetchall()
    conn.rollback()
    proba = predict_proba(CONFIG, state, normalize(np.array([r[1] for r in rows]), info),
                          input_shape=(4,), num_classes=2)  # fmt: skip
    return [(int(r[0]), int(p.argmax()), float(p.max())) for r, p in zip(rows, proba, strict=True)]


@pytest.mark.timeout(180)
def test_export_and_predict_load_a_user_architecture(
    conn: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_ARCHITECTURE_MODULES", MODULE)
    states = _train(conn)
    export = str(tmp_path / "model")
    script = (
        "import sys\n"
        "from automl_core.cli import main\n"
        f"assert {MODULE!r} not in sys.modules\n"
        f"rc = main(['export', 'user', '--to', {export!r}])\n"
        "rc = rc or main(['predict', 'user', '--table', 'toy', '--out-table', 'by_name'])\n"
        f"rc = rc or main(['predict', '--model', {export!r}, '--table', 'toy',\n"
        "                  '--out-table', 'by_export'])\n"
        "sys.exit(rc)\n"
    )
    env = dict(os.environ, AUTOML_DB_URL=db_url, AUTOML_ARCHITECTURE_MODULES=MODULE,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=150)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # Both predictions are the best epoch's model, not the last epoch's.
    want = _expected(conn, states[1])
    assert want != _expected(conn, states[2])
    for table in ("by_name", "by_export"):
        got = _scores(conn, table)
        assert [r[:2] for r in got] == [r[:2] for r in want]
        assert np.allclose([r[2] for r in got], [r[2] for r in want], rtol=1e-5)
