"""A report folder holding symbolic links at a report file's name: the report replaces
the link, and never writes through it to the file it points at (real PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from automl_core.cli import main
from automl_core.errors import UserInputError
from automl_core.report import write_report
from tests.integration.test_results_report import MIXED, add_experiment


def test_a_rerun_replaces_links_at_report_names_and_keeps_their_targets(
    conn: Any, tmp_path: Path
) -> None:
    """With DIR/workers.png a link to a file outside, `automl report EXP --out DIR`
    overwrote that file with PNG bytes (the folder held a report's index.html)."""
    add_experiment(conn, "mixed", "random", MIXED)
    site, outside = tmp_path / "site", tmp_path / "outside"
    outside.mkdir()
    index = write_report(conn, "mixed", site)
    # The page too: a link to another report's page (so the folder is a report's).
    other = f"{index.read_text()}<!-- another report -->"
    contents = {
        **{name: f"mine: {name}" for name in ("workers.png", "best_by_trial.png")},
        "learning_curves.png": "mine too",
        "index.html": other,
    }
    for name, text in contents.items():
        (outside / name).write_text(text)
        (site / name).unlink()
        (site / name).symlink_to(outside / name)
    assert main(["report", "mixed", "--out", str(site)]) == 0
    for name, text in contents.items():
        assert (outside / name).read_bytes() == text.encode()
        assert not (site / name).is_symlink() and (site / name).is_file()
    assert (site / "workers.png").read_bytes().startswith(b"\x89PNG")
    assert "Experiment mixed" in (site / "index.html").read_text()
    assert not [p for p in site.iterdir() if p.name.endswith(".tmp")]  # nothing left over


def test_a_dangling_link_at_a_report_name_is_refused_and_nothing_is_created(
    conn: Any, tmp_path: Path
) -> None:
    """A link to a file that does not exist yet looked like no file at all: the report
    claimed the folder by writing its placeholder index.html through the link, creating
    the file it pointed at."""
    add_experiment(conn, "mixed", "random", MIXED)
    site, target = tmp_path / "site", tmp_path / "elsewhere.html"
    site.mkdir()
    (site / "index.html").symlink_to(target)
    with pytest.raises(UserInputError, match="index.html', which was not written by an automl"):
        write_report(conn, "mixed", site)
    assert not os.path.lexists(target) and (site / "index.html").is_symlink()
