"""Forward auth decides on the path the backend reads (issue 9, hole 4).

With a Basic owner's token `/api/reports/advanced` was refused, but `/api/reports/ADVANCED`,
`/api/reports/advanced;x=1`, `/api/reports/advanced%20` and `/api/reports/advanced.json` were allowed:
each names the advanced report to some backend (Express folds case, Tomcat drops `;params`, IIS drops
trailing spaces, Rails reads `.json` as a format). The URI is now normalised once and routes match the
normalised segments; what no reading makes safe is refused (403 bad_path).

The property tests generate variants of every route the route table gates for some user, and assert no
variant is allowed where the canonical path is refused, both on the pure table and through the API.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.config import Settings
from gateway.db.session import Database
from gateway.entitlements.routes import (
    DEFAULT_ROUTES,
    DEFAULT_TABLE,
    BadPath,
    RouteTableError,
    load_routes,
)
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import tenant

FORWARD = "/v1/authz/forward"
Denial = tuple[str, str, str, str]  # (user, method, canonical path, reason)
# Values the demo table's placeholders take in the generated canonical paths.
PLACEHOLDER_VALUES = {"family": ("basic", "advanced", "custom"), "id": ("42",)}


async def forward(client: AsyncTestClient[Litestar], token: str, method: str, uri: str) -> tuple[int, str]:
    response = await client.get(
        FORWARD,
        headers={"Authorization": f"Bearer {token}", "X-Original-Method": method, "X-Original-URI": uri},
    )
    code = response.json()["code"] if response.status_code >= 400 else "allowed"
    return response.status_code, code


async def basic_tokens(api: Api, app: Litestar) -> dict[str, str]:
    """A Basic tenant with an owner and a viewer; their access tokens."""
    customer, _, users = await tenant(api, app, owner="owner", viewer="viewer")
    return {
        name: (await api.post("/v1/tokens", {"customer": customer, "user": users[name]}))["access_token"]
        for name in ("owner", "viewer")
    }


def canonical_requests() -> list[tuple[str, str]]:
    """(method, path) for every route of the demo table, placeholders filled, `/**` with and without a
    tail: the canonical paths whose variants the property tests try."""
    requests = []
    for route in DEFAULT_ROUTES:
        methods = [route["method"]] if isinstance(route["method"], str) else list(route["method"])
        template = str(route["path"])
        rest = template.endswith("/**")
        paths = [template.removesuffix("/**")]
        for name, values in PLACEHOLDER_VALUES.items():
            paths = [p.replace("{" + name + "}", v) for p in paths for v in values]
        if rest:
            paths += [p + "/q3" for p in paths]
        requests += [(m, p) for m in methods for p in paths]
    return requests


# -- the four reported bypasses ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "uri",
    [
        "/api/reports/advanced",
        "/api/reports/ADVANCED",
        "/api/reports/advanced;x=1",
        "/api/reports/advanced%20",
        "/api/reports/advanced.json",
        "/API/Reports/Advanced.JSON/",
        "/api/reports/%61dvanced",
        "//api//reports///advanced.",
        "/api/reports/advanced;jsessionid=1/q3",
        "/api/reports/%EF%BD%81dvanced",  # fullwidth `ａ`: NFKC folds it to `a`
    ],
)
async def test_gated_report_variants_are_refused_as_not_in_plan(
    api: Api, app: Litestar, demo: Any, uri: str
) -> None:
    tokens = await basic_tokens(api, app)
    assert await forward(api.client, tokens["owner"], "GET", uri) == (403, "feature_not_in_plan")
    # The same owner reads the basic report in any spelling: normalising refuses nothing legitimate.
    basic = uri.replace("advanced", "basic").replace("ADVANCED", "BASIC").replace("Advanced", "Basic")
    basic = basic.replace("%61dvanced", "%62asic").replace("%EF%BD%81dvanced", "%EF%BD%82asic")
    assert await forward(api.client, tokens["owner"], "GET", basic) == (200, "allowed")


@pytest.mark.parametrize(
    "uri",
    [
        "/api/reports/basic/../advanced",
        "/api/reports/./advanced",
        "/api/reports/basic/%2e%2e/advanced",
        "/api/reports/..;/advanced",
        "/api/reports/basic%2F..%2Fadvanced",
        "/api/reports/basic%5C..%5Cadvanced",
        "/api/reports/%2561dvanced",  # double encoding: `%61dvanced` after one decode
        "/api/reports/adv%zz",
        "/api/reports/%ff",
        "/api/reports/%2E%20",
        "/api/reports/advanced%3F.json",
        "/api/reports/advanced%00",
    ],
)
async def test_ambiguous_paths_are_refused_as_bad_path(api: Api, app: Litestar, demo: Any, uri: str) -> None:
    tokens = await basic_tokens(api, app)
    assert await forward(api.client, tokens["owner"], "GET", uri) == (403, "bad_path")


# -- default-deny under gated prefixes ----------------------------------------------------------------
def test_gated_prefixes_come_from_the_first_literal_segment_of_each_route() -> None:
    table = load_routes(
        [
            {
                "method": "GET",
                "path": "/api/reports/{family}",
                "resource": "reports/{family}",
                "action": "read",
            },
            {"method": "GET", "path": "/{tenant}/files/**", "resource": "files", "action": "read"},
            {"method": "GET", "path": "/Admin", "resource": "admin", "action": "read"},
        ],
        unmatched="allow",
    )
    assert table.gated_prefixes == frozenset({"api", "admin"})
    # Under /api nothing but the routes: unknown names, other methods, deeper paths are all refused.
    for uri in ("/api/unknown", "/API/reports", "/api/reports/basic/deeper", "/api"):
        assert not table.allows_unmatched(table.normalise(uri)), uri
    assert table.match("POST", table.normalise("/api/reports/basic")) is None
    # Outside every gated prefix, `unmatched = "allow"` still applies.
    for uri in ("/static/app.js", "/", "/apiary", "/login"):
        assert table.allows_unmatched(table.normalise(uri)), uri
    denying = load_routes([{"path": "/api/x", "resource": "x", "action": "read"}])
    assert not denying.allows_unmatched(denying.normalise("/static/app.js"))


async def test_unmatched_allow_still_denies_under_the_gated_prefix(
    db: Database, clock: FrozenClock, demo: Any
) -> None:
    settings_ = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        forward_unmatched="allow",
    )
    from gateway.app import create_app

    app = create_app(settings_, clock=clock, db=db)
    async with AsyncTestClient(app) as client:
        api = Api(client, ADMIN_KEY)
        tokens = await basic_tokens(api, app)
        owner = tokens["owner"]
        assert await forward(client, owner, "GET", "/static/app.js") == (200, "allowed")
        assert await forward(client, owner, "GET", "/api/unknown") == (403, "no_route")
        assert await forward(client, owner, "GET", "/API/Unknown.json") == (403, "no_route")
        assert await forward(client, owner, "DELETE", "/api/reports/basic") == (403, "no_route")
        assert await forward(client, owner, "GET", "/api/reports/ADVANCED") == (403, "feature_not_in_plan")


# -- the case rule is the table's ----------------------------------------------------------------------
def test_case_sensitivity_is_a_table_setting_defaulting_to_insensitive() -> None:
    insensitive = DEFAULT_TABLE
    assert not insensitive.case_sensitive
    folded = insensitive.resolve("GET", "/API/Reports/ADVANCED")
    assert folded is not None and folded.resource == "reports/advanced"
    sensitive = load_routes(DEFAULT_ROUTES, case_sensitive=True)
    assert sensitive.resolve("GET", "/API/reports/advanced") is None
    exact = sensitive.resolve("GET", "/api/reports/Advanced;x=1.")
    assert exact is not None and exact.resource == "reports/Advanced"


def test_route_literals_must_be_in_normal_form() -> None:
    for path in ("/api/reports.json", "/api/a;b/x", "/api/%41/x", "/api/a./x", "/api/../x"):
        with pytest.raises(RouteTableError, match="not in normal form"):
            load_routes([{"path": path, "resource": "r", "action": "read"}])
    # A dotted literal that is not the last segment is fine: only the request's last segment loses `.ext`.
    table = load_routes([{"path": "/api/v1.2/{x}", "resource": "r/{x}", "action": "read"}])
    match = table.resolve("GET", "/api/V1.2/Thing.json")
    assert match is not None and match.resource == "r/thing"


# -- property tests: no variant of a refused canonical path is allowed ----------------------------------
def _case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c for c, f in zip(text, flips, strict=True))


def _encode(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        if draw(st.integers(0, 3)) == 0:
            escape = f"%{ord(ch):02X}"
            out.append(escape if draw(st.booleans()) else escape.lower())
        else:
            out.append(ch)
    return "".join(out)


SEPARATORS = ["/", "//", "/./", "/x/../", "/%2e/"]
SUFFIXES = ["", ";x=1", ";jsessionid=ABC", ";", ".", "%20", "%2E", ". ", "%20.%20"]
TAILS = ["", "/", "//", "?q=1", "/?a=b", "#frag", ";p=1/"]
EXTENSIONS = ["", ".json", ".JSON", ".html", ".tar.gz", ".json;x=1"]


@st.composite
def variants(draw: st.DrawFn, path: str) -> tuple[str, bool]:
    """A spelling of `path` a lenient backend could read as `path`, and whether it holds a dot segment
    (those are refused as bad_path whatever they resolve to)."""
    segments = path.strip("/").split("/")
    out, dotted = "", False
    for number, segment in enumerate(segments):
        separator = draw(st.sampled_from(SEPARATORS)) if number else draw(st.sampled_from(SEPARATORS[:2]))
        dotted = dotted or separator not in {"/", "//"}
        spelled = _encode(draw, _case(draw, segment))
        if number == len(segments) - 1:
            spelled += draw(st.sampled_from(EXTENSIONS))
        out += separator + spelled + draw(st.sampled_from(SUFFIXES))
    return out + draw(st.sampled_from(TAILS)), dotted


_CANONICAL = canonical_requests()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_CANONICAL).flatmap(lambda mp: st.tuples(st.just(mp), variants(mp[1]))))
def test_every_variant_resolves_to_the_canonical_route_or_is_refused(
    case: tuple[tuple[str, str], tuple[str, bool]],
) -> None:
    (method, path), (variant, dotted) = case
    canonical = DEFAULT_TABLE.resolve(method, path)
    assert canonical is not None
    try:
        match = DEFAULT_TABLE.resolve(method, variant)
    except BadPath:
        return
    assert not dotted, f"{variant!r} holds a dot segment and was routed"
    assert match == canonical, (variant, match, canonical)


@pytest.fixture
async def denials(api: Api, app: Litestar, demo: Any) -> tuple[dict[str, str], list[Denial]]:
    """Every canonical request the Basic owner or viewer is refused, with the reason."""
    tokens = await basic_tokens(api, app)
    refused = []
    for user, token in tokens.items():
        for method, path in _CANONICAL:
            status, code = await forward(api.client, token, method, path)
            if status != 200:
                assert status == 403, (user, method, path, status, code)
                refused.append((user, method, path, code))
    return tokens, refused


async def test_the_canonical_denials_include_the_reported_ones(
    denials: tuple[dict[str, str], list[Denial]],
) -> None:
    _, refused = denials
    assert ("owner", "GET", "/api/reports/advanced", "feature_not_in_plan") in refused
    assert ("owner", "GET", "/api/reports/custom/q3", "feature_not_in_plan") in refused
    assert ("viewer", "POST", "/api/projects", "no_permission") in refused
    assert ("viewer", "DELETE", "/api/members/42", "no_permission") in refused
    assert not any(path.startswith("/api/reports/basic") for _, _, path, _ in refused)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_no_variant_of_a_refused_path_is_allowed_through_the_api(
    api: Api,
    denials: tuple[dict[str, str], list[Denial]],
    data: st.DataObject,
) -> None:
    tokens, refused = denials
    user, method, path, reason = data.draw(st.sampled_from(refused))
    variant, dotted = data.draw(variants(path))
    status, code = await forward(api.client, tokens[user], method, variant)
    assert (status, code) == (403, "bad_path" if dotted else reason), (user, method, variant)
