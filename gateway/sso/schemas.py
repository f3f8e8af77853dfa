"""Request and response types of the SSO connections API. The client secret goes in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.sso.models import SsoConnection as ConnectionRow

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Url = Annotated[str, Meta(min_length=8, max_length=500, pattern=r"^https?://")]
ClientId = Annotated[str, Meta(min_length=1, max_length=300)]
Secret = Annotated[str, Meta(min_length=1, max_length=2000)]
Scope = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[\x21\x23-\x5B\x5D-\x7E]+$")]
Domain = Annotated[str, Meta(min_length=3, max_length=255)]
Role = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_\-]*$")]


class ConnectionCreate(Struct, forbid_unknown_fields=True):
    name: Name
    issuer: Url
    client_id: ClientId
    client_secret: Secret
    # The tenant that owns the connection; omitted (platform key) = a platform-level IdP.
    customer: Annotated[str, Meta(max_length=40)] | None = None
    authorization_endpoint: Url | None = None
    token_endpoint: Url | None = None
    jwks_uri: Url | None = None
    end_session_endpoint: Url | None = None
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=20)] | None = None
    allowed_domains: Annotated[list[Domain], Meta(max_length=50)] = msgspec.field(default_factory=list)
    default_role: Role | None = None
    enabled: bool = True


class ConnectionUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    issuer: Url | UnsetType = UNSET
    client_id: ClientId | UnsetType = UNSET
    client_secret: Secret | UnsetType = UNSET
    authorization_endpoint: Url | UnsetType | None = UNSET
    token_endpoint: Url | UnsetType | None = UNSET
    jwks_uri: Url | UnsetType | None = UNSET
    end_session_endpoint: Url | UnsetType | None = UNSET
    scopes: Annotated[list[Scope], Meta(min_length=1, max_length=20)] | UnsetType = UNSET
    allowed_domains: Annotated[list[Domain], Meta(max_length=50)] | UnsetType = UNSET
    default_role: Role | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class DomainVerification(Struct, forbid_unknown_fields=True):
    domain: Domain


class Connection(Struct):
    id: str
    object: Literal["sso_connection"]
    customer: str | None
    name: str
    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str | None
    jwks_uri: str | None
    end_session_endpoint: str | None
    client_id: str
    client_secret_set: bool
    scopes: list[str]
    allowed_domains: list[str]
    # The claimed domains the platform verified for this connection (nobody else can claim them).
    verified_domains: list[str]
    default_role: str | None
    enabled: bool
    # What to register at the IdP as this client's redirect URI.
    redirect_uri: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ConnectionRow, redirect_uri: str, verified: list[str]) -> Connection:
        return cls(
            row.id,
            "sso_connection",
            row.tenant_id,
            row.name,
            row.issuer,
            row.authorization_endpoint,
            row.token_endpoint,
            row.jwks_uri,
            row.end_session_endpoint,
            row.client_id,
            bool(row.client_secret),
            [str(s) for s in row.scopes],
            [str(d) for d in row.allowed_domains],
            sorted(d for d in verified if d in row.allowed_domains),
            row.default_role,
            row.enabled,
            redirect_uri,
            row.created_at,
            row.updated_at,
        )


class ConnectionList(Struct):
    data: list[Connection]
    has_more: bool
    next_cursor: str | None


class SsoToken(Struct):
    object: Literal["access_token"]
    access_token: str
    token_type: Literal["Bearer"]
    expires_at: datetime
    user: str
    customer: str
    roles: list[str]
    plan: str | None


class SsoSessionInfo(Struct):
    object: Literal["sso_session"]
    user: str
    customer: str
    email: str
    name: str | None
    roles: list[str]
    plan: str | None
    connection: str
    expires_at: datetime
