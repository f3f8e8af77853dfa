"""SSO use cases: managing connections, and signing a browser in (login → IdP → callback → session).

Whether a tenant may use its own SSO connection is the plan feature `sso`, asked of the decision engine
through `CheckService` exactly as `/v1/check` asks it. A platform connection (the vendor's own IdP) needs no
plan feature but signs people only into tenants they already belong to: only a tenant's own IdP, which the
tenant controls, may create members just in time.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.service import record as audit_record
from gateway.customers import CustomerService
from gateway.db.outbox import record_change
from gateway.db.session import Database
from gateway.entitlements.engine import Engine
from gateway.entitlements.seats import MemberAdmission
from gateway.entitlements.seats import SeatLimitReached as SeatsFull
from gateway.entitlements.service import CheckService
from gateway.identity.sessions import Session, SessionStore
from gateway.identity.tokens import TokenSigner
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Forbidden, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.security.secretbox import SecretBox, column_context
from gateway.sso.domain import (
    DEFAULT_SCOPES,
    ConnectionNotFound,
    DomainsRequired,
    DomainTaken,
    IdentityNotLinkable,
    MembershipRemoved,
    NoSsoRoute,
    NotAMember,
    PlatformKeyRequired,
    SeatLimitReached,
    SessionMissing,
    SignInFailed,
    SsoNotInPlan,
    check_url,
    email_domain,
    new_nonce,
    new_pkce,
    new_state,
    normalize_domain,
    normalize_domains,
    verified_email,
)
from gateway.sso.models import SsoConnection
from gateway.sso.oidc import OidcClient, ProviderConfig
from gateway.sso.pending import PendingLogins
from gateway.sso.repository import SsoRepository

SSO_FEATURE = "sso"
URL_FIELDS = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint")


async def require_sso_feature(
    checks: CheckService, tenant_id: str, *, as_stored_in: AsyncSession | None = None
) -> None:
    """Refuse unless the tenant's plan includes SSO now. Sign-ins ask the index (fast, per request); a
    connection being configured (`as_stored_in` its request's session) asks the database when the index
    says no, so an app that has just subscribed the tenant is not refused until the index catches up."""
    result = await checks.check(customer=tenant_id, feature=SSO_FEATURE)
    if not result.allowed and as_stored_in is not None:
        result = await checks.check_feature_as_stored(as_stored_in, tenant_id, SSO_FEATURE)
    if not result.allowed:
        raise SsoNotInPlan(
            "single sign-on is not included in this organisation's plan"
            if result.reason == "feature_not_in_plan"
            else f"single sign-on is not available to this organisation now ({result.reason})",
            reason=result.reason,
            plan=result.plan,
        )


# -- client secrets at rest ---------------------------------------------------------------------------
def _secret_context(connection_id: str) -> str:
    return column_context("sso_connections", "client_secret", connection_id)


def seal_client_secret(box: SecretBox, connection_id: str, secret: str) -> str:
    return box.seal(secret, context=_secret_context(connection_id))


def open_client_secret(box: SecretBox, connection: SsoConnection) -> str:
    return box.open(connection.client_secret, context=_secret_context(connection.id))


async def seal_client_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Seal client secrets stored in clear (before encryption at rest) or under a retired key."""
    connections = await SsoRepository(session).all_connections()
    resealed = box.reseal_column(connections, "sso_connections", "client_secret")
    await session.flush()
    return resealed


# -- connections -------------------------------------------------------------------------------------
class ConnectionService:
    def __init__(
        self,
        repository: SsoRepository,
        customers: CustomerService,
        checks: CheckService,
        clock: Clock,
        box: SecretBox,
    ) -> None:
        self.repo = repository
        self.customers = customers
        self.checks = checks
        self.clock = clock
        self.box = box

    async def create(self, fields: dict[str, Any], *, scope: str | None) -> SsoConnection:
        tenant_id = fields.get("customer")
        if scope is not None:
            if tenant_id not in (None, scope):
                raise ConnectionNotFound(f"no customer {tenant_id!r}", code="customer_not_found")
            tenant_id = scope  # a tenant key configures its own organisation, never a platform IdP
        if tenant_id is not None:
            await self.customers.get(tenant_id, scope=scope)
            await require_sso_feature(self.checks, tenant_id, as_stored_in=self.repo.session)
        for name in URL_FIELDS:
            if fields.get(name) is not None:
                check_url(fields[name], name)
        domains = normalize_domains(fields.get("allowed_domains") or [])
        _require_domains(tenant_id, domains)
        await self._domains_free(domains, None)
        now = self.clock.now()
        connection_id = new_id("ssoc")
        row = SsoConnection(
            id=connection_id,
            tenant_id=tenant_id,
            name=fields["name"],
            issuer=fields["issuer"],
            authorization_endpoint=fields.get("authorization_endpoint"),
            token_endpoint=fields.get("token_endpoint"),
            jwks_uri=fields.get("jwks_uri"),
            end_session_endpoint=fields.get("end_session_endpoint"),
            client_id=fields["client_id"],
            client_secret=seal_client_secret(self.box, connection_id, fields["client_secret"]),
            scopes=_scopes(fields.get("scopes")),
            allowed_domains=domains,
            default_role=fields.get("default_role"),
            enabled=fields.get("enabled", True),
            created_at=now,
            updated_at=now,
        )
        self.repo.add(row)
        await self.repo.flush()
        await self.repo.replace_domains(row, domains)
        await self._audited(row, "sso_connection.created", issuer=row.issuer, allowed_domains=domains)
        return row

    async def _audited(self, row: SsoConnection, type_: str, **data: Any) -> None:
        await record_change(
            self.repo.session,
            type_,
            "sso_connection",
            row.id,
            self.clock.now(),
            tenant_id=row.tenant_id,
            **data,
        )

    async def _domains_free(self, domains: Sequence[str], connection_id: str | None) -> None:
        taken = sorted(
            d for d, owner in (await self.repo.domain_owners(domains)).items() if owner != connection_id
        )
        if taken:
            # Says only that the domain is routed elsewhere, not to whom (no cross-tenant leak).
            raise DomainTaken(
                f"already claimed by another SSO connection: {', '.join(taken)}; the platform can move a "
                "domain to its verified owner",
                domains=taken,
            )

    async def get(self, connection_id: str, *, scope: str | None) -> SsoConnection:
        row = await self.repo.get(connection_id, scope=scope)
        if row is None:
            raise ConnectionNotFound(f"no SSO connection {connection_id!r}")
        return row

    async def list(self, *, scope: str | None, after: str | None, limit: int) -> Page[SsoConnection]:
        return Page.from_overfetch(await self.repo.list(scope=scope, after=after, limit=limit), limit)

    async def update(
        self, connection_id: str, changes: dict[str, Any], *, scope: str | None
    ) -> SsoConnection:
        row = await self.get(connection_id, scope=scope)
        original = set(changes)  # before the domains and scopes are taken out below
        for name in URL_FIELDS:
            if changes.get(name) is not None:
                check_url(changes[name], name)
        if "issuer" in changes and changes["issuer"] is None:
            raise ValidationFailed("issuer cannot be removed", field="issuer")
        if changes.get("enabled") and row.tenant_id is not None:
            await require_sso_feature(self.checks, row.tenant_id, as_stored_in=self.repo.session)
        if "allowed_domains" in changes:
            domains = normalize_domains(changes.pop("allowed_domains") or [])
            _require_domains(row.tenant_id, domains)
            await self._domains_free(domains, row.id)
            row.allowed_domains = domains
            await self.repo.replace_domains(row, domains)
        if "scopes" in changes:
            row.scopes = _scopes(changes.pop("scopes"))
        if "client_secret" in changes:
            row.client_secret = seal_client_secret(self.box, row.id, changes.pop("client_secret"))
        for name, value in changes.items():
            setattr(row, name, value)
        row.updated_at = self.clock.now()
        await self.repo.flush()
        # Field names only: a new client secret must not land in the audit log.
        await self._audited(row, "sso_connection.updated", changed=sorted(original))
        return row

    async def delete(self, connection_id: str, *, scope: str | None) -> SsoConnection:
        row = await self.get(connection_id, scope=scope)
        await self.repo.remove(row)
        await self._audited(row, "sso_connection.deleted")
        return row

    async def verified_domains(self, rows: Sequence[SsoConnection]) -> dict[str, builtins.list[str]]:
        return await self.repo.verified_domains([r.id for r in rows])

    async def verify_domain(self, connection_id: str, domain: str, *, scope: str | None) -> SsoConnection:
        """The platform confirmed, out of band (a DNS TXT record, a mail to the domain's postmaster), that
        the connection's tenant owns `domain`: the claim moves to this connection, verified, and leaves any
        connection that claimed it before. Platform keys only: a tenant cannot vouch for itself."""
        if scope is not None:
            raise PlatformKeyRequired("only the platform verifies domain ownership")
        row = await self.get(connection_id, scope=None)
        try:
            name = normalize_domain(domain)
        except ValidationFailed:
            raise ValidationFailed(f"{domain!r} is not an e-mail domain", field="domain") from None
        previous = (await self.repo.domain_owners([name])).get(name)
        if previous is not None and previous != row.id:
            loser = await self.get(previous, scope=None)
            loser.allowed_domains = [d for d in loser.allowed_domains if d != name]
            loser.updated_at = self.clock.now()
        await self.repo.claim_verified(row, name, self.clock.now())
        if name not in row.allowed_domains:
            row.allowed_domains = sorted([*row.allowed_domains, name])
        row.updated_at = self.clock.now()
        await self.repo.flush()
        return row


def _require_domains(tenant_id: str | None, domains: Sequence[str]) -> None:
    """A tenant's IdP speaks only for the domains it claims: without any it would vouch for anyone."""
    if tenant_id is not None and not domains:
        raise DomainsRequired(
            "a tenant's SSO connection must claim the e-mail domains it signs in", field="allowed_domains"
        )


def _scopes(scopes: Sequence[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(scopes or DEFAULT_SCOPES))
    if "openid" not in chosen:
        chosen.insert(0, "openid")
    return chosen


async def provider_for(oidc: OidcClient, connection: SsoConnection, box: SecretBox) -> ProviderConfig:
    """Explicit endpoints win; the missing ones come from the issuer's (cached) discovery document."""
    explicit = (connection.authorization_endpoint, connection.token_endpoint, connection.jwks_uri)
    discovered = None if all(explicit) else await oidc.discover(connection.issuer)

    def pick(own: str | None, name: str) -> str:
        value = own or (getattr(discovered, name) if discovered else None)
        if not value:
            raise SignInFailed(f"the IdP publishes no {name}", code="idp_bad_metadata")
        return str(value)

    return ProviderConfig(
        issuer=connection.issuer,
        authorization_endpoint=pick(connection.authorization_endpoint, "authorization_endpoint"),
        token_endpoint=pick(connection.token_endpoint, "token_endpoint"),
        jwks_uri=pick(connection.jwks_uri, "jwks_uri"),
        end_session_endpoint=connection.end_session_endpoint
        or (discovered.end_session_endpoint if discovered else None),
        client_id=connection.client_id,
        client_secret=open_client_secret(box, connection),
        scopes=tuple(connection.scopes),
        iss_parameter_supported=discovered.iss_parameter_supported if discovered else False,
    )


# -- signing in --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SsoSettings:
    public_url: str  # where browsers reach Tiergate, e.g. https://auth.example.com
    session_ttl_seconds: int = 8 * 3600
    login_ttl_seconds: int = 600
    token_ttl_seconds: int = 900

    @property
    def redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + "/sso/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.public_url.rstrip("/") + "/sso/logged-out"


# Why a sign-in was started: a tenant's user (`/sso/callback`) or the vendor's staff (`/admin/sso/callback`).
MEMBER, STAFF = "member", "staff"


@dataclass(frozen=True, slots=True)
class Verified:
    """A callback whose every check passed: who the IdP vouched for, through which connection."""

    connection: SsoConnection
    pending: dict[str, Any]
    claims: dict[str, Any]
    email: str  # verified by the IdP, in the connection's domains
    id_token: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LoginStart:
    authorization_url: str
    binding: str  # the browser-binding cookie's value


@dataclass(frozen=True, slots=True)
class SignedIn:
    session_id: str
    user_id: str
    tenant_id: str
    email: str
    roles: tuple[str, ...]
    plan: str | None
    access_token: str
    expires_at: datetime
    provisioned: bool  # True when this sign-in created the membership (JIT)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime
    user_id: str
    tenant_id: str
    roles: tuple[str, ...]
    plan: str | None


# Builds the customers service on the sign-in's own unit of work (an AsyncSession).
CustomersFactory = Callable[[AsyncSession], CustomerService]


class SignInService:
    """The browser flow. It owns its unit of work: the membership a first sign-in creates must be committed
    (and the decision engine caught up) before the session and token that rely on it are handed out."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        checks: CheckService,
        oidc: OidcClient,
        pending: PendingLogins,
        sessions: SessionStore,
        signer: Callable[[], TokenSigner],
        customers: CustomersFactory,
        settings: SsoSettings,
        box: SecretBox,
        tenant_revoked: Callable[[str], bool] = lambda _tenant: False,
    ) -> None:
        self.tenant_revoked = tenant_revoked
        self.box = box
        self.db = db
        self.clock = clock
        self.checks = checks
        self.oidc = oidc
        self.pending = pending
        self.sessions = sessions
        self.signer = signer
        self.customers = customers
        self.settings = settings

    @property
    def engine(self) -> Engine:
        return self.checks.engine

    async def _route(self, email: str | None, tenant: str | None) -> SsoConnection:
        async with self.db.unit_of_work() as session:
            repo = SsoRepository(session)
            if email:
                domain = email_domain(email)
                if domain is None:
                    raise ValidationFailed("that is not an e-mail address", field="email")
                found = await repo.for_domain(domain)
                if found is not None and (tenant is None or found.tenant_id in (None, tenant)):
                    return found
                if tenant is None:
                    raise NoSsoRoute(f"no single sign-on is set up for {domain}")
            assert tenant is not None
            own = await repo.for_tenant(tenant)
            if own is not None:
                return own
            platform = await repo.platform_default()
            if platform is None:
                raise NoSsoRoute("no single sign-on is set up for this organisation")
            return platform

    async def begin(
        self, *, email: str | None, tenant: str | None, purpose: str = MEMBER, redirect_uri: str | None = None
    ) -> LoginStart:
        """Route to a connection; returns the IdP authorization URL to redirect the browser to, and the
        browser binding to set as a cookie. The state, nonce and PKCE verifier stay here, keyed by the state;
        the binding's hash goes with them, so the callback is accepted only from the browser that started
        (login CSRF: an attacker cannot make a victim finish the attacker's sign-in).

        `purpose`: `member` (a tenant's user, the default) or `staff` (the vendor's operators signing in to
        the console: only through a platform connection, routed by the e-mail's domain, and back to
        `redirect_uri`, the console's own callback)."""
        if not email and not tenant:
            raise ValidationFailed("give your e-mail address or your organisation", field="email")
        if purpose == STAFF:
            connection = await self._route(email, None)
            if connection.tenant_id is not None:
                raise NoSsoRoute("staff sign in through the platform's identity provider only")
        else:
            connection = await self._route(email, tenant)
        if connection.tenant_id is not None:
            await require_sso_feature(self.checks, connection.tenant_id)
        redirect_uri = redirect_uri or self.settings.redirect_uri
        provider = await provider_for(self.oidc, connection, self.box)
        state, nonce, pkce, binding = new_state(), new_nonce(), new_pkce(), new_state()
        await self.pending.put(
            state,
            {
                "connection": connection.id,
                "nonce": nonce,
                "verifier": pkce.verifier,
                "tenant": connection.tenant_id or tenant,
                "binding": _digest(binding),
                "purpose": purpose,
                "redirect_uri": redirect_uri,
            },
            self.settings.login_ttl_seconds,
        )
        url = self.oidc.authorization_url(
            provider,
            redirect_uri=redirect_uri,
            state=state,
            nonce=nonce,
            code_challenge=pkce.challenge,
        )
        if email:
            url += "&" + urlencode({"login_hint": email})
        return LoginStart(url, binding)

    async def complete(
        self,
        *,
        state: str | None,
        code: str | None,
        iss: str | None,
        error: str | None = None,
        binding: str | None = None,
    ) -> SignedIn:
        """The callback. Every check runs before anything is written: a failed one creates nothing."""
        verified = await self.verify(state=state, code=code, iss=iss, error=error, binding=binding)
        return await self._member_signs_in(verified)

    async def verify(
        self,
        *,
        state: str | None,
        code: str | None,
        iss: str | None,
        error: str | None = None,
        binding: str | None = None,
        purpose: str = MEMBER,
    ) -> Verified:
        """Every check of a callback (state, browser binding, issuer, code exchange, ID token, verified
        e-mail in the connection's domains), writing nothing. A sign-in started for another purpose (a
        staff sign-in's state at the members' callback, or the reverse) is refused like an unknown state."""
        pending = await self.pending.take(state) if state else None
        if pending is None or pending.get("purpose", MEMBER) != purpose:
            raise SignInFailed(
                "this sign-in was not started here, has expired or was already used", code="state_mismatch"
            )
        if not binding or not hmac.compare_digest(_digest(binding), str(pending.get("binding"))):
            raise SignInFailed("this sign-in was started in another browser", code="browser_mismatch")
        async with self.db.unit_of_work() as session:
            connection = await SsoRepository(session).get(pending["connection"], scope=None)
        if connection is None or not connection.enabled:
            raise SignInFailed("the SSO connection is no longer enabled", code="connection_disabled")
        provider = await provider_for(self.oidc, connection, self.box)
        # RFC 9207: the `iss` response parameter names who answered; a mix-up attack shows here.
        if iss is not None and iss != provider.issuer:
            raise SignInFailed("the authorization response came from another issuer", code="wrong_issuer")
        if iss is None and provider.iss_parameter_supported:
            raise SignInFailed("the IdP always sends `iss` and this response has none", code="wrong_issuer")
        if error:
            raise SignInFailed(f"the IdP reported: {error}", code="idp_error")
        if not code:
            raise SignInFailed("the authorization response carries no code", code="code_missing")
        token = await self.oidc.exchange_code(
            provider,
            code=code,
            code_verifier=pending["verifier"],
            redirect_uri=pending.get("redirect_uri") or self.settings.redirect_uri,
        )
        now = self.clock.now()
        claims = await self.oidc.verify_id_token(
            provider, token["id_token"], nonce=pending["nonce"], now=int(now.timestamp())
        )
        email = verified_email(claims)
        if email is None:
            raise SignInFailed(
                "the IdP did not vouch for an e-mail address (email_verified)", code="email_not_verified"
            )
        # A tenant's IdP speaks only for its claimed domains (none claimed: for nobody).
        limited = connection.tenant_id is not None or connection.allowed_domains
        if limited and email_domain(email) not in connection.allowed_domains:
            raise SignInFailed("this IdP may not sign in addresses of that domain", code="domain_not_allowed")
        return Verified(connection, pending, claims, email, token["id_token"], now)

    async def _member_signs_in(self, verified: Verified) -> SignedIn:
        connection, pending, claims, email, now = (
            verified.connection,
            verified.pending,
            verified.claims,
            verified.email,
            verified.at,
        )
        user_id, tenant_id, provisioned = await self._membership(
            connection, pending.get("tenant"), email, claims
        )
        # The index learns about a new membership from the outbox; catch up now rather than at the next poll.
        await self.engine.sync()
        issued = self._issue(user_id, tenant_id)
        async with self.db.unit_of_work() as session:
            await audit_record(
                session,
                action="user.signed_in",
                at=now,
                actor=f"user:{user_id}",
                tenant_id=tenant_id,
                target=user_id,
                user_id=user_id,
                data={"connection": connection.id, "provisioned": provisioned, "via": "sso"},
            )
        session_id = await self.sessions.create(
            user_id=user_id,
            tenant_id=tenant_id,
            data={
                "email": email,
                "name": claims.get("name") if isinstance(claims.get("name"), str) else None,
                "connection": connection.id,
                "subject": claims["sub"],
                "id_token": verified.id_token,
            },
            ttl_seconds=self.settings.session_ttl_seconds,
        )
        return SignedIn(
            session_id,
            user_id,
            tenant_id,
            email,
            issued.roles,
            issued.plan,
            issued.token,
            issued.expires_at,
            provisioned,
        )

    async def _membership(
        self, connection: SsoConnection, requested_tenant: str | None, email: str, claims: dict[str, Any]
    ) -> tuple[str, str, bool]:
        """Who signs in, into which tenant. The external identity (connection, iss, sub) names the user once
        it is bound; before that, the e-mail may find an existing user, but a tenant's IdP binds to them only
        if they belong to no other organisation (`_linkable`): users are global by e-mail, and one company's
        IdP must never sign in as another company's people."""
        issuer, subject = str(claims["iss"]), str(claims["sub"])
        async with self.db.unit_of_work(actor=f"sso:{connection.id}") as session:
            customers = self.customers(session)
            repo = SsoRepository(session)
            user_id = await self._user_for(repo, connection, issuer, subject, email)
            tenant_id = connection.tenant_id or requested_tenant
            if tenant_id is None:
                tenant_id = await self._only_tenant_of(repo, user_id)
            # Before the reads that decide: from here on, this tenant's first sign-ins run one at a time.
            if not await repo.lock_tenant(tenant_id):
                raise NoSsoRoute("this organisation no longer exists")
            identity = await repo.identity(connection.id, issuer, subject)  # again, under the lock
            user_id = identity.user_id if identity else await repo.user_id_by_email(email)
            if identity is None and user_id is not None and connection.tenant_id is not None:
                await self._linkable(repo, user_id, tenant_id)
            if connection.tenant_id is None and await repo.tenant_has_own(tenant_id):
                raise Forbidden(
                    "this organisation signs in with its own identity provider",
                    code="sso_connection_required",
                )
            if connection.tenant_id is not None:
                await require_sso_feature(self.checks, tenant_id)
            elif not self.engine.has_access(tenant_id):
                raise Forbidden("this organisation has no active subscription", code="subscription_inactive")
            status = await repo.membership_status(tenant_id, user_id) if user_id else None
            provisioned = False
            if status is not None and status != "active":
                # Someone an admin (or SCIM) removed must not walk back in through JIT.
                raise MembershipRemoved(
                    "this account was removed from the organisation; ask an admin to add it"
                )
            if status is None:
                if connection.tenant_id is None:
                    raise NotAMember("you are not a member of this organisation; ask an admin to invite you")
                customer = await customers.get(tenant_id)
                await self._seat_for_one_more(session, tenant_id)
                role = connection.default_role or customer.default_role
                name = claims.get("name") if isinstance(claims.get("name"), str) else None
                created, _ = await customers.add_member(tenant_id, email=email, name=name, role=role)
                user_id, provisioned = created.user_id, True
            assert user_id is not None
            now = self.clock.now()
            if identity is None:
                await repo.bind_identity(connection, issuer, subject, user_id, now)
            else:
                identity.last_sign_in_at = now
            return user_id, tenant_id, provisioned

    @staticmethod
    async def _user_for(
        repo: SsoRepository, connection: SsoConnection, issuer: str, subject: str, email: str
    ) -> str | None:
        identity = await repo.identity(connection.id, issuer, subject)
        return identity.user_id if identity else await repo.user_id_by_email(email)

    @staticmethod
    async def _linkable(repo: SsoRepository, user_id: str, tenant_id: str) -> None:
        """Never link by e-mail across tenants: a tenant's IdP may take over an existing account only when
        that account belongs to this tenant alone (invited, SCIM-provisioned or added here)."""
        if await repo.member_of_another_tenant(user_id, tenant_id) or await repo.bound_to_another_tenant(
            user_id, tenant_id
        ):
            raise IdentityNotLinkable(
                "this address belongs to an account of another organisation; this identity provider cannot "
                "sign it in"
            )

    async def _only_tenant_of(self, repo: SsoRepository, user_id: str | None) -> str:
        tenants = await repo.active_tenants_of(user_id) if user_id else []
        if not tenants:
            raise NotAMember("you are not a member of any organisation here")
        if len(tenants) > 1:
            raise NotAMember("you belong to several organisations: sign in from your organisation's page")
        return str(tenants[0])

    async def _seat_for_one_more(self, session: AsyncSession, tenant_id: str) -> None:
        """The one seat check every path that activates a member goes through (`entitlements/seats.py`),
        answered in the sign-in pages' terms."""
        try:
            await MemberAdmission(session, self.clock).take_seat(tenant_id)
        except SeatsFull as full:
            raise SeatLimitReached(
                f"all {full.extra['seats_limit']} seats of this organisation's plan are taken; "
                "an admin can free a seat or upgrade the plan",
                limit=full.extra["seats_limit"],
                used=full.extra["seats_used"],
            ) from None

    # -- after sign-in ----------------------------------------------------------------------------
    def _issue(self, user_id: str, tenant_id: str) -> AccessToken:
        # Deprovisioning revoked the tenant (canceled, expired, past due beyond grace): no new tokens.
        if self.tenant_revoked(tenant_id):
            raise SessionMissing("this organisation's access was revoked", code="access_revoked")
        view = self.engine.view()
        tenant = view.tenant(tenant_id)
        roles = tuple(view.roles_of(user_id, tenant_id).active)
        plan = tenant.plan_key if tenant else None
        claims = view.token_claims(user_id, tenant_id)
        token, expires = self.signer().sign(
            claims, at=self.clock.now(), ttl=timedelta(seconds=self.settings.token_ttl_seconds)
        )
        return AccessToken(token, expires, user_id, tenant_id, roles, plan)

    async def session(self, session_id: str | None) -> Session:
        found = await self.sessions.get(session_id) if session_id else None
        if found is None:
            raise SessionMissing("no live session: sign in again")
        return found

    async def refresh(self, session_id: str | None) -> AccessToken:
        """A new access token for a live session, from what the engine says now. A member removed, a tenant
        that lost access (or SSO from its plan), or a connection deleted or disabled ends the session."""
        current = await self.session(session_id)
        engine = self.engine
        roles = engine.roles_of(current.user_id, current.tenant_id)
        async with self.db.unit_of_work() as session:
            connection = await SsoRepository(session).get(str(current.data.get("connection")), scope=None)
        try:
            if connection is None or not connection.enabled:
                raise SessionMissing("the SSO connection was removed or disabled", code="connection_disabled")
            if not (roles.active or roles.inactive):
                raise SessionMissing(
                    "this account is no longer a member of the organisation", code="membership_ended"
                )
            if connection.tenant_id is not None:
                await require_sso_feature(self.checks, connection.tenant_id)
            elif not engine.has_access(current.tenant_id):
                raise SessionMissing(
                    "this organisation has no active subscription", code="subscription_inactive"
                )
        except (SessionMissing, SsoNotInPlan):
            await self.sessions.delete(current.id)
            raise
        return self._issue(current.user_id, current.tenant_id)

    async def logout(self, session_id: str | None) -> str | None:
        """End the local session; returns the IdP's end-session URL (RP-initiated logout) when it has one."""
        current = await self.sessions.get(session_id) if session_id else None
        if current is None:
            return None
        await self.sessions.delete(current.id)
        async with self.db.unit_of_work() as session:
            connection = await SsoRepository(session).get(str(current.data.get("connection")), scope=None)
        if connection is None:
            return None
        try:
            provider = await provider_for(self.oidc, connection, self.box)
        except SignInFailed:
            return None  # the IdP is unreachable: the local sign-out stands
        return self.oidc.end_session_url(
            provider,
            id_token_hint=current.data.get("id_token"),
            post_logout_redirect_uri=self.settings.post_logout_redirect_uri,
            state=new_state(),
        )


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()
