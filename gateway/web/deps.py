"""Dependencies every controller shares: the unit of work, the clock, the caller, list parameters."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Annotated, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.db.session import Database
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor


async def provide_session(request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession, None]:
    """One transaction per request: committed when the handler returns, rolled back when it raises
    (Litestar throws the handler's exception into this generator), so a refused request writes nothing.
    It acts for whoever the guards authenticated (`request_actor`): its events and audit entries say so."""
    db: Database = request.app.state.db
    # Not read_only, even for a GET: some GETs write (a login link redeemed, a pricing page's experiment
    # assignment), and on SQLite a deferred transaction that writes after another commit fails at once.
    async with db.unit_of_work(actor=request_actor(request)) as session:
        yield session


def set_request_actor(connection: ASGIConnection[Any, Any, Any, Any], actor: str) -> None:
    """Called by each authentication guard once it knows the caller: `key:<api key id>` (the /v1 guard),
    `scim:<SCIM token id>` (the SCIM guard). End users act through sign-in and invite acceptance, which
    name them (`user:<id>`) explicitly."""
    connection.scope["state"]["actor"] = actor


def request_actor(request: Request[Any, Any, Any]) -> str | None:
    actor = request.scope["state"].get("actor")
    return str(actor) if actor else None


def provide_clock(state: State) -> Clock:
    clock: Clock = state.clock
    return clock


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


class ListParams:
    def __init__(self, limit: int, starting_after: str | None) -> None:
        self.limit = limit
        self.after = decode_cursor(starting_after) if starting_after else None


def provide_list_params(
    limit: Annotated[
        int, QueryParameter(name="limit", ge=1, le=MAX_LIMIT, description="Page size (1-100).")
    ] = (DEFAULT_LIMIT),
    starting_after: Annotated[
        str | None,
        QueryParameter(
            name="starting_after",
            max_length=200,
            description="Cursor from the previous page's `next_cursor`.",
        ),
    ] = None,
) -> ListParams:
    return ListParams(limit, starting_after)


COMMON_DEPENDENCIES: dict[str, Callable[..., Any]] = {
    "session": provide_session,
    "clock": provide_clock,
    "principal": provide_principal,
    "page": provide_list_params,
}
