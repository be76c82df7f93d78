"""Which Dask cluster a run trains on: a name the deployment defines, never an address.

A Dask client unpickles what its scheduler sends, so the scheduler a task connects to is
code it runs. The addresses therefore come only from the deployment: a spec's ``cluster``
(the default) and ``clusters`` (named choices), and the environment variable
``AUTOML_DASK_CLUSTERS`` (a JSON mapping of names to addresses, read where the DAGs are
parsed and where the engine task runs). A run's form or REST ``conf`` may pick one of
those names, from a closed list; an address typed there is refused with HTTP 400.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

ENV = "AUTOML_DASK_CLUSTERS"
NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
# Shared with the spec loader: what a deployment may give as an address.
ADDRESS_PATTERN = r"^((tcp|tls)://)?[A-Za-z0-9_.\-]{1,253}:[0-9]{1,5}$"


class ClusterChoiceError(ValueError):
    """A cluster name or address is not allowed; the message names it and the fix."""


def check_clusters(raw: object, where: str) -> dict[str, str]:
    """``raw`` as a mapping of cluster names to addresses; ClusterChoiceError otherwise."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ClusterChoiceError(f"{where} must map names to tcp://host:port addresses")
    out = {}
    for name, address in raw.items():
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            raise ClusterChoiceError(
                f"{where}: the name {name!r} must be lower-case letters, digits, '_' or '-'"
            )
        if not isinstance(address, str) or not re.match(ADDRESS_PATTERN, address):
            raise ClusterChoiceError(f"{where}: {name}'s address {address!r}: use tcp://host:port")
        out[name] = address
    return out


def allowed_clusters(spec_clusters: Mapping[str, str]) -> dict[str, str]:
    """The spec's named clusters and the environment's (the environment's win a clash)."""
    text = os.environ.get(ENV, "").strip()
    try:
        env = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ClusterChoiceError(
            f'{ENV} is not JSON ({exc}); set it to {{"name": "tcp://host:port"}}'
        ) from None
    return {**spec_clusters, **check_clusters(env, ENV)}


def resolve_cluster(
    name: str | None, allowed: Mapping[str, str], default: str | None
) -> str | None:
    """The address to train on: the named cluster, else ``default`` (None: the engine's
    own local cluster, or ``AUTOML_DASK_ADDRESS``). ClusterChoiceError for a name that is
    not in ``allowed``."""
    if not name:
        return default
    if name not in allowed:
        choices = ", ".join(sorted(allowed)) or "none are defined"
        raise ClusterChoiceError(
            f"cluster {name!r} is not one of this deployment's clusters ({choices}); define it "
            f"in the spec's `clusters` or in {ENV}"
        )
    return allowed[name]
