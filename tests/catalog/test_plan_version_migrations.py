"""Plan versions with subscriber migration by rule (issue #14): Basic publishes version 2 with 10
projects; its USD subscriber is moved by a currency rule (dry run first), gets 10 projects in the index
at once, and the EUR one and a canceled one stay where they were; bad rules are 4xx and change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api
from tests.entitlements.test_check_api import synced
from tests.subscriptions.test_concurrent_writes import AtOnce

MIGRATE = "/v1/plans/basic/versions/2/migrations"


async def subscriber(api: Api, name: str, currency: str, price: str) -> tuple[str, str]:
    customer = await api.post("/v1/customers", {"name": name, "currency": currency})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": price})
    return customer["id"], sub["id"]


async def projects(api: Api, customer: str) -> tuple[int | None, int | None]:
    """The customer's plan version and projects limit, as the decision index answers them."""
    entitlements = await api.get(f"/v1/entitlements/{customer}")
    limit = next(f["limit"] for f in entitlements["features"] if f["feature"] == "projects")
    return entitlements["plan_version"], limit


async def counts(api: Api) -> dict[int, int | None]:
    return {v["version"]: v["subscribers"] for v in (await api.get("/v1/plans/basic/versions"))["data"]}


async def events(api: Api) -> list[dict[str, Any]]:
    page = await api.get("/v1/events", params={"type": "subscription.plan_version_migrated", "limit": 100})
    return list(page["data"])


async def test_a_currency_rule_moves_the_usd_subscriber_to_version_2_and_no_one_else(
    api: Api, demo: Any
) -> None:
    usd, usd_sub = await subscriber(api, "Tiny Studio", "USD", "basic_monthly")
    eur, eur_sub = await subscriber(api, "Bright Agency", "EUR", "basic_yearly")
    _gone, gone_sub = await subscriber(api, "Old Co", "USD", "basic_monthly")
    await api.post(f"/v1/subscriptions/{gone_sub}/cancel", {"at_period_end": False})
    v1 = (await api.get(f"/v1/subscriptions/{usd_sub}"))["plan_version"]

    published = await api.post(
        "/v1/plans/basic/versions",
        {
            "grants": [
                {"feature": "projects", "limit": 10},
                {"feature": "seats", "limit": 1},
                {"feature": "storage_mb", "limit": 1024},
                {"feature": "api_calls", "limit": 10_000},
                {"feature": "reporting_basic"},
                {"feature": "support_email"},
            ],
            "note": "10 projects",
        },
    )
    assert published["version"] == 2
    # Grandfathered: publishing moves no one; the canceled subscription is no live subscriber.
    assert await counts(api) == {1: 2, 2: 0}
    before = await api.get(f"/v1/subscriptions/{usd_sub}")

    preview = await api.post(MIGRATE, {"currency": "USD", "dry_run": True}, expect=200)
    assert preview == {
        "object": "plan_version_migration",
        "plan": "basic",
        "to_version": 2,
        "from_versions": [1],
        "dry_run": True,
        "matched": 1,
        "migrated": 0,
        "remaining": 1,
        "subscriptions": [{"id": usd_sub, "customer": usd, "from_version": 1}],
        "has_more": False,
    }
    assert await api.get(f"/v1/subscriptions/{usd_sub}") == before  # a dry run moves nothing
    assert await events(api) == []

    moved = await api.post(MIGRATE, {"currency": "USD"}, expect=200)
    assert (moved["dry_run"], moved["matched"], moved["migrated"], moved["remaining"]) == (False, 1, 1, 0)
    assert moved["subscriptions"] == [{"id": usd_sub, "customer": usd, "from_version": 1}]
    after = await api.get(f"/v1/subscriptions/{usd_sub}")
    [event] = await events(api)
    v2 = event["data"]["plan_version"]["id"]
    assert (event["aggregate_id"], event["customer"]) == (usd_sub, usd)
    assert event["data"]["previous_plan_version"] == {"id": v1, "version": 1}
    assert event["data"]["plan_version"] == {"id": v2, "version": 2}
    assert v2 != v1 and after["plan_version"] == v2
    assert after["version"] == before["version"] + 1
    assert event["data"]["subscription"]["version"] == after["version"]
    # The price and billing stay as they were: a version carries grants only.
    assert {k: v for k, v in after.items() if k not in ("plan_version", "version", "updated_at")} == {
        k: v for k, v in before.items() if k not in ("plan_version", "version", "updated_at")
    }

    await synced(api)
    assert await projects(api, usd) == (2, 10)
    fits = await api.post("/v1/check", {"customer": usd, "feature": "projects", "quantity": 8}, expect=200)
    assert (fits["allowed"], fits["limit"], fits["remaining"]) == (True, 10, 10)
    # The EUR subscriber keeps version 1 and its 5 projects.
    assert await projects(api, eur) == (1, 5)
    over = await api.post("/v1/check", {"customer": eur, "feature": "projects", "quantity": 8}, expect=200)
    assert (over["allowed"], over["reason"], over["limit"]) == (False, "quota_exceeded", 5)
    assert (await api.get(f"/v1/subscriptions/{eur_sub}"))["plan_version"] == v1
    canceled = await api.get(f"/v1/subscriptions/{gone_sub}")
    assert (canceled["status"], canceled["plan_version"]) == ("canceled", v1)

    assert await counts(api) == {1: 1, 2: 1}

    # Again: the USD subscriber is on version 2 already, so nothing matches; then everyone else moves,
    # the canceled subscription never.
    again = await api.post(MIGRATE, {"currency": "USD"}, expect=200)
    assert (again["matched"], again["migrated"], again["subscriptions"]) == (0, 0, [])
    rest = await api.post(MIGRATE, {"from_versions": [1, 2]}, expect=200)
    assert (rest["from_versions"], rest["matched"], rest["migrated"]) == ([1], 1, 1)
    assert rest["subscriptions"] == [{"id": eur_sub, "customer": eur, "from_version": 1}]
    assert (await api.get(f"/v1/subscriptions/{gone_sub}"))["plan_version"] == v1
    assert await counts(api) == {1: 0, 2: 2}
    assert len(await events(api)) == 2


