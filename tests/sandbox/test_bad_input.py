"""Bad input to the sandbox is a clear 400 (or 401/404) in its own error format, never a 500, and
changes nothing; a property test holds refunds to what was paid whatever the sequence of amounts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.kernel.clock import FrozenClock
from gateway.sandbox.service import Sandbox as SandboxService
from gateway.sandbox.service import SandboxError
from gateway.sandbox.store import Store
from tests.sandbox.harness import Sandbox

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/payments", b"{not json", 400, "invalid_request"),
        ("/v1/payments", b"[]", 400, "invalid_request"),
        ("/v1/payments", b'{"amount": "ten"}', 400, "invalid_request"),
        ("/v1/payments", b'{"unknown_field": 1}', 400, "invalid_request"),
        ("/v1/payments", b'{"at": "2026-01-01T00:00:00"}', 400, "invalid_request"),
        ("/v1/customers", b'{"name": "' + b"x" * 501 + b'"}', 400, "invalid_request"),
        ("/v1/customers", b"{}", 400, "invalid_request"),
        ("/v1/refunds", b'{"payment": "sbpay_nope"}', 400, "payment_not_found"),
        (
            "/v1/payment_methods",
            b'{"customer": "sbcus_nope", "test_method": "card_ok"}',
            400,
            "customer_not_found",
        ),
        ("/v1/setup_sessions", b'{"customer": "c"}', 400, "invalid_request"),
        ("/v1/clocks/c/advance", b'{"to": "yesterday"}', 400, "invalid_request"),
        ("/v1/nowhere", b"{}", 404, "not_found"),
    ],
)
async def test_bad_requests_are_refused_in_the_sandbox_format(
    sandbox: Sandbox, path: str, body: bytes, status: int, code: str
) -> None:
    response = await sandbox.http.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert (await sandbox.get("/v1/events"))["data"] == []


async def test_errors_name_the_field(sandbox: Sandbox) -> None:
    response = await sandbox.http.post("/v1/payments", json={"amount": "ten"})
    assert "amount" in response.json()["error"]["message"]


async def test_an_unknown_test_method_and_a_bad_key_are_refused(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    response = await sandbox.http.post(
        "/v1/payment_methods", json={"customer": customer, "test_method": "visa"}
    )
    assert (response.status_code, response.json()["error"]["code"]) == (400, "unknown_test_method")
    unauthenticated = await sandbox.http.get("/v1/account", headers={"Authorization": "Bearer nope"})
    assert (unauthenticated.status_code, unauthenticated.json()["error"]["code"]) == (401, "unauthenticated")


async def test_one_account_cannot_see_another_s_objects(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_ok")
    other = await sandbox.http.post("/v1/accounts", json={})
    headers = {"Authorization": f"Bearer {other.json()['api_key']}"}
    for path in (f"/v1/customers/{customer}", f"/v1/payment_methods/{method}"):
        response = await sandbox.http.get(path, headers=headers)
        assert response.status_code == 404
    charge = {"customer": customer, "payment_method": method, "amount": 100, "currency": "EUR"}
    refused = await sandbox.http.post("/v1/payments", json=charge, headers=headers)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "customer_not_found")


@settings(max_examples=60, deadline=None)
@given(amount=st.integers(1, 100_000), refunds=st.lists(st.integers(-5, 120_000), max_size=12))
def test_refunds_never_add_up_to_more_than_was_paid(amount: int, refunds: list[int]) -> None:
    sandbox = SandboxService(Store(":memory:"), FrozenClock(START))
    account: dict[str, Any] = sandbox.create_account(webhook_url=None, name=None)
    customer = sandbox.create_customer(account, name="A", email=None, metadata={})
    moment = sandbox.moment(account["id"], None, None)
    method = sandbox.create_method(account, customer_id=customer["id"], test_method="card_ok", moment=moment)
    payment = sandbox.create_payment(
        account,
        customer_id=customer["id"],
        method_id=method["id"],
        amount=amount,
        currency="USD",
        description=None,
        metadata={},
        off_session=True,
        return_url=None,
        moment=moment,
        base_url="http://sandbox",
    )
    refunded = 0
    for wanted in refunds:
        try:
            refund = sandbox.create_refund(account, payment_id=payment["id"], amount=wanted, reason=None)
        except SandboxError as refused:
            assert refused.code in {"amount_too_small", "amount_exceeds_refundable"}
            assert wanted < 1 or wanted > amount - refunded
        else:
            assert 1 <= wanted <= amount - refunded
            refunded += refund["amount"]
    assert sandbox.payment(account["id"], payment["id"])["amount_refunded"] == refunded <= amount
    sandbox.store.close()
