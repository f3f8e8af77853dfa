"""Django middleware: verify the end user's Tiergate token offline and attach it as `request.tiergate_user`.

    MIDDLEWARE = [..., "tiergate_client.django.TiergateMiddleware"]
    TIERGATE = {"BASE_URL": "https://tiergate.internal", "REQUIRED": True, "ISSUER": None}

Permission checks then go through `tiergate_client.Tiergate(...).checks.check` or a LocalDecider from an
async view. A request without a valid token gets 401 problem+json when REQUIRED is true.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .errors import TokenInvalid
from .tokens import TokenVerifier


def _problem(status: int, code: str, detail: str) -> Any:
    from django.http import HttpResponse

    response = HttpResponse(
        json.dumps({"type": "about:blank", "status": status, "code": code, "detail": detail}),
        status=status,
        content_type="application/problem+json",
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="tiergate"'
    return response


class TiergateMiddleware:
    def __init__(self, get_response: Callable[[Any], Any], verifier: TokenVerifier | None = None) -> None:
        from django.conf import settings

        config = getattr(settings, "TIERGATE", {})
        self.get_response = get_response
        self.required = bool(config.get("REQUIRED", True))
        self.verifier = verifier or TokenVerifier(config["BASE_URL"], issuer=config.get("ISSUER"))

    def __call__(self, request: Any) -> Any:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        request.tiergate_user = None
        if header[:7].lower() == "bearer ":
            try:
                request.tiergate_user = self.verifier.verify(header[7:].strip())
            except TokenInvalid as exc:
                return _problem(401, "token_invalid", str(exc))
        elif self.required:
            return _problem(401, "token_missing", "a Tiergate access token is required")
        return self.get_response(request)
