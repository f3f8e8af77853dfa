"""Dunning's rules without I/O: what a campaign may say, when each retry is due, and what a failed
attempt leads to. The service (`service.py`) reads and writes the rows; every decision is made here, so
the property test (tests/dunning/test_schedule_property.py) checks the same code the service runs.

The timeline of one invoice:
* attempt 0 is the failure that started dunning (at `started_at`);
* scheduled retries are slots 1..N at `started_at + offsets[k-1]`; each slot is taken once: charged on
  the first usable method not excluded, or skipped when there is none (the customer was asked for one);
* a hard decline excludes that method for the rest of the run (rule 27) and the next usable method is
  charged at once (a fallback: no slot is taken); `expired_card` excludes it until the account updater
  or the customer updates it; a method added or updated triggers one immediate retry;
* when slot N has been taken and the invoice is still unpaid, the run is exhausted: the final action.
Nothing is attempted once the invoice is paid, voided or settled, or the subscription ended (rule 28).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from gateway.kernel.errors import ValidationFailed


class FinalAction(StrEnum):
    CANCEL = "cancel"  # the subscription is canceled (rule 29's default)
    UNPAID = "unpaid"  # kept, no access, until paid
    PAUSE = "pause"
    KEEP_PAST_DUE = "keep_past_due"  # nothing changes; the invoice stays open


class Access(StrEnum):
    KEEP = "keep"
    READ_ONLY = "read_only"  # members act with the campaign's read-only role (a role of the policy)
    REVOKE = "revoke"


class RunStatus(StrEnum):
    ACTIVE = "active"
    RECOVERED = "recovered"
    EXHAUSTED = "exhausted"
    STOPPED = "stopped"


# The templates the e-mail package renders for dunning steps (gateway/notifications DUNNING_TEMPLATES).
EMAIL_TEMPLATES = frozenset(
    {"payment_failed", "payment_action_required", "dunning_final_notice", "subscription_past_due"}
)
MAX_RETRIES = 30
MAX_WINDOW_HOURS = 60 * 24
# Stripe's recommendation, "up to 8 tries within 2 weeks": days 1, 3, 5, 7, 9, 11, 13 and 14.
DEFAULT_OFFSETS_HOURS = (24, 72, 120, 168, 216, 264, 312, 336)

HARD_DECLINES = frozenset({"lost_card", "stolen_card", "do_not_honor", "fraudulent", "invalid_account"})
WAITS_FOR_UPDATER = frozenset({"expired_card"})


def default_emails(retries: int) -> dict[int, str]:
    """A "payment failed" mail after every failed attempt (the customer can act on each one), and the
    final notice after the last-but-one, before the last retry and the final action."""
    emails = {attempt: "payment_failed" for attempt in range(retries)}
    emails[retries - 1] = "dunning_final_notice" if retries > 1 else "payment_failed"
    return emails


@dataclass(frozen=True, slots=True)
class Rules:
    """A campaign as a run applies it (copied into the run when it starts)."""

    offsets_hours: tuple[int, ...] = DEFAULT_OFFSETS_HOURS
    emails: Mapping[int, str] = field(default_factory=lambda: default_emails(len(DEFAULT_OFFSETS_HOURS)))
    final_action: FinalAction = FinalAction.CANCEL
    access: Access = Access.KEEP
    read_only_role: str | None = None
    revoked_features: tuple[str, ...] = ()

    @property
    def retries(self) -> int:
        return len(self.offsets_hours)

    def slot_at(self, started_at: datetime, slot: int) -> datetime:
        """When scheduled retry `slot` (1-based) is due."""
        return started_at + timedelta(hours=self.offsets_hours[slot - 1])

    def to_json(self) -> dict[str, Any]:
        return {
            "offsets_hours": list(self.offsets_hours),
            "emails": {str(k): v for k, v in sorted(self.emails.items())},
            "final_action": self.final_action.value,
            "access": self.access.value,
            "read_only_role": self.read_only_role,
            "revoked_features": list(self.revoked_features),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rules:
        return cls(
            offsets_hours=tuple(int(h) for h in data["offsets_hours"]),
            emails={int(k): str(v) for k, v in (data.get("emails") or {}).items()},
            final_action=FinalAction(data["final_action"]),
            access=Access(data["access"]),
            read_only_role=data.get("read_only_role"),
            revoked_features=tuple(data.get("revoked_features") or ()),
        )

    def subscription_access(self) -> str | None:
        """What the subscription row carries while past due (`subscriptions.dunning_access`)."""
        if self.access is Access.REVOKE:
            return "revoke"
        if self.access is Access.READ_ONLY:
            return f"read_only:{self.read_only_role}"
        return None


def validate_rules(
    offsets_hours: Sequence[int],
    emails: Mapping[str, str],
    final_action: str,
    access: str,
    read_only_role: str | None,
    revoked_features: Iterable[str],
) -> Rules:
    """A campaign's fields as rules, or a 422 naming the field that is wrong (nothing is stored)."""
    offsets = list(offsets_hours)
    if not 1 <= len(offsets) <= MAX_RETRIES:
        raise ValidationFailed(f"between 1 and {MAX_RETRIES} retries", field="retry_offsets_hours")
    if any(h <= 0 for h in offsets) or any(b <= a for a, b in itertools.pairwise(offsets)):
        raise ValidationFailed(
            "retry offsets are hours after the failure, positive and strictly increasing",
            field="retry_offsets_hours",
        )
    if offsets[-1] > MAX_WINDOW_HOURS:
        raise ValidationFailed(
            f"the last retry is at most {MAX_WINDOW_HOURS} hours out", field="retry_offsets_hours"
        )
    steps: dict[int, str] = {}
    for key, template in emails.items():
        if not key.isdigit() or int(key) >= len(offsets):
            raise ValidationFailed(
                f"e-mail steps are attempt numbers 0..{len(offsets) - 1} (0 = the first failure)",
                field="emails",
            )
        if template not in EMAIL_TEMPLATES:
            raise ValidationFailed(f"unknown e-mail template {template!r}", field="emails")
        steps[int(key)] = template
    try:
        action, mode = FinalAction(final_action), Access(access)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), field="final_action" if "FinalAction" in str(exc) else "access"
        ) from None
    if mode is Access.READ_ONLY and not read_only_role:
        raise ValidationFailed("read-only access needs the policy's read-only role", field="read_only_role")
    return Rules(
        tuple(offsets),
        steps,
        action,
        mode,
        read_only_role if mode is Access.READ_ONLY else None,
        tuple(sorted(set(revoked_features))),
    )


