"""The subscription status transition table, exhaustively."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from gateway.kernel.errors import InvalidTransition
from gateway.subscriptions.domain import TERMINAL_STATUSES, TRANSITIONS, Status, transition

AT = datetime(2026, 5, 1, tzinfo=UTC)


@dataclass
class Sub:
    status: str
    activated_at: datetime | None = None
    past_due_at: datetime | None = None
    paused_at: datetime | None = None
    resumed_at: datetime | None = None
    ended_at: datetime | None = None


@pytest.mark.parametrize("source", list(Status))
@pytest.mark.parametrize("target", list(Status))
def test_every_pair_is_allowed_or_refused_per_the_table(source: Status, target: Status) -> None:
    sub = Sub(status=source.value)
    if target in TRANSITIONS[source]:
        assert transition(sub, target, AT) is source
        assert sub.status == target.value
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(sub, target, AT)
        assert info.value.status == 409 and info.value.error_code == "invalid_transition"
        assert sub.status == source.value, "a refused transition changes nothing"


def test_terminal_statuses_have_no_way_out() -> None:
    assert all(not TRANSITIONS[s] for s in TERMINAL_STATUSES)


def test_stamps() -> None:
    sub = Sub(status="trialing")
    transition(sub, Status.ACTIVE, AT)
    assert sub.activated_at == AT
    later = datetime(2026, 6, 1, tzinfo=UTC)
    transition(sub, Status.PAUSED, later)
    transition(sub, Status.ACTIVE, later)
    assert sub.paused_at == later and sub.resumed_at == later
    assert sub.activated_at == AT, "activated_at records the first activation only"
    transition(sub, Status.CANCELED, later)
    assert sub.ended_at == later
