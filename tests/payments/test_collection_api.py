"""Paying invoices through the API, on the in-process fake provider: charges, declines, 3-D Secure,
bad input that charges nothing, out-of-band payment, the payments list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from gateway.db.outbox import OutboxEvent
from gateway.payments.models import Payment
from tests.payments.conftest import PayKit


async def events(kit: PayKit, prefix: str) -> list[dict[str, Any]]:
    async with kit.db.unit_of_work() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent).where(OutboxEvent.type.startswith(prefix)).order_by(OutboxEvent.seq)
            )
        ).all()
        return [{"type": r.type, **r.data} for r in rows]


async def payment_rows(kit: PayKit) -> int:
    async with kit.db.unit_of_work() as session:
        return int(await session.scalar(select(func.count()).select_from(Payment)) or 0)


async def test_a_good_card_pays_the_invoice(kit: PayKit) -> None:
    customer = await kit.customer()
    method = await kit.method(customer)
    invoice = await kit.open_invoice(customer, 10_000)
    paid = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 10_000, 0)
    payments = await kit.api.get("/v1/payments", params={"invoice": invoice["id"]})
    [payment] = payments["data"]
    assert (payment["status"], payment["amount"], payment["currency"], payment["attempt"]) == (
        "succeeded",
        10_000,
        "EUR",
        1,
    )
    assert payment["payment_method"] == method
    assert [e["type"] for e in await events(kit, "payment.")] == ["payment.succeeded"]
    assert kit.provider.world.charges_made == 1
    again = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=409)
    assert again["code"] == "invoice_not_payable"
    assert kit.provider.world.charges_made == 1


async def test_insufficient_funds_leaves_the_invoice_open_with_the_attempt_recorded(kit: PayKit) -> None:
    customer = await kit.customer()
    await kit.method(customer, "card_insufficient_funds")
    invoice = await kit.open_invoice(customer, 2_500)
    after = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert (after["status"], after["amount_remaining"]) == ("open", 2_500)
    [payment] = (await kit.api.get("/v1/payments", params={"customer": customer}))["data"]
    assert (payment["status"], payment["decline_code"], payment["hard_decline"]) == (
        "failed",
        "insufficient_funds",
        False,
    )
    [failed] = await events(kit, "payment.failed")
    assert (
        failed["decline_code"],
        failed["hard_decline"],
        failed.get("tenant_id", customer),
    ) == ("insufficient_funds", False, customer)
    # A second attempt is attempt 2, with its own key.
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    attempts = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    assert [p["attempt"] for p in attempts] == [1, 2]


async def test_a_lost_card_is_a_hard_decline(kit: PayKit) -> None:
    customer = await kit.customer()
    await kit.method(customer, "card_lost")
    invoice = await kit.open_invoice(customer)
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [failed] = await events(kit, "payment.failed")
    assert (failed["decline_code"], failed["hard_decline"]) == ("lost_card", True)


async def test_a_3ds_card_asks_for_action_with_a_url(kit: PayKit) -> None:
    customer = await kit.customer()
    await kit.method(customer, "card_3ds")
    invoice = await kit.open_invoice(customer)
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {"off_session": False}, expect=200)
    [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    assert payment["status"] == "requires_action"
    assert payment["action_url"].startswith("https://fake.example/challenge/")
    [action] = await events(kit, "payment.action_required")
    assert action["action_url"] == payment["action_url"]
    busy = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=409)
    assert busy["code"] == "payment_in_progress"


async def test_bad_input_charges_nothing(kit: PayKit) -> None:
    alice, bob = await kit.customer("Alice"), await kit.customer("Bob")
    bobs = await kit.method(bob)
    await kit.method(alice)
    invoice = await kit.open_invoice(alice)
    other = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {"payment_method": bobs}, expect=404)
    assert other["code"] == "payment_method_not_found"
    second = await kit.method(alice)
    await kit.api.delete(f"/v1/customers/{alice}/payment_methods/{second}")
    detached = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {"payment_method": second}, expect=409)
    assert detached["code"] == "payment_method_unusable"
    yen = await kit.customer("Yamada", "JPY")
    await kit.method(yen)
    jpy_invoice = await kit.open_invoice(yen, 5_000, "JPY")
    unsupported = await kit.api.post(f"/v1/invoices/{jpy_invoice['id']}/pay", {}, expect=409)
    assert unsupported["code"] == "currency_not_supported"
    assert await payment_rows(kit) == 0 and kit.provider.world.charges_made == 0
    assert (await kit.api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "open"


async def test_paid_out_of_band_still_works(kit: PayKit) -> None:
    customer = await kit.customer()
    invoice = await kit.open_invoice(customer, 700)
    paid = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {"paid_out_of_band": True}, expect=200)
    assert (paid["status"], paid["amount_paid"]) == ("paid", 700)
    no_method = await kit.api.post(
        f"/v1/invoices/{(await kit.open_invoice(customer, 5))['id']}/pay", {}, expect=409
    )
    assert no_method["code"] == "no_payment_method"
    assert await payment_rows(kit) == 0


async def test_default_and_fallback_order(kit: PayKit) -> None:
    customer = await kit.customer()
    first = await kit.method(customer)
    second = await kit.method(customer)
    third = await kit.method(customer)
    listed = await kit.api.get(f"/v1/customers/{customer}/payment_methods")
    assert [(m["id"], m["priority"], m["is_default"]) for m in listed["data"]] == [
        (first, 0, True),
        (second, 1, False),
        (third, 2, False),
    ]
    await kit.api.post(f"/v1/customers/{customer}/payment_methods/{third}/default", {}, expect=200)
    await kit.api.patch(f"/v1/customers/{customer}/payment_methods/{first}", {"priority": 2})
    listed = await kit.api.get(f"/v1/customers/{customer}/payment_methods")
    assert [m["id"] for m in listed["data"]] == [third, second, first]
    await kit.api.delete(f"/v1/customers/{customer}/payment_methods/{third}")
    listed = await kit.api.get(f"/v1/customers/{customer}/payment_methods")
    assert [(m["id"], m["priority"]) for m in listed["data"]] == [(second, 0), (first, 1)]
    types = [e["type"] for e in await events(kit, "payment_method.")]
    assert types.count("payment_method.attached") == 3 and types[-1] == "payment_method.detached"


async def test_provider_accounts_never_show_credentials(kit: PayKit) -> None:
    listed = await kit.api.get("/v1/payment_provider_accounts")
    text = str(listed)
    assert "whsec_fake" not in text and "fake-key" not in text
    assert listed["data"][0]["webhook_path"] == f"/v1/payment_providers/{kit.account}/webhooks"
    async with kit.db.unit_of_work() as session:
        from gateway.payments.models import PaymentProviderAccount

        stored = (await session.scalars(select(PaymentProviderAccount.credentials))).all()
    assert all(value.startswith("tgs1.") and "whsec_fake" not in value for value in stored)
    missing = await kit.api.post(
        "/v1/payment_provider_accounts",
        {"kind": "stripe", "name": "S", "credentials": {"secret_key": "sk"}},
        expect=422,
    )
    assert missing["missing"] == ["webhook_secret"]


async def test_payments_list_filters_and_pages(kit: PayKit) -> None:
    customer = await kit.customer()
    await kit.method(customer)
    ids = []
    for amount in (100, 200, 300):
        invoice = await kit.open_invoice(customer, amount)
        await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
        ids.append(invoice["id"])
    page = await kit.api.get("/v1/payments", params={"customer": customer, "limit": 2})
    assert [p["amount"] for p in page["data"]] == [100, 200] and page["has_more"]
    rest = await kit.api.get(
        "/v1/payments", params={"customer": customer, "limit": 2, "starting_after": page["next_cursor"]}
    )
    assert [p["amount"] for p in rest["data"]] == [300] and not rest["has_more"]
    assert (await kit.api.get("/v1/payments", params={"status": "failed"}))["data"] == []
    later = await kit.api.get("/v1/payments", params={"created_gte": "2026-01-02T00:00:00Z"})
    assert later["data"] == []
    one = await kit.api.get(f"/v1/payments/{page['data'][0]['id']}")
    assert one["invoice"] == ids[0]


async def test_a_tenant_key_reads_its_own_payment_and_method_and_not_another_tenants(kit: PayKit) -> None:
    acme = await kit.customer("Acme")
    other = await kit.customer("Other")
    method = await kit.method(acme)
    their_method = await kit.method(other)
    invoice = await kit.open_invoice(acme, 4_200)
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    theirs = await kit.open_invoice(other, 1_300)
    await kit.api.post(f"/v1/invoices/{theirs['id']}/pay", {}, expect=200)
    [their_payment] = (await kit.api.get("/v1/payments", params={"invoice": theirs["id"]}))["data"]

    key = await kit.api.post("/v1/api_keys", {"name": "acme", "scopes": ["*"], "customer": acme})
    tenant = kit.api.as_key(key["secret"])
    own = await tenant.get(f"/v1/payments/{payment['id']}")
    assert (own["id"], own["status"], own["amount"], own["currency"], own["invoice"]) == (
        payment["id"],
        "succeeded",
        4_200,
        "EUR",
        invoice["id"],
    )
    card = await tenant.get(f"/v1/customers/{acme}/payment_methods/{method}")
    assert (card["id"], card["status"], card["priority"]) == (method, "active", 0)

    missing = await tenant.get(f"/v1/payments/{their_payment['id']}", expect=404)
    assert missing["status"] == 404
    await tenant.get(f"/v1/customers/{other}/payment_methods/{their_method}", expect=404)
    # Naming its own customer with the other tenant's method is a 404 too.
    await tenant.get(f"/v1/customers/{acme}/payment_methods/{their_method}", expect=404)
