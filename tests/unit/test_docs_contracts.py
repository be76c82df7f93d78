"""The README and docs/reference.md against the code they describe: every environment
variable the code reads has a row in the README's configuration table, every
``SearchRequest`` field a line in the reference, and the README's ``automl watch``
example is what the watch prints."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from automl_core.experiment.progress import rung_label
from automl_core.experiment.request import SearchRequest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
REFERENCE = (REPO / "docs" / "reference.md").read_text()


def test_every_environment_variable_is_in_the_readme_table() -> None:
    read = set()
    for folder in ("automl_core", "plugins", "dags"):
        for path in (REPO / folder).rglob("*.py"):
            read |= set(re.findall(r"[\"'](AUTOML_[A-Z0-9_]+)[\"']", path.read_text()))
    assert {"AUTOML_DB_URL", "AUTOML_TORCH_THREADS", "AUTOML_DB_RETRY_S"} <= read
    table = set(re.findall(r"^\| `(AUTOML_[A-Z0-9_]+)` \|", README, re.M))
    assert read - table == set(), "add these to README.md, Configuration"
    assert table - read == set(), "README.md, Configuration names variables nothing reads"


def test_every_search_request_field_is_in_the_reference() -> None:
    block = REFERENCE[REFERENCE.index("class SearchRequest:") :]
    block = block[: block.index("def validate")]
    documented = set(re.findall(r"(?:^    |; )(\w+):", block, re.M))
    fields = {f.name for f in dataclasses.fields(SearchRequest)}
    assert fields - documented == set(), "add these to docs/reference.md, SearchRequest"
    assert documented - fields == set()


def test_the_readmes_watch_line_numbers_rungs_as_the_watch_does() -> None:
    (line,) = re.findall(r"`\[ *[\d.]+s\] bracket 2  (rung .*?) \(3 x 3 epochs\)", README)
    assert line == rung_label(1, 3)
