"""A run chooses its Dask cluster by a name the deployment defines, never by address."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from automl_airflow.clusters import (
    ClusterChoiceError,
    allowed_clusters,
    check_clusters,
    resolve_cluster,
)
from automl_airflow.dag_factory import build_dag
from automl_airflow.specs import SpecError, load_spec

from tests.airflow.helpers import REPO, SPECS


def spec_with(tmp_path: Path, **overrides: object) -> Path:
    raw = yaml.safe_load((SPECS / "hyperband_digits.yaml").read_text())
    raw.update(overrides)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_form_offers_the_spec_s_and_the_environment_s_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOML_DASK_CLUSTERS", '{"gpu": "tcp://gpu-scheduler:8786"}')
    spec = load_spec(spec_with(tmp_path, clusters={"cpu": "tcp://cpu:8786"}), base_dir=REPO)
    dag = build_dag(spec)
    assert dag.params.get_param("cluster").schema["enum"] == [None, "", "cpu", "gpu"]
    engine = dag.get_task("engine")
    assert engine.clusters == {"cpu": "tcp://cpu:8786"}  # the environment is read at run time
    assert resolve_cluster("gpu", allowed_clusters(engine.clusters), None) == (
        "tcp://gpu-scheduler:8786"
    )


def test_no_name_means_the_deployment_s_default() -> None:
    assert resolve_cluster(None, {}, None) is None
    assert resolve_cluster("", {"a": "tcp://a:1"}, "tcp://default:8786") == "tcp://default:8786"


def test_a_name_off_the_list_is_refused_with_the_fix() -> None:
    with pytest.raises(ClusterChoiceError, match="'tcp://evil:8786' is not one of .*a"):
        resolve_cluster("tcp://evil:8786", {"a": "tcp://a:1"}, None)


@pytest.mark.parametrize(
    ("clusters", "problem"),
    [
        ("tcp://a:1", "must map names"),
        ({"Bad Name": "tcp://a:1"}, "lower-case"),
        ({"a": "not-an-address"}, "use tcp://host:port"),
    ],
)
def test_a_spec_s_clusters_are_checked(tmp_path: Path, clusters: object, problem: str) -> None:
    with pytest.raises(SpecError, match=f"key 'clusters'.*{problem}"):
        load_spec(spec_with(tmp_path, clusters=clusters), base_dir=REPO)


def test_a_bad_environment_list_says_how_to_write_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOML_DASK_CLUSTERS", "tcp://a:1")
    with pytest.raises(ClusterChoiceError, match="AUTOML_DASK_CLUSTERS is not JSON"):
        allowed_clusters({})
    assert check_clusters(None, "x") == {}
