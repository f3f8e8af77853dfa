"""The one guard for outbound HTTP to user-given URLs (webhook endpoints today; payment and e-mail hooks
later): without it, a URL field turns the server into a proxy into its own network (SSRF).

Policy, checked when the URL is saved (`check_destination`) and again on every request (`GuardedTransport`):
- https only, unless `allow_http`; no credentials in the URL;
- the host's addresses must all be public: loopback, private (RFC 1918, ULA, CGNAT), link-local (cloud
  metadata at 169.254.169.254), multicast, reserved, unspecified, and IPv6 forms that embed an IPv4 address
  (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4, Teredo, NAT64) are refused, unless
  `allow_private` (development and the test suite only);
- on send, the name is resolved once, every address is vetted, and the connection goes to the vetted
  address (the URL's host stays in the Host header and TLS SNI/certificate check), so a DNS answer that
  changes between check and connect (DNS rebinding) cannot redirect the request;
- redirects are never followed (the client is built with `follow_redirects=False`; a 3xx is a failure);
- failures are reported as a class (`failure_class`), never the internal error text, so the delivery log
  does not become a port scanner's read-out.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

from gateway.config import Settings
from gateway.kernel.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

# IPv6 prefixes that carry an IPv4 address (the guard refuses them outright rather than unwrap them).
_EMBEDS_IPV4 = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.ip_network("2002::/16"),  # 6to4
    ipaddress.ip_network("2001::/32"),  # Teredo
)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    allow_http: bool = False
    allow_private: bool = False

    @classmethod
    def for_webhooks(cls, settings: Settings) -> OutboundPolicy:
        return cls(
            allow_http=settings.webhook_allow_http, allow_private=settings.webhook_allow_private_targets
        )


class TargetNotAllowed(ValidationFailed):
    """422 `url_not_allowed` with `reason`: scheme, credentials, invalid, loopback, private, link_local,
    multicast, reserved, unspecified, ipv4_embedded, not_global."""

    code = "url_not_allowed"
    title = "This URL is not an allowed destination"


class RefusedAtSend(httpx.TransportError):
    """The transport refused the destination (its address is not allowed now)."""


class ResolutionFailed(httpx.ConnectError):
    """The host name did not resolve."""


def address_refusal(address: IPAddress) -> str | None:
    """Why an address may not be a destination, or None when it is a public unicast address."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if isinstance(address, ipaddress.IPv6Address) and (
        address.ipv4_mapped is not None or any(address in net for net in _EMBEDS_IPV4)
    ):
        return "ipv4_embedded"
    checks = (
        ("link_local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    )
    for reason, hit in checks:
        if hit:
            return reason
    return None if address.is_global else "not_global"


def check_url(url: str, policy: OutboundPolicy, field: str = "url") -> SplitResult:
    """Syntax, scheme and credentials, and a literal address in the host; no DNS."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is what rejects "host:99999"
    except ValueError:
        raise TargetNotAllowed("not a valid URL", field=field, reason="invalid") from None
    allowed = ("https", "http") if policy.allow_http else ("https",)
    if parts.scheme not in allowed:
        raise TargetNotAllowed(f"the URL must use {' or '.join(allowed)}", field=field, reason="scheme")
    if not parts.hostname:
        raise TargetNotAllowed("the URL has no host", field=field, reason="invalid")
    if parts.username or parts.password:
        raise TargetNotAllowed("the URL must not carry credentials", field=field, reason="credentials")
    literal = _literal_address(parts.hostname)
    if literal is not None:
        _vet([str(literal)], policy, field)
    return parts


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (also turns "2130706433" or "0x7f.1" into the
    address they mean, which is why even odd-looking literals go through it)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Looked up at call time, so tests can stand in a resolver (`monkeypatch.setattr(outbound, "resolve", …)`).
resolve: Resolver = system_resolve


async def check_destination(url: str, policy: OutboundPolicy, field: str = "url") -> None:
    """When a URL is saved: `check_url`, then the addresses the name resolves to now. A name that does not
    resolve yet is accepted (DNS may come later); every send checks again."""
    parts = check_url(url, policy, field)
    try:
        addresses = await resolve(str(parts.hostname), _port_of(parts.scheme, parts.port))
    except (OSError, ValueError):  # ValueError: a name the IDNA codec refuses (a label over 63 characters)
        return
    _vet(addresses, policy, field)


def _vet(addresses: list[str], policy: OutboundPolicy, field: str) -> str:
    """The first address, after checking that every one of them is allowed."""
    if not addresses:
        raise TargetNotAllowed("the host has no address", field=field, reason="invalid")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = None if policy.allow_private else address_refusal(address)
        if reason is not None:
            raise TargetNotAllowed(
                f"the URL's host is a {reason.replace('_', '-')} address, which is not allowed",
                field=field,
                reason=reason,
            )
    return addresses[0]


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _port_of(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


class GuardedTransport(httpx.AsyncBaseTransport):
    """Resolves, vets, then connects to the vetted address; Host header and SNI keep the URL's name."""

    def __init__(self, policy: OutboundPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        try:
            check_url(str(url), self.policy)
            host = url.host
            literal = _literal_address(host)
            if literal is not None:
                address = str(literal)
            else:
                try:
                    addresses = await resolve(host, _port_of(url.scheme, url.port))
                except (OSError, ValueError) as exc:
                    raise ResolutionFailed("the host name did not resolve", request=request) from exc
                address = _vet(addresses, self.policy, "url")
        except TargetNotAllowed as exc:
            raise RefusedAtSend(f"destination refused ({exc.extra.get('reason')})", request=request) from None
        if literal is None:
            # The request keeps its Host header (set from the original URL); TLS names the host too.
            request.extensions = {**request.extensions, "sni_hostname": host}
        request.url = url.copy_with(host=address)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def guarded_client(policy: OutboundPolicy, timeout_seconds: float) -> httpx.AsyncClient:
    """The only way to build a client for user-given URLs: guarded transport, no redirects, and no proxy
    settings from the environment (a proxy would connect wherever the name points)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy),
        timeout=timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


def failure_class(exc: BaseException | None = None, status_code: int | None = None) -> str:
    """What went wrong, as a class a user can act on, never the internal message: timeout, tls_error,
    connection_refused, connection_error, dns_error, target_not_allowed, protocol_error,
    redirect_not_followed, http_4xx, http_5xx, http_status."""
    if exc is None:
        if status_code is not None and 300 <= status_code < 400:
            return "redirect_not_followed"
        if status_code is not None and 400 <= status_code < 600:
            return f"http_{status_code // 100}xx"
        return "http_status"
    if isinstance(exc, RefusedAtSend):
        return "target_not_allowed"
    if isinstance(exc, ResolutionFailed):
        return "dns_error"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    causes = _causes(exc)
    if any(isinstance(c, ssl.SSLError | ssl.CertificateError) for c in causes):
        return "tls_error"
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection_refused"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "dns_error"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol_error"
    return "connection_error"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
