"""Exactly N (billing-rules rules 26-28), as a property over random campaigns and decline sequences.

The simulation drives the very functions the service calls (gateway/dunning/domain.py: `take_due` when
an attempt is due, `after_failure` when its answer is a decline, `method_changed` for a new card) on a
clock that jumps from one due time to the next, and checks:
* with soft declines only, exactly one attempt per scheduled retry, each at `failure + offset`, then
  exhausted (an anchor revoked after 3 retries instead of 4);
* a hard-declined card is never charged again; a fallback card is charged at once, using no slot;
* nothing at all is attempted after the invoice is paid, voided or settled or the subscription ends
  (an anchor kept retrying after cancel);
* never a second attempt while one awaits its answer (the run has no due time until the answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dunning.domain import (
    HARD_DECLINES,
    Rules,
    RunStatus,
    after_failure,
    is_due,
    schedule_next,
    take_due,
)

T0 = datetime(2027, 2, 5, tzinfo=UTC)


@dataclass
class Run:
    status: str = RunStatus.ACTIVE.value
    started_at: datetime = T0
    slots_done: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = None
    immediate: bool = False
    excluded_methods: list[str] = field(default_factory=list)
    waiting_for: str | None = None
    last_decline_code: str | None = None


offsets_st = st.lists(st.integers(1, 24 * 30), min_size=1, max_size=12, unique=True).map(sorted)
outcome_st = st.sampled_from(["insufficient_funds", "generic_decline", "stolen_card", "lost_card", "ok"])


def simulate(
    rules: Rules, cards: list[str], outcomes: list[str], stop_at: datetime | None
) -> tuple[list[tuple[datetime, str]], Run, bool]:
    """(attempts as (time, card), the run, whether it ended exhausted). `outcomes[i]` answers the i-th
    charge (the failure that started the run is charge 0, on cards[0], always a soft decline)."""
    run = Run()
    answers = iter(outcomes)
    first = "insufficient_funds"
    outcome = after_failure(run, rules, decline_code=first, method=cards[0], methods=cards)
    assert not outcome.fallback
    attempts: list[tuple[datetime, str]] = []
    now = T0
    exhausted = outcome.exhausted
    for _ in range(200):
        if exhausted or run.status != RunStatus.ACTIVE.value:
            break
        due_at = now if run.immediate else run.next_attempt_at
        if due_at is None:
            break  # waiting for a new card: nothing more happens by itself
        if stop_at is not None and due_at >= stop_at:
            run.status = RunStatus.STOPPED.value  # paid, voided, settled or canceled first
            break
        now = due_at
        if run.immediate:
            run.next_attempt_at = now
        assert is_due(run, now)
        take = take_due(run, rules, cards)
        if take.exhausted:
            exhausted = True
            break
        if take.method is None:
            continue
        # While the answer is awaited nothing else is due: no second attempt at once.
        assert run.next_attempt_at is None and not is_due(run, now + timedelta(days=365))
        attempts.append((now, take.method))
        decline = next(answers, "insufficient_funds")
        if decline == "ok":
            run.status = RunStatus.RECOVERED.value
            break
        result = after_failure(run, rules, decline_code=decline, method=take.method, methods=cards)
        if result.fallback:
            run.next_attempt_at = now
        exhausted = result.exhausted
    return attempts, run, exhausted


@settings(max_examples=300, deadline=None)
@given(offsets=offsets_st, cards=st.integers(1, 3))
def test_soft_declines_get_exactly_one_attempt_per_scheduled_retry_then_the_final_action(
    offsets: list[int], cards: int
) -> None:
    rules = Rules(offsets_hours=tuple(offsets), emails={})
    names = [f"pm_{i}" for i in range(cards)]
    attempts, run, exhausted = simulate(rules, names, ["insufficient_funds"] * 100, None)
    assert [t for t, _ in attempts] == [T0 + timedelta(hours=h) for h in offsets]
    assert all(card == "pm_0" for _, card in attempts)  # a soft decline keeps the same card
    assert exhausted and run.slots_done == len(offsets) == run.attempts


@settings(max_examples=300, deadline=None)
@given(
    offsets=offsets_st,
    cards=st.integers(1, 3),
    outcomes=st.lists(outcome_st, max_size=30),
    stop_after_hours=st.none() | st.integers(0, 24 * 31),
)
def test_no_attempt_after_a_stop_no_hard_declined_card_twice_and_never_more_than_the_schedule(
    offsets: list[int], cards: int, outcomes: list[str], stop_after_hours: int | None
) -> None:
    rules = Rules(offsets_hours=tuple(offsets), emails={})
    names = [f"pm_{i}" for i in range(cards)]
    stop_at = None if stop_after_hours is None else T0 + timedelta(hours=stop_after_hours)
    attempts, run, _ = simulate(rules, names, outcomes, stop_at)
    if stop_at is not None:
        assert all(t < stop_at for t, _ in attempts)
    # Scheduled attempts never outnumber the schedule; fallbacks add at most one per other card.
    assert run.slots_done <= len(offsets)
    assert len(attempts) <= len(offsets) + (cards - 1)
    # A card that was hard-declined is never charged again.
    answers = iter(outcomes)
    declined_hard: set[str] = set()
    for _, card in attempts:
        assert card not in declined_hard
        answer = next(answers, "insufficient_funds")
        if answer in HARD_DECLINES:
            declined_hard.add(card)
    # Attempts are in time order and each scheduled one is exactly on its slot.
    times = [t for t, _ in attempts]
    assert times == sorted(times)
    slot_times = {T0 + timedelta(hours=h) for h in offsets}
    assert all(
        t in slot_times or t in times[:i] or (i > 0 and t == times[i - 1]) for i, t in enumerate(times)
    )


def test_schedule_next_after_the_last_slot_leaves_nothing_due() -> None:
    rules = Rules(offsets_hours=(24, 48), emails={})
    run = Run(slots_done=2)
    schedule_next(run, rules)
    assert run.next_attempt_at is None and not is_due(run, T0 + timedelta(days=400))
