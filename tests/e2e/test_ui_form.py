"""The trigger form of the Hyperband DAG in the Airflow 3 UI, in headless Chromium.

Debian's chromium is used (Playwright's own browser download is not available here):
``apt-get install -y chromium`` provides /usr/bin/chromium.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from automl_airflow.params import run_fields
from automl_airflow.specs import load_spec

from tests.e2e.airflow_server import HYPERBAND_DAG, REPO, AirflowStandalone

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT_COPY = REPO / "docs" / "images" / "trigger-form.png"


@pytest.fixture
def page(tmp_path: Path, airflow_server: AirflowStandalone) -> Iterator[Any]:
    """A logged-in page (as the simple auth manager's generated admin)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium with `apt-get install -y chromium` "
            "(Playwright's browser download is not used)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 1900},
        )
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.goto(airflow_server.base_url + "/", wait_until="domcontentloaded")
        page.locator("input[name=username]").fill("admin")
        page.locator("input[name=password]").fill(airflow_server.password())
        page.get_by_role("button", name="Sign in").click()
        page.locator("input[name=password]").wait_for(state="detached")
        try:
            yield page
        finally:
            context.close()


def open_form(page: Any, server: AirflowStandalone) -> Any:
    page.goto(f"{server.base_url}/dags/{HYPERBAND_DAG}", wait_until="domcontentloaded")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    return dialog


def form_input(dialog: Any, name: str) -> Any:
    """The input of param ``name`` (the form names inputs ``element_<param>``)."""
    return dialog.locator(f"[name=element_{name}], #element_{name}").first


def submit(page: Any, dialog: Any) -> Any:
    """Click the form's Trigger button; the API's answer to the POST it sends."""
    with page.expect_response(
        lambda r: r.url.endswith(f"/dags/{HYPERBAND_DAG}/dagRuns") and r.request.method == "POST"
    ) as answer:
        dialog.get_by_role("button", name="Trigger").click()
    return answer.value


@pytest.mark.timeout(1200)  # standalone's start-up and a run of up to 600 s
def test_trigger_form_renders_the_params_and_runs_the_dag(
    page: Any,
    airflow_server: AirflowStandalone,
    automl_db: str,
    tmp_path: Path,
) -> None:
    spec = load_spec(REPO / "dags" / "specs" / "hyperband_digits.yaml", base_dir=REPO)
    dialog = open_form(page, airflow_server)

    # Every param shows its title and its description; Hyperband's shape knobs do not.
    lines = {line.strip() for line in dialog.inner_text().splitlines()}
    for field in run_fields(spec):
        assert field.schema["title"] in lines, field.name
        assert field.schema["description"] in lines, field.name
    for knob in ("Epochs per trial", "eta", "skip_last", "R"):
        assert knob not in lines
    assert form_input(dialog, "table").input_value() == "digits"

    shot = tmp_path / "trigger-form.png"
    dialog.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT_COPY)

    # A bad value is refused by the server's validation and no run is made.
    form_input(dialog, "table").fill("digits; drop")
    refused = submit(page, dialog)
    assert refused.status == 400
    assert "param table" in refused.text()

    # A good submission: a new experiment, trained on the engine's own local cluster (the
    # cluster field lists only the deployment's names: none are defined here).
    dialog = open_form(page, airflow_server)
    form_input(dialog, "experiment_name").fill("ui-form-hyperband")
    form_input(dialog, "seed").fill("3")
    accepted = submit(page, dialog)
    assert accepted.status == 200, accepted.text()
    run_id = accepted.json()["dag_run_id"]
    assert accepted.json()["conf"]["experiment_name"] == "ui-form-hyperband"
    assert accepted.json()["conf"]["seed"] == 3

    run = airflow_server.wait_for_run(HYPERBAND_DAG, run_id, timeout=600)
    assert run["state"] == "success", airflow_server.task_states(HYPERBAND_DAG, run_id)
    # The UI shows it too.
    page.goto(
        f"{airflow_server.base_url}/dags/{HYPERBAND_DAG}/runs/{run_id}",
        wait_until="domcontentloaded",
    )
    page.get_by_text("Success").first.wait_for()

    from automl_core.store.connection import connect

    conn = connect(automl_db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT e.seed, e.status, count(t.trial_id) FROM automl.experiments e "
                "JOIN automl.trials t ON t.experiment_id = e.id WHERE e.name = %s "
                "GROUP BY 1, 2",
                ("ui-form-hyperband",),
            )
            assert cur.fetchall() == [(3, "completed", 17)]
    finally:
        conn.close()