async def test_bad_rules_are_refused_and_change_nothing(api: Api, demo: Any) -> None:
    customer, sub = await subscriber(api, "Tiny Studio", "USD", "basic_monthly")
    await api.post("/v1/plans/basic/versions", {"grants": [{"feature": "projects", "limit": 10}]})
    before = await api.get(f"/v1/subscriptions/{sub}")

    older = await api.post("/v1/plans/basic/versions/1/migrations", {"from_versions": [2]}, expect=422)
    assert (older["code"], older["field"]) == ("migration_to_older_version", "from_versions")
    refusals = [
        ("/v1/plans/nope/versions/2/migrations", {}, 404, "plan_not_found"),
        ("/v1/plans/basic/versions/9/migrations", {}, 404, "plan_version_not_found"),
        ("/v1/plans/basic/versions/0/migrations", {}, 404, "plan_version_not_found"),
        (MIGRATE, {"from_versions": [7]}, 422, "plan_version_not_found"),
        (MIGRATE, {"from_versions": []}, 422, "validation_failed"),
        (MIGRATE, {"customers": []}, 422, "validation_failed"),
        (MIGRATE, {"customers": ["cus_nobody"]}, 422, "customer_not_found"),
        (MIGRATE, {"currency": "usd"}, 422, "validation_failed"),
        (MIGRATE, {"interval": "fortnight"}, 422, "validation_failed"),
        (MIGRATE, {"dry_run": "yes"}, 422, "validation_failed"),
        (MIGRATE, {"plan": "pro"}, 422, "validation_failed"),
    ]
    for path, body, status, code in refusals:
        problem = await api.post(path, body, expect=status)
        assert problem["code"] == code, (path, body, problem)
    # Nothing moved, no event: the subscription is exactly as it was.
    assert await api.get(f"/v1/subscriptions/{sub}") == before
    assert await events(api) == []
    # Version 2 to version 2, or version 1 from every older one (none): a no-op, not an error.
    for path, body in ((MIGRATE, {"from_versions": [2]}), ("/v1/plans/basic/versions/1/migrations", {})):
        noop = await api.post(path, body, expect=200)
        assert (noop["from_versions"], noop["matched"], noop["migrated"]) == ([], 0, 0), path
    assert await api.get(f"/v1/subscriptions/{sub}") == before
    # A rule naming the customer moves it (and only with a live subscription of the plan).
    named = await api.post(MIGRATE, {"customers": [customer], "interval": "month"}, expect=200)
    assert (named["matched"], named["migrated"]) == (1, 1)


