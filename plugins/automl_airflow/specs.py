"""Search specs: the YAML files in ``dags/specs/`` that each become one DAG.

A spec names the data, the search space, the method and its budget, and how the DAG is
scheduled and routed. It is parsed and validated here, with no Airflow, torch or
database import, so a broken file is reported before any DAG is built, with the file
and the key in the message. Example::

    dag_id: automl_hyperband_digits
    dataset: digits
    load_if_missing: digits
    partitions: 2
    space: examples/spaces/digits.yaml     # or an inline mapping
    method: hyperband
    budget: {R: 9, eta: 3, skip_last: 0}
    schedule: null                         # or a cron expression such as "0 2 * * *"
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from automl_airflow.clusters import ADDRESS_PATTERN, ClusterChoiceError, check_clusters
from automl_core.errors import UserInputError


def budget_keys(method: str) -> dict[str, int]:
    """The budget keys a spec of ``method`` may set, with their defaults.

    From the method registry (``automl_core.search.methods``): every knob a spec takes.
    They fix the DAG's shape or the search's meaning, so they live in the spec; a knob
    that does not fix the shape (``epochs``) is also a run param (``params.run_fields``).
    """
    from automl_core.search.methods import get_method

    return {
        k.name: k.default for k in get_method(method).knobs if k.in_spec and k.default is not None
    }


DAG_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$")
# The same rule the run form applies to the table: a plain, unquoted SQL identifier of at
# most 56 characters, so that its packed table (``<table>_packed``) fits PostgreSQL's 63
# (automl_core.data.validate.packed_table_name; a test holds the two together).
MAX_TABLE_LEN = 56
TABLE_PATTERN = rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_TABLE_LEN - 1}}}$"
# Built-in data sets a DAG may load when its table is missing (automl_core.data sources
# that need no path). A closed list: a spec or a form value names one, never a file.
LOADERS = ("digits", "signals")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
SPACE_SUFFIXES = (".yaml", ".yml", ".json")
CLUSTER_PATTERN = ADDRESS_PATTERN
# A folder path or s3://bucket/prefix; no '..' segment, so a form value cannot climb out.
# '/' and '-' are escaped inside classes so the pattern also compiles as a browser
# regular expression (the 'v' flag rejects them bare), not only in Python.
_NO_DOTDOT = r"(?!.*(^|/)\.\.(/|$))"
_S3_TARGET = r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9_.=\/\-]*)?"
_RELATIVE_FOLDER = r"[A-Za-z0-9_.\-][A-Za-z0-9_.=\/\-]*"
EXPORT_PATTERN = f"^{_NO_DOTDOT}({_S3_TARGET}|/?{_RELATIVE_FOLDER})$"
# What a run form or REST conf may name: S3, or a folder inside the project home. An
# absolute folder only where the spec (the deployment's file) names it as the default:
# a form value never chooses where on a worker's disk the model is written.
RUN_EXPORT_PATTERN = f"^{_NO_DOTDOT}({_S3_TARGET}|{_RELATIVE_FOLDER})$"
EXPORT_HINT = "use a folder path or s3://bucket/prefix (letters, digits, _ . - = /; no '..')"
RUN_EXPORT_HINT = (
    "use s3://bucket/prefix or a folder inside the project home (letters, digits, _ . - = /; "
    "no leading '/', no '..'), or the spec's own export_to"
)

TOP_LEVEL_KEYS = frozenset(
    {
        "dag_id",
        "description",
        "dataset",
        "load_if_missing",
        "partitions",
        "space",
        "method",
        "budget",
        "seed",
        "schedule",
        "cluster",
        "clusters",
        "workers",
        "export_to",
        "aws_conn_id",
        "report_dir",
        "tags",
        "queue",
        "pool",
        "retries",
        "retry_delay_seconds",
        "visit_order",
    }
)
REQUIRED_KEYS = ("dag_id", "dataset", "space", "method")


class SpecError(UserInputError):
    """A spec file is malformed; the message names the file and the key."""

    def __init__(self, source: Path | str, key: str | None, problem: str) -> None:
        self.source = str(source)
        self.key = key
        self.problem = problem
        where = f"{source}: key '{key}'" if key else f"{source}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class DagSpec:
    """A validated spec: everything the DAG factory needs to build one DAG."""

    source: Path
    dag_id: str
    dataset: str
    method: str
    space: Mapping[str, Any]
    space_ref: str  # the path the space came from, or "inline"
    budget: Mapping[str, int]
    description: str = ""
    load_if_missing: str | None = None
    partitions: int = 2
    seed: int = 0
    schedule: str | None = None
    cluster: str | None = None
    clusters: Mapping[str, str] = field(default_factory=dict)
    workers: int | None = None
    export_to: str | None = None
    aws_conn_id: str | None = None
    report_dir: str | None = None
    tags: tuple[str, ...] = ()
    queue: str | None = None
    pool: str = "automl_training"
    retries: int = 2
    retry_delay_seconds: int = 30
    visit_order: str = "seeded"  # automl_core.experiment.request.VISIT_ORDERS

    def budget_value(self, key: str) -> int:
        """A budget knob of this spec's method (its default when the spec leaves it out)."""
        return int(self.budget[key])


