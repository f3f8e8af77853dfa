"""The OpenAPI document and its viewers (issue 9): the `Idempotency-Key` header is documented on every
POST the middleware replays, and `/docs` loads its viewer from Tiergate itself, never from a CDN."""

from __future__ import annotations

import re

from litestar import Litestar

from gateway.web.idempotency import replays
from tests.conftest import Api


def test_every_post_documents_the_idempotency_key_header(app: Litestar) -> None:
    document = app.openapi_schema.to_schema()
    posts = {path: item["post"] for path, item in document["paths"].items() if "post" in item}
    assert len(posts) > 50
    without = []
    for path, operation in posts.items():
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        documented = [p for p in headers if p["name"] == "Idempotency-Key"]
        if not documented:
            without.append(path)
            continue
        (header,) = documented
        assert header["required"] is False
        assert header["schema"] == {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": "^[!-~]([ -~]*[!-~])?$",
        }
        assert "replayed" in header["description"]
        # The middleware's own answers are documented too, as problems.
        for status in ("409", "422"):
            content = operation["responses"][status]["content"]
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    # Forward auth is the one POST the middleware never replays (a proxy's decision is asked afresh).
    assert without == ["/v1/authz/forward"]
    assert not replays("POST", "/v1/authz/forward")


EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.IGNORECASE)
ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


async def test_docs_load_nothing_from_another_host_and_serve_their_assets(api: Api) -> None:
    for page in ("/docs", "/docs/scalar", "/docs/swagger"):
        response = await api.client.get(page)
        assert response.status_code == 200, page
        html = response.text
        assert EXTERNAL.search(html) is None, f"{page} loads from another host"
        assert "https://" not in html and "http://" not in html, page
        assets = ASSET.findall(html)
        assert assets, page
        for url in assets:
            assert url.startswith("/docs/assets/"), url
            asset = await api.client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 10_000, url
    scalar = await api.client.get("/docs/assets/scalar/standalone.js")
    assert scalar.headers["content-type"].startswith("text/javascript")
    # Scalar is told not to fetch its hosted fonts (the bundle would otherwise load them itself).
    assert '"withDefaultFonts":false' in (await api.client.get("/docs")).text
    swagger_css = await api.client.get("/docs/assets/swagger-ui/swagger-ui.css")
    assert swagger_css.headers["content-type"].startswith("text/css")
    assert (await api.client.get("/docs/assets/nothing.js")).status_code == 404
