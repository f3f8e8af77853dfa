"""Erasing a user's personal data from every store that keeps a copy of it (GDPR art. 17).

`users` holds the e-mail and name; copies end up elsewhere: the SCIM face of each membership (the IdP's
emails, name, displayName, externalId), the labels of SCIM group members, outbox events and audit entries
(`invite.created` carried the address), the payloads stored for webhook deliveries, and the responses
kept for Idempotency-Key replays. `scrub_copies` finds the rows of those stores that mention the user's
e-mail or names and rewrites them: a string that *is* one of the personal values becomes the pseudonym
(e-mail) or null (a name), a string that *contains* the e-mail has it replaced. Rows are found with a
case-insensitive text search, which scans: erasure is rare and must be complete rather than fast.

The tables of scim and notifications sit above provisioning in the layers: they are reached through bare
table clauses, as `PrivacyRepository` reaches `users`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    ColumnElement,
    LargeBinary,
    String,
    Text,
    cast,
    column,
    func,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.models import AuditEntry
from gateway.db.idempotency import IdempotencyKey
from gateway.db.outbox import OutboxEvent

_scim_users = table(
    "scim_users", column("membership_id", String), column("external_id", String), column("profile", JSON)
)
_scim_group_members = table("scim_group_members", column("membership_id", String), column("display", String))
_webhook_deliveries = table("webhook_deliveries", column("id", String), column("payload", Text))


@dataclass(frozen=True, slots=True)
class PersonalData:
    """What identifies the person: the address (lower case) and the names the stores may hold."""

    email: str
    pseudonym: str
    names: frozenset[str]

    @property
    def needles(self) -> list[str]:
        return [self.email, *sorted(self.names)]

    def scrub(self, value: Any) -> Any:
        """The value with every personal string replaced (recursively through lists and objects)."""
        if isinstance(value, str):
            folded = value.strip().lower()
            if folded == self.email:
                return self.pseudonym
            if folded in self.names:
                return None
            if self.email in value.lower():
                return _replace_folded(value, self.email, self.pseudonym)
            return value
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value


def personal_data(email: str, pseudonym: str, names: Iterable[str | None]) -> PersonalData:
    # Names shorter than 3 characters would match far too much to be anyone's.
    kept = frozenset(n.strip().lower() for n in names if n and len(n.strip()) >= 3)
    return PersonalData(email.strip().lower(), pseudonym, kept)


def scim_names(profile: dict[str, Any] | None) -> list[str]:
    """The names a SCIM profile holds (name.formatted/givenName/familyName…, displayName, emails)."""
    if not profile:
        return []
    found: list[str] = []
    name = profile.get("name")
    if isinstance(name, dict):
        found += [v for v in name.values() if isinstance(v, str)]
    for key in ("displayName", "nickName"):
        if isinstance(profile.get(key), str):
            found.append(profile[key])
    return found


def scim_emails(profile: dict[str, Any] | None) -> list[str]:
    emails = (profile or {}).get("emails")
    if not isinstance(emails, list):
        return []
    return [e["value"] for e in emails if isinstance(e, dict) and isinstance(e.get("value"), str)]


async def scim_profiles(session: AsyncSession, membership_ids: Sequence[str]) -> list[dict[str, Any]]:
    if not membership_ids:
        return []
    query = select(_scim_users.c.profile).where(_scim_users.c.membership_id.in_(membership_ids))
    return [p or {} for p in (await session.scalars(query)).all()]


async def erase_scim(session: AsyncSession, membership_ids: Sequence[str]) -> int:
    """The SCIM attributes of the user's memberships (emails, name, displayName, externalId) and the
    label IdPs gave them in groups. The SCIM User stays (inactive) so the IdP can still delete it."""
    if not membership_ids:
        return 0
    result = await session.execute(
        update(_scim_users)
        .where(_scim_users.c.membership_id.in_(membership_ids))
        .values(external_id=None, profile={})
    )
    await session.execute(
        update(_scim_group_members)
        .where(_scim_group_members.c.membership_id.in_(membership_ids))
        .values(display=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _mentions(text_of: ColumnElement[str], person: PersonalData) -> ColumnElement[bool]:
    folded = func.lower(text_of)
    return or_(*(folded.contains(n, autoescape=True) for n in person.needles))


def _as_text(session: AsyncSession, col: Any) -> ColumnElement[str]:
    """A JSON or binary column as searchable text (PostgreSQL's bytea → text cast gives hex)."""
    if isinstance(col.type, LargeBinary) and session.get_bind().dialect.name == "postgresql":
        return func.convert_from(col, "UTF8")
    return cast(col, Text)


async def scrub_copies(session: AsyncSession, person: PersonalData) -> dict[str, int]:
    """Rewrite every stored copy of the person's data; returns how many rows changed per store."""
    return {
        "outbox_events": await _scrub_json(session, OutboxEvent, OutboxEvent.data, OutboxEvent.seq, person),
        "audit_entries": await _scrub_json(session, AuditEntry, AuditEntry.data, AuditEntry.id, person),
        "webhook_deliveries": await _scrub_webhook_payloads(session, person),
        "idempotency_replays": await _scrub_replays(session, person),
    }


async def _scrub_json(session: AsyncSession, model: Any, col: Any, key: Any, person: PersonalData) -> int:
    query = select(key, col).where(_mentions(_as_text(session, col), person))
    changed = 0
    for row_key, data in (await session.execute(query)).all():
        scrubbed = person.scrub(data)
        if scrubbed != data:
            await session.execute(update(model).where(key == row_key).values({col.key: scrubbed}))
            changed += 1
    return changed


async def _scrub_webhook_payloads(session: AsyncSession, person: PersonalData) -> int:
    t = _webhook_deliveries
    query = select(t.c.id, t.c.payload).where(_mentions(func.lower(t.c.payload), person))
    changed = 0
    for delivery_id, payload in (await session.execute(query)).all():
        scrubbed = _scrub_text(payload, person)
        if scrubbed != payload:
            await session.execute(update(t).where(t.c.id == delivery_id).values(payload=scrubbed))
            changed += 1
    return changed


async def _scrub_replays(session: AsyncSession, person: PersonalData) -> int:
    body = IdempotencyKey.response_body
    query = select(IdempotencyKey.id, body).where(
        body.is_not(None), _mentions(_as_text(session, body), person)
    )
    changed = 0
    for row_id, stored in (await session.execute(query)).all():
        scrubbed = _scrub_text((stored or b"").decode("utf-8", "replace"), person).encode()
        if scrubbed != stored:
            await session.execute(
                update(IdempotencyKey).where(IdempotencyKey.id == row_id).values(response_body=scrubbed)
            )
            changed += 1
    return changed


def _scrub_text(text: str, person: PersonalData) -> str:
    """A stored JSON document with the person scrubbed; text that is not JSON gets the e-mail replaced."""
    try:
        document = json.loads(text)
    except ValueError:
        return _replace_folded(text, person.email, person.pseudonym)
    scrubbed = person.scrub(document)
    return text if scrubbed == document else json.dumps(scrubbed, separators=(",", ":"))


def _replace_folded(text: str, needle: str, replacement: str) -> str:
    """Replace every case-insensitive occurrence of `needle` (already lower case) in `text`."""
    out, start, folded = [], 0, text.lower()
    while (at := folded.find(needle, start)) >= 0:
        out += [text[start:at], replacement]
        start = at + len(needle)
    return "".join([*out, text[start:]])