def load_spec(path: Path, *, base_dir: Path) -> DagSpec:
    """Read and validate one spec file.

    ``base_dir`` is the folder a relative ``space`` path is resolved against (the
    repository root); the path may not leave it. Raises :class:`SpecError`.
    """
    # The space parser's loader: safe, and bounded in depth, aliases and size, so a
    # hostile spec file cannot hang or crash the DAG processor.
    from automl_core.space.spec_file import load_yaml_text

    try:
        raw = load_yaml_text(path.read_text(encoding="utf-8"), what="it")
    except OSError as exc:
        raise SpecError(path, None, f"cannot be read: {exc}") from exc
    except UserInputError as exc:
        raise SpecError(path, None, f"cannot be read as YAML: {exc}") from None
    if not isinstance(raw, Mapping):
        raise SpecError(path, None, "must be a YAML mapping of keys to values")
    return parse_spec(raw, source=path, base_dir=base_dir)


def parse_spec(raw: Mapping[str, Any], *, source: Path, base_dir: Path) -> DagSpec:
    """Validate a spec mapping (see :func:`load_spec`)."""
    # The limits the CLI and SearchRequest use; imported here to keep this module light.
    from automl_core.experiment.request import LIMITS

    unknown = sorted(str(k) for k in raw if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise SpecError(
            source,
            unknown[0],
            f"is not a spec key; known keys: {', '.join(sorted(TOP_LEVEL_KEYS))}",
        )
    for key in REQUIRED_KEYS:
        if raw.get(key) in (None, ""):
            raise SpecError(source, key, "is required")

    def text(key: str, pattern: re.Pattern[str] | None = None, hint: str = "") -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SpecError(source, key, f"must be a string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise SpecError(source, key, f"{value!r} is not valid: {hint}")
        return value

    def integer(key: str, default: int, minimum: int, maximum: int) -> int:
        value = raw.get(key, default)
        if value is None:
            return default
        return _integer(value, source, key, minimum, maximum)

    from automl_core.search.methods import method_names

    method = text("method")
    if method not in method_names():
        names = ", ".join(method_names())
        raise SpecError(source, "method", f"{method!r} is not one of {names}")
    dataset = text(
        "dataset", re.compile(TABLE_PATTERN), f"use letters, digits and _ (max {MAX_TABLE_LEN})"
    )
    workers = raw.get("workers")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise SpecError(source, "tags", "must be a list of non-empty strings")
    space, space_ref = _load_space(raw["space"], source=source, base_dir=base_dir)
    return DagSpec(
        source=source,
        dag_id=text("dag_id", DAG_ID_RE, "use letters, digits, '_', '.', '-' (max 200)") or "",
        dataset=dataset or "",
        method=method,
        space=space,
        space_ref=space_ref,
        budget=_budget(raw.get("budget"), method, source),
        description=text("description") or f"{method} search on {dataset}",
        load_if_missing=_loader(raw.get("load_if_missing"), source),
        partitions=integer("partitions", 2, *LIMITS["partitions"]),
        seed=integer("seed", 0, *LIMITS["seed"]),
        schedule=_schedule(raw.get("schedule"), source),
        cluster=text("cluster", re.compile(CLUSTER_PATTERN), "use tcp://host:port"),
        clusters=_clusters(raw.get("clusters"), source),
        workers=None
        if workers is None
        else _integer(workers, source, "workers", *LIMITS["workers"]),
        export_to=text("export_to", re.compile(EXPORT_PATTERN), EXPORT_HINT),
        aws_conn_id=text("aws_conn_id", NAME_RE, "an Airflow connection id"),
        report_dir=text("report_dir"),
        tags=tuple(tags),
        queue=text("queue", NAME_RE, "an executor queue name such as gpu"),
        pool=text("pool", NAME_RE, "an Airflow pool name") or "automl_training",
        retries=integer("retries", 2, 0, 10),
        retry_delay_seconds=integer("retry_delay_seconds", 30, 0, 3600),
        visit_order=_visit_order(raw.get("visit_order", "seeded"), source),
    )


def _visit_order(value: Any, source: Path) -> str:
    from automl_core.experiment.request import VISIT_ORDERS

    if value not in VISIT_ORDERS:
        raise SpecError(source, "visit_order", f"is {value!r}, but must be one of {VISIT_ORDERS}")
    return str(value)


def _integer(value: Any, source: Path, key: str, minimum: int, maximum: int) -> int:
    # bool is an int in Python; "true" for a budget is a typo, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(source, key, f"must be an integer, got {value!r}")
    if not minimum <= value <= maximum:
        raise SpecError(source, key, f"is {value}, but must be between {minimum} and {maximum}")
    return value


def _budget(raw: Any, method: str, source: Path) -> dict[str, int]:
    from automl_core.experiment.request import limits_of

    allowed = budget_keys(method)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise SpecError(source, "budget", "must be a mapping such as {R: 9, eta: 3}")
    budget = dict(allowed)
    for key, value in raw.items():
        if key not in allowed:
            raise SpecError(
                source,
                f"budget.{key}",
                f"is not used by method {method}; its keys are {', '.join(allowed)}",
            )
        limits = limits_of(key) or (-(2**63), 2**63 - 1)
        budget[key] = _integer(value, source, f"budget.{key}", *limits)
    return budget


def _clusters(value: Any, source: Path) -> dict[str, str]:
    try:
        return check_clusters(value, "clusters")
    except ClusterChoiceError as exc:
        raise SpecError(source, "clusters", str(exc)) from None


def _loader(value: Any, source: Path) -> str | None:
    if value is None or value in LOADERS:
        return value
    raise SpecError(
        source,
        "load_if_missing",
        f"{value!r} is not a built-in data set: use {', '.join(LOADERS)} or null",
    )


def _schedule(value: Any, source: Path) -> str | None:
    if value is None:
        return None
    # croniter ships with Airflow and is what its cron timetable uses.
    from croniter import croniter

    if not isinstance(value, str) or not croniter.is_valid(value):
        raise SpecError(
            source, "schedule", f"{value!r} is not a cron expression (e.g. '0 2 * * *') or null"
        )
    return value


def _load_space(value: Any, *, source: Path, base_dir: Path) -> tuple[Mapping[str, Any], str]:
    """The space in ``SearchSpace.to_dict()`` form and where it came from.

    A path is resolved inside ``base_dir`` and may not leave it; either form is parsed by
    automl_core's space parser (pure: no torch, no database), so a malformed space fails
    here with the spec file's name rather than in the first task of a run.
    """
    from automl_core.space import SearchSpace

    if isinstance(value, Mapping):
        try:
            return SearchSpace.from_dict(value).to_dict(), "inline"
        except UserInputError as exc:
            raise SpecError(source, "space", str(exc)) from exc
    if not isinstance(value, str):
        raise SpecError(source, "space", "must be a mapping or a path to a space file")
    relative = Path(value)
    root = base_dir.resolve()
    path = (root / relative).resolve()
    if relative.is_absolute() or not path.is_relative_to(root):
        raise SpecError(source, "space", f"{value!r} must be a relative path inside {root}")
    if path.suffix not in SPACE_SUFFIXES:
        raise SpecError(source, "space", f"{value!r} must end in {', '.join(SPACE_SUFFIXES)}")
    try:
        return SearchSpace.from_file(path).to_dict(), value
    except UserInputError as exc:
        raise SpecError(source, "space", str(exc)) from exc
