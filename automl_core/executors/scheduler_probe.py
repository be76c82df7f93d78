"""Ask an address whether a Dask scheduler answers there, within a deadline.

``distributed.Client(address, timeout=...)`` bounds the TCP connect, but not the wait
for the scheduler's first answer: a peer that accepts the connection and never replies
(a stuck process, a load balancer, another service on that port) kept ``automl run
--cluster`` waiting for ever, and an HTTP server's reply, read as a Dask frame, asked
numpy for exabytes. So before a Client is made, one ``identity`` request goes to the
address through ``distributed.comm`` with the whole exchange under one deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

from automl_core.errors import UserInputError

#: Seconds for the connect and the scheduler's answer together.
PROBE_TIMEOUT_S = 30.0

WHERE = "--cluster, AUTOML_DASK_ADDRESS, or a DAG spec's clusters"


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect
    from distributed.security import Security

    # The TLS settings of Dask's configuration, as a Client would use them (tls://).
    comm = await connect(address, timeout=timeout, **Security().get_connection_args("client"))
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def check_scheduler(address: str, *, timeout: float | None = None) -> None:
    """Return when a Dask scheduler at ``address`` answers within ``timeout`` seconds
    (default ``PROBE_TIMEOUT_S``).

    Raises OSError when nothing accepts connections there (Dask's connect timeout), and
    UserInputError naming the address and where it came from when the peer does not
    answer in time or answers as something other than a Dask scheduler.
    """
    timeout = PROBE_TIMEOUT_S if timeout is None else timeout
    # A little longer than the connect's own timeout, so that a refused port ends in
    # Dask's OSError rather than in this deadline.
    deadline = timeout + 5.0
    try:
        reply = asyncio.run(asyncio.wait_for(_identity(address, timeout), deadline))
    except TimeoutError:
        raise UserInputError(
            f"Nothing answered as a Dask scheduler at {address} within {deadline:g} s (a "
            f"connection was accepted, then silence): check the address ({WHERE}) and that "
            "the scheduler runs."
        ) from None
    except OSError:  # after TimeoutError, one of its kinds: nothing accepted the connection
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a foreign protocol makes Dask raise
        reply = exc
    if not isinstance(reply, dict) or reply.get("type") != "Scheduler":
        what = f"{type(reply).__name__}: {reply}" if isinstance(reply, Exception) else reply
        raise UserInputError(
            f"The service at {address} is not a Dask scheduler (it answered "
            f"{str(what)[:120]!r}): check the address ({WHERE})."
        )
