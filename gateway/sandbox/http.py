"""The sandbox's HTTP API and hosted pages, as a Litestar app of its own (`create_sandbox_app`).

It is "another company": its own accounts and API keys, its own error format
(`{"error": {"code", "message"}}`), its own idempotency keys. See README.md for the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import msgspec
from litestar import Litestar, Request, Response, asgi, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers import ASGIRouteHandler
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect
from litestar.types import Receive, Scope, Send

from gateway.kernel.clock import Clock, SystemClock
from gateway.sandbox import pages
from gateway.sandbox.service import Sandbox, SandboxConfig, SandboxError
from gateway.sandbox.store import Store
from gateway.sandbox.webhooks import Deliverer

log = logging.getLogger("tiergate.sandbox")

DEFAULT_STORE = "var/sandbox.sqlite3"

Text = Annotated[str, msgspec.Meta(max_length=500)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
At = Annotated[datetime, msgspec.Meta(tz=True)]
Metadata = Annotated[
    dict[Annotated[str, msgspec.Meta(max_length=40)], Annotated[str, msgspec.Meta(max_length=500)]],
    msgspec.Meta(max_length=50),
]


class Strict(msgspec.Struct, forbid_unknown_fields=True):
    pass


class AccountBody(Strict):
    webhook_url: Url | None = None
    name: Text | None = None


class AccountUpdate(Strict):
    webhook_url: Url | None = None


class CustomerBody(Strict):
    name: Text
    email: Text | None = None
    metadata: Metadata = {}


class Timed(Strict):
    # The merchant's test clock and the time on it (both optional: without, the sandbox's own clock).
    clock_ref: Id | None = None
    at: At | None = None


class SetupSessionBody(Timed):
    customer: Id = ""
    return_url: Url = ""
    method_types: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=20)]], msgspec.Meta(max_length=5)
    ] = []
    currency: Annotated[str, msgspec.Meta(max_length=3)] | None = None


class PaymentMethodBody(Timed):
    customer: Id = ""
    test_method: Annotated[str, msgspec.Meta(max_length=40)] = ""


class PaymentBody(Timed):
    customer: Id = ""
    payment_method: Id = ""
    amount: int = 0
    currency: Annotated[str, msgspec.Meta(max_length=3)] = ""
    description: Text | None = None
    metadata: Metadata = {}
    off_session: bool = True
    return_url: Url | None = None


class RefundBody(Strict):
    payment: Id
    amount: int | None = None
    reason: Text | None = None


class AdvanceBody(Strict):
    to: At
    # Deliver the webhooks of what fell due (first attempt) before answering.
    wait_for_webhooks: bool = True


# --- plumbing ---------------------------------------------------------------------------------------
def provide_sandbox(state: State) -> Sandbox:
    sandbox: Sandbox = state.sandbox
    return sandbox


def provide_account(request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]) -> dict[str, Any]:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return sandbox.authenticate(key.strip() if scheme.lower() == "bearer" else "")


def _base_url(request: Request[Any, Any, Any], sandbox: NamedDependency[Sandbox]) -> str:
    return sandbox.config.public_url or str(request.base_url).rstrip("/")


def _request_hash(path: str, data: msgspec.Struct) -> str:
    # `at` is when the client sent it: a retry of the same request may carry a later one.
    body = msgspec.to_builtins(data)
    body.pop("at", None)
    return hashlib.sha256(f"{path}\n{json.dumps(body, sort_keys=True)}".encode()).hexdigest()


def _created(obj: dict[str, Any], replayed: bool) -> Response[dict[str, Any]]:
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return Response(obj, status_code=201, headers=headers)


def _idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise SandboxError(
            400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable characters"
        )
    return key or None


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _error(status: int, code: str, message: str) -> Response[dict[str, Any]]:
    return Response({"error": {"code": code, "message": message}}, status_code=status)


def _sandbox_error(_: Request[Any, Any, Any], exc: SandboxError) -> Response[dict[str, Any]]:
    return _error(exc.status, exc.code, exc.message)


def _validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    # Litestar lists what was wrong in `extra` ([{"message", "key", "source"}]): name it.
    problems = exc.extra if isinstance(exc.extra, list) else []
    reasons = "; ".join(
        f"{p.get('key') or p.get('source') or 'body'}: {p.get('message')}"
        for p in problems
        if isinstance(p, dict)
    )
    return _error(400, "invalid_request", reasons or str(exc.detail))


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error"
    )
    return _error(exc.status_code, code, str(exc.detail))


def _internal_error(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("sandbox request failed", exc_info=exc)
    return _error(500, "internal_error", "the sandbox failed; retry")


# --- accounts -----------------------------------------------------------------------------------------
@post("/v1/accounts", status_code=201)
async def create_account(data: JSONBody[AccountBody], sandbox: NamedDependency[Sandbox]) -> dict[str, Any]:
    """No authentication: anyone may open a sandbox account (it moves no real money). The answer is
    the only time `api_key` is shown."""
    return sandbox.create_account(webhook_url=data.webhook_url, name=data.name)


@get("/v1/account")
async def get_account(account: NamedDependency[dict[str, Any]]) -> dict[str, Any]:
    return account


@patch("/v1/account")
async def update_account(
    data: JSONBody[AccountUpdate], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.update_account(account, webhook_url=data.webhook_url)


# --- customers ----------------------------------------------------------------------------------------
@post("/v1/customers", status_code=201)
async def create_customer(
    request: Request[Any, Any, Any],
    data: JSONBody[CustomerBody],
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> Response[dict[str, Any]]:
    customer, replayed = sandbox.idempotent(
        account["id"],
        _idempotency_key(request),
        _request_hash(request.url.path, data),
        "customer",
        lambda: sandbox.create_customer(account, name=data.name, email=data.email, metadata=data.metadata),
    )
    return _created(customer, replayed)


@get("/v1/customers/{customer_id:str}")
async def get_customer(
    customer_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.customer(account["id"], customer_id)


@get("/v1/customers/{customer_id:str}/payment_methods")
async def list_customer_methods(
    customer_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    sandbox.customer(account["id"], customer_id)
    methods = sandbox.store.list_objects(account["id"], "payment_method", customer_id)
    return {"object": "list", "data": methods}


# --- setup sessions and the hosted setup page ---------------------------------------------------------
@post("/v1/setup_sessions", status_code=201)
async def create_setup_session(
    request: Request[Any, Any, Any],
    data: JSONBody[SetupSessionBody],
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> Response[dict[str, Any]]:
    if not data.return_url:
        raise SandboxError(400, "invalid_request", "return_url is required")
    moment = sandbox.moment(account["id"], data.clock_ref, data.at)
    session, replayed = sandbox.idempotent(
        account["id"],
        _idempotency_key(request),
        _request_hash(request.url.path, data),
        "setup_session",
        lambda: sandbox.create_setup_session(
            account,
            customer_id=data.customer,
            return_url=data.return_url,
            method_types=data.method_types,
            currency=data.currency,
            moment=moment,
            base_url=_base_url(request, sandbox),
        ),
    )
    return _created(session, replayed)


@get("/v1/setup_sessions/{session_id:str}")
async def get_setup_session(
    session_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.setup_session(account["id"], session_id)[1]


def _html(text: str, status: int = 200) -> Response[str]:
    return Response(text, status_code=status, media_type="text/html; charset=utf-8")


def _page_error(exc: SandboxError) -> Response[str]:
    return _html(pages.message_page("Something went wrong", exc.message), exc.status)


@get("/setup/{session_id:str}")
async def setup_page(session_id: FromPath[str], sandbox: NamedDependency[Sandbox]) -> Response[str]:
    try:
        _, session = sandbox.setup_session(None, session_id)
    except SandboxError as exc:
        return _page_error(exc)
    return _html(pages.setup_page(session))


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    raw = (await request.body())[:10_000].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(raw).items()}


@post("/setup/{session_id:str}", status_code=303)
async def submit_setup_page(
    request: Request[Any, Any, Any], session_id: FromPath[str], sandbox: NamedDependency[Sandbox]
) -> Response[str] | Redirect:
    form = await _form(request)
    try:
        session = sandbox.complete_setup(session_id, form.get("test_method", ""))
    except SandboxError as exc:
        if exc.code == "unknown_test_method":
            _, open_session = sandbox.setup_session(None, session_id)
            return _html(pages.setup_page(open_session, error=exc.message), 400)
        return _page_error(exc)
    target = _with_query(session["return_url"], setup_session=session["id"], status="complete")
    return Redirect(target, status_code=303)


# --- payment methods ----------------------------------------------------------------------------------
@post("/v1/payment_methods", status_code=201)
async def create_payment_method(
    request: Request[Any, Any, Any],
    data: JSONBody[PaymentMethodBody],
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> Response[dict[str, Any]]:
    """Direct creation, for tests and scripts (a customer would use a setup session's page)."""
    moment = sandbox.moment(account["id"], data.clock_ref, data.at)
    method, replayed = sandbox.idempotent(
        account["id"],
        _idempotency_key(request),
        _request_hash(request.url.path, data),
        "payment_method",
        lambda: sandbox.create_method(
            account, customer_id=data.customer, test_method=data.test_method, moment=moment
        ),
    )
    return _created(method, replayed)


@get("/v1/payment_methods/{method_id:str}")
async def get_payment_method(
    method_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.method(account["id"], method_id)


@post("/v1/payment_methods/{method_id:str}/detach", status_code=200)
async def detach_payment_method(
    method_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.detach_method(account, method_id)


# --- payments -----------------------------------------------------------------------------------------
@post("/v1/payments", status_code=201)
async def create_payment(
    request: Request[Any, Any, Any],
    data: JSONBody[PaymentBody],
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> Response[dict[str, Any]]:
    moment = sandbox.moment(account["id"], data.clock_ref, data.at)
    payment, replayed = sandbox.idempotent(
        account["id"],
        _idempotency_key(request),
        _request_hash(request.url.path, data),
        "payment",
        lambda: sandbox.create_payment(
            account,
            customer_id=data.customer,
            method_id=data.payment_method,
            amount=data.amount,
            currency=data.currency,
            description=data.description,
            metadata=data.metadata,
            off_session=data.off_session,
            return_url=data.return_url,
            moment=moment,
            base_url=_base_url(request, sandbox),
        ),
    )
    if not replayed and sandbox.answers_late(payment):
        # The charge is stored (a retry with the same key finds it at once); this answer is not.
        await asyncio.sleep(sandbox.config.late_answer_seconds)
        payment = sandbox.payment(account["id"], payment["id"])
    return _created(payment, replayed)


@get("/v1/payments/{payment_id:str}")
async def get_payment(
    payment_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.payment(account["id"], payment_id)


@get("/v1/payments")
async def list_payments(
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
    customer: Annotated[str | None, QueryParameter(max_length=100)] = None,
) -> dict[str, Any]:
    return {"object": "list", "data": sandbox.payments(account["id"], customer)}


@get("/challenge/{payment_id:str}")
async def challenge_page(payment_id: FromPath[str], sandbox: NamedDependency[Sandbox]) -> Response[str]:
    try:
        payment = sandbox.payment(None, payment_id)
    except SandboxError as exc:
        return _page_error(exc)
    return _html(pages.challenge_page(payment))


@post("/challenge/{payment_id:str}", status_code=303)
async def submit_challenge(
    request: Request[Any, Any, Any], payment_id: FromPath[str], sandbox: NamedDependency[Sandbox]
) -> Response[str] | Redirect:
    outcome = (await _form(request)).get("outcome")
    if outcome not in {"complete", "fail"}:
        return _page_error(SandboxError(400, "invalid_request", "choose Complete or Fail"))
    try:
        payment = sandbox.complete_challenge(payment_id, succeed=outcome == "complete")
    except SandboxError as exc:
        return _page_error(exc)
    if payment.get("return_url"):
        target = _with_query(payment["return_url"], payment=payment["id"], status=payment["status"])
        return Redirect(target, status_code=303)
    return _html(pages.result_page(payment))


# --- refunds ------------------------------------------------------------------------------------------
@post("/v1/refunds", status_code=201)
async def create_refund(
    request: Request[Any, Any, Any],
    data: JSONBody[RefundBody],
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> Response[dict[str, Any]]:
    refund, replayed = sandbox.idempotent(
        account["id"],
        _idempotency_key(request),
        _request_hash(request.url.path, data),
        "refund",
        lambda: sandbox.create_refund(
            account, payment_id=data.payment, amount=data.amount, reason=data.reason
        ),
    )
    return _created(refund, replayed)


@get("/v1/refunds/{refund_id:str}")
async def get_refund(
    refund_id: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.refund(account["id"], refund_id)


# --- clocks and events --------------------------------------------------------------------------------
@post("/v1/clocks/{clock_ref:str}/advance", status_code=200)
async def advance_clock(
    clock_ref: FromPath[str],
    data: JSONBody[AdvanceBody],
    state: State,
    sandbox: NamedDependency[Sandbox],
    account: NamedDependency[dict[str, Any]],
) -> dict[str, Any]:
    result = sandbox.advance(account, clock_ref, data.to)
    if data.wait_for_webhooks:
        deliverer: Deliverer = state.sandbox_deliverer
        await deliverer.deliver_due()
    return result


@get("/v1/clocks/{clock_ref:str}")
async def get_clock(
    clock_ref: FromPath[str], sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    return sandbox.clock_state(account, clock_ref)


@get("/v1/events")
async def list_events(
    sandbox: NamedDependency[Sandbox], account: NamedDependency[dict[str, Any]]
) -> dict[str, Any]:
    """The account's latest events, newest first, with their delivery state."""
    return {"object": "list", "data": sandbox.events(account["id"])}


HANDLERS = [
    create_account,
    get_account,
    update_account,
    create_customer,
    get_customer,
    list_customer_methods,
    create_setup_session,
    get_setup_session,
    setup_page,
    submit_setup_page,
    create_payment_method,
    get_payment_method,
    detach_payment_method,
    create_payment,
    get_payment,
    list_payments,
    challenge_page,
    submit_challenge,
    create_refund,
    get_refund,
    advance_clock,
    get_clock,
    list_events,
]


def create_sandbox_app(
    store: str | Store = DEFAULT_STORE,
    *,
    clock: Clock | None = None,
    config: SandboxConfig | None = None,
    background: bool = True,
) -> Litestar:
    """The sandbox provider as an ASGI app. `store`: a SQLite path (`:memory:` for tests) or a Store.
    `clock`: the sandbox's own clock for requests without a clock_ref (default: the system clock).
    `background`: run the ticker and webhook deliverer in the app's lifespan."""
    owns_store = not isinstance(store, Store)
    the_store = Store(store) if isinstance(store, str) else store
    sandbox = Sandbox(the_store, clock or SystemClock(), config)
    deliverer = Deliverer(the_store, sandbox.config)
    sandbox.on_event = deliverer.nudge

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        task = asyncio.create_task(deliverer.run(sandbox.tick)) if background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await deliverer.aclose()
            if owns_store:
                the_store.close()

    return Litestar(
        route_handlers=HANDLERS,
        dependencies={
            "sandbox": Provide(provide_sandbox, sync_to_thread=False),
            "account": Provide(provide_account, sync_to_thread=False),
        },
        exception_handlers={
            SandboxError: _sandbox_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        state=State({"sandbox": sandbox, "sandbox_deliverer": deliverer}),
        lifespan=[lifespan],
        openapi_config=None,
        request_max_body_size=1_048_576,
    )


MOUNT_PATH = "/sandbox"
# What the host app's routing left in the scope; the sandbox app routes the request afresh.
_HOST_SCOPE_KEYS = ("state", "route_handler", "path_params", "path_template", "app", "litestar_app")


def sandbox_mount(sandbox_app: Litestar, path: str = MOUNT_PATH) -> ASGIRouteHandler:
    """A route handler for a host Litestar app that serves `sandbox_app` under `path` (embedded mode).

    The sandbox sees the request as if it were served on its own at `<host root>/sandbox`: a fresh scope
    with `root_path` set (its hosted pages' URLs carry the prefix), none of the host's per-request state.
    Not in the host's OpenAPI document: it is another service, with its own API (README.md)."""

    @asgi(path, is_mount=True, copy_scope=True, include_in_schema=False, opt={"read_only": True})
    async def sandbox(scope: Scope, receive: Receive, send: Send) -> None:
        prefix = scope.get("root_path", "") + path
        remaining = scope["path"] if scope["path"] != "/" else ""
        inner = {k: v for k, v in scope.items() if k not in _HOST_SCOPE_KEYS and k != "app_root_path"}
        inner.update(root_path=prefix, path=prefix + remaining, raw_path=(prefix + remaining).encode())
        await sandbox_app(inner, receive, send)  # type: ignore[arg-type]

    return sandbox