async def test_a_tenant_key_reads_versions_without_subscriber_counts_and_cannot_migrate(
    api: Api, demo: Any
) -> None:
    customer, _ = await subscriber(api, "Tiny Studio", "USD", "basic_monthly")
    key = await api.post("/v1/api_keys", {"name": "tiny", "scopes": ["*"], "customer": customer})
    tenant = api.as_key(key["secret"])
    assert await counts(api) == {1: 1}
    assert await counts(tenant) == {1: None}
    refused = await tenant.post("/v1/plans/basic/versions/1/migrations", {"dry_run": True}, expect=403)
    assert refused["code"] == "platform_key_required"


async def test_an_add_on_plans_subscribers_move_with_the_add_on_they_have_attached(
    api: Api, demo: Any
) -> None:
    customer = await api.post("/v1/customers", {"name": "Bright Agency", "currency": "USD"})
    sub = await api.post(
        "/v1/subscriptions",
        {
            "customer": customer["id"],
            "price": "pro_monthly",
            "trial_days": 0,
            "addons": [{"price": "extra_seats_monthly", "quantity": 2}],
        },
    )
    pro = await api.get("/v1/plans/pro/versions")
    await api.post("/v1/plans/extra_seats/versions", {"grants": [{"feature": "seats", "limit": 10}]})
    seats = {
        v["version"]: v["subscribers"] for v in (await api.get("/v1/plans/extra_seats/versions"))["data"]
    }
    assert seats == {1: 1, 2: 0}
    await synced(api)
    before = await api.get(f"/v1/entitlements/{customer['id']}")
    assert next(f["limit"] for f in before["features"] if f["feature"] == "seats") == 10 + 2 * 5

    moved = await api.post("/v1/plans/extra_seats/versions/2/migrations", {}, expect=200)
    assert (moved["matched"], moved["migrated"], moved["subscriptions"]) == (
        1,
        1,
        [{"id": sub["id"], "customer": customer["id"], "from_version": 1}],
    )
    await synced(api)
    after = await api.get(f"/v1/entitlements/{customer['id']}")
    assert next(f["limit"] for f in after["features"] if f["feature"] == "seats") == 10 + 2 * 10
    assert (after["plan"], after["plan_version"]) == ("pro", 1)  # the base plan did not move
    [event] = await events(api)
    assert event["data"]["addon"] == {
        "id": sub["addons"][0]["id"],
        "price": sub["addons"][0]["price"],
        "quantity": 2,
    }
    assert event["data"]["plan_version"]["version"] == 2
    seats = {
        v["version"]: v["subscribers"] for v in (await api.get("/v1/plans/extra_seats/versions"))["data"]
    }
    assert seats == {1: 0, 2: 1}
    assert await api.get("/v1/plans/pro/versions") == pro


async def test_a_migration_and_a_plan_change_at_once_lose_nothing(api: Api, demo: Any) -> None:
    """Released together, with no order forced: a migration that locks the subscription first moves it
    and the plan change follows; one that locks it second finds it on Pro and leaves it. Either way each
    event carries the next version and the subscription ends on Pro."""
    for n in range(4):
        customer, sub = await subscriber(api, f"Race {n}", "USD", "basic_monthly")
        latest = await api.post(
            "/v1/plans/basic/versions", {"grants": [{"feature": "projects", "limit": 10}]}
        )
        at_once = AtOnce(api)
        migration, change = await asyncio.gather(
            at_once.post(
                f"/v1/plans/basic/versions/{latest['version']}/migrations", {"customers": [customer]}
            ),
            at_once.post(f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly"}),
        )
        assert (migration.status_code, change.status_code) == (200, 201)
        page = await api.get("/v1/events", params={"aggregate": sub, "limit": 100})
        kinds = [(e["type"], e["data"]["subscription"]["version"]) for e in page["data"]]
        if migration.json()["migrated"] == 1:
            assert kinds == [
                ("subscription.created", 1),
                ("subscription.plan_version_migrated", 2),
                ("subscription.plan_changed", 3),
            ]
        else:
            assert migration.json()["matched"] in (0, 1)
            assert kinds == [("subscription.created", 1), ("subscription.plan_changed", 2)]
        after = await api.get(f"/v1/subscriptions/{sub}")
        assert (after["plan"], after["version"]) == ((await api.get("/v1/plans/pro"))["id"], len(kinds))
