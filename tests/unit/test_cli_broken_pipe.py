"""``automl ... | head``: a reader that stops early ends the command quietly (status 1,
nothing on stderr), not with a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AUTOML = [sys.executable, "-m", "automl_core"]
SCHEDULE = ["schedule", "hyperband", "--R", "243", "--eta", "3"]


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_output_into_a_closed_pipe_ends_quietly(extra: list[str]) -> None:
    # The reader's end is closed before the command starts, so every write fails.
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*AUTOML, *SCHEDULE, *extra], stdout=write, stderr=subprocess.PIPE, timeout=120
        )
    finally:
        os.close(write)
    assert done.stderr.decode() == ""
    assert done.returncode == 1


def test_head_gets_its_line_and_no_traceback() -> None:
    # 2,000 configurations, ~330 kB: more than a pipe holds, so writes are still due
    # when head has printed its line and exited.
    sample = ["space", "sample", "examples/spaces/digits.yaml", "--method", "random"]
    command = " ".join([*AUTOML, *sample, "--n", "2000"]) + " | head -1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert done.stdout.startswith('{"architecture": ') and done.stdout.count("\n") == 1
    assert done.stderr == ""
    assert done.returncode == 1