# ---- the timeline ----------------------------------------------------------------------------------


class RunState(Protocol):
    """What the rules read and write of a run (the ORM row, or a test's plain object)."""

    status: str
    started_at: datetime
    slots_done: int
    attempts: int
    next_attempt_at: datetime | None
    immediate: bool
    excluded_methods: list[str]
    waiting_for: str | None
    last_decline_code: str | None


def schedule_next(run: RunState, rules: Rules) -> None:
    """The next scheduled slot's time, or none left."""
    run.immediate = False
    run.next_attempt_at = (
        rules.slot_at(run.started_at, run.slots_done + 1) if run.slots_done < rules.retries else None
    )


def is_due(run: RunState, now: datetime) -> bool:
    return run.status == RunStatus.ACTIVE and run.next_attempt_at is not None and run.next_attempt_at <= now


def usable_methods(run: RunState, methods: Sequence[str]) -> list[str]:
    """The customer's methods in priority order, without those this run excluded."""
    return [m for m in methods if m not in run.excluded_methods]


@dataclass(frozen=True, slots=True)
class Take:
    """What taking a due attempt does: charge `method` (None: skipped, no usable method), whether it
    used a scheduled slot, and whether the run is exhausted by it (a skipped last slot)."""

    method: str | None
    slot: bool
    exhausted: bool


def take_due(run: RunState, rules: Rules, methods: Sequence[str]) -> Take:
    """Claim the attempt that is due: a scheduled slot, or the immediate retry. Call only when `is_due`."""
    slot = not run.immediate
    usable = usable_methods(run, methods)
    if slot:
        run.slots_done += 1
    method = usable[0] if usable else None
    if method is not None:
        run.attempts += 1
        run.waiting_for = None
        run.next_attempt_at = None  # set again when the attempt's answer arrives
        run.immediate = False
        return Take(method, slot, False)
    run.waiting_for = run.waiting_for or "new_payment_method"
    exhausted = run.slots_done >= rules.retries
    if not exhausted:
        schedule_next(run, rules)
    else:
        run.next_attempt_at = None
    return Take(None, slot, exhausted)


@dataclass(frozen=True, slots=True)
class AfterFailure:
    """What a failed attempt leads to: the e-mail of this attempt number (if any), an immediate fallback,
    or the run exhausted (the final action)."""

    email: str | None
    fallback: bool
    exhausted: bool


def after_failure(
    run: RunState, rules: Rules, *, decline_code: str | None, method: str | None, methods: Sequence[str]
) -> AfterFailure:
    """A dunning attempt (or the failure that started the run: attempts == 0) failed with `decline_code`
    on `method`. Excludes the method when the decline says so, then: a fallback method at once after a
    hard decline, else the next slot, else exhausted."""
    run.last_decline_code = decline_code
    if (
        method is not None
        and decline_code in HARD_DECLINES | WAITS_FOR_UPDATER
        and method not in run.excluded_methods
    ):
        run.excluded_methods = [*run.excluded_methods, method]
    email = rules.emails.get(run.attempts)
    usable = usable_methods(run, methods)
    if decline_code in HARD_DECLINES and usable:
        run.immediate = True
        run.next_attempt_at = None  # the caller sets it to now
        return AfterFailure(email, True, False)
    if not usable:
        run.waiting_for = "account_updater" if decline_code in WAITS_FOR_UPDATER else "new_payment_method"
    if run.slots_done >= rules.retries:
        run.next_attempt_at = None
        return AfterFailure(email, False, True)
    schedule_next(run, rules)
    return AfterFailure(email, False, False)


def method_changed(run: RunState, method: str, *, updated: bool) -> bool:
    """A method was added or updated (a new expiry from the account updater, new details): it may be
    tried again, and one retry is due at once. Returns whether the run should retry now."""
    if updated and method in run.excluded_methods:
        run.excluded_methods = [m for m in run.excluded_methods if m != method]
    if run.status != RunStatus.ACTIVE or method in run.excluded_methods:
        return False
    run.immediate = True
    run.waiting_for = None
    return True
