"""Price experiments, the pure rules: variants and their weights, targeting, the status table, and the
deterministic assignment of a visitor to a variant. No I/O (ARCHITECTURE.md: domain files).

Assignment is a hash, not a coin toss: `sha256(experiment id + ":" + visitor key)` read as a number
picks a bucket in 0..9999, and the variants own consecutive ranges of buckets in proportion to their
weights. So a returning visitor lands in the same variant on any replica without a lookup, and the
assignments table only records who was seen (for the results)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.kernel.errors import InvalidTransition, ValidationFailed

BUCKETS = 10_000
MAX_VARIANTS = 10
MAX_TRIAL_DAYS = 730
VARIANT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")
CURRENCY = re.compile(r"^[A-Z]{3}$")


class ExperimentStatus(StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"
    PROMOTED = "promoted"


# A stopped experiment may run again (a pause); a promoted one is finished for good.
TRANSITIONS: Mapping[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RUNNING}),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.STOPPED}),
    ExperimentStatus.STOPPED: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.PROMOTED}),
    ExperimentStatus.PROMOTED: frozenset(),
}


def transition(current: str, target: ExperimentStatus) -> ExperimentStatus:
    """The one way an experiment's status changes; anything outside the table is a 409."""
    if target not in TRANSITIONS[ExperimentStatus(current)]:
        raise InvalidTransition(f"an experiment cannot go from {current} to {target}")
    return target


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm: `weight` (its share of traffic, relative to the others), `prices` (a catalog price the
    pricing page and checkout show → the price shown instead, both catalog price ids) and `trial_days`
    (None: the plan's own trial)."""

    key: str
    weight: int
    prices: Mapping[str, str] = field(default_factory=dict)
    trial_days: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "weight": self.weight,
            "prices": dict(self.prices),
            "trial_days": self.trial_days,
        }


@dataclass(frozen=True, slots=True)
class Targeting:
    """Who takes part. Empty lists mean everyone; `new_visitors_only` keeps returning visitors (those who
    already carried a visitor key before the experiment saw them) on the catalog's prices."""

    countries: tuple[str, ...] = ()
    currencies: tuple[str, ...] = ()
    new_visitors_only: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "countries": list(self.countries),
            "currencies": list(self.currencies),
            "new_visitors_only": self.new_visitors_only,
        }

    def admits(self, *, country: str | None, currency: str | None, new_visitor: bool) -> bool:
        if self.countries and (country or "").upper() not in self.countries:
            return False
        if self.currencies and (currency or "").upper() not in self.currencies:
            return False
        return new_visitor or not self.new_visitors_only


def parse_variants(raw: Sequence[Mapping[str, Any]]) -> list[Variant]:
    """Checked variants: 2..10, unique keys, positive weights; the first is the control."""
    if not 2 <= len(raw) <= MAX_VARIANTS:
        raise ValidationFailed(f"an experiment has 2 to {MAX_VARIANTS} variants", field="variants")
    variants: list[Variant] = []
    for item in raw:
        key = str(item.get("key", ""))
        if not VARIANT_KEY.match(key):
            raise ValidationFailed(f"variant key {key!r} must be 1-40 of a-z 0-9 _ -", field="variants")
        if any(v.key == key for v in variants):
            raise ValidationFailed(f"variant key {key!r} is used twice", field="variants")
        weight = item.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or not 1 <= weight <= BUCKETS:
            raise ValidationFailed(f"variant {key!r} needs a weight from 1 to {BUCKETS}", field="variants")
        trial = item.get("trial_days")
        if trial is not None and (not isinstance(trial, int) or not 0 <= trial <= MAX_TRIAL_DAYS):
            raise ValidationFailed(
                f"variant {key!r}: trial_days from 0 to {MAX_TRIAL_DAYS}", field="variants"
            )
        prices = dict(item.get("prices") or {})
        variants.append(Variant(key, weight, prices, trial))
    return variants


def parse_targeting(raw: Mapping[str, Any] | None) -> Targeting:
    raw = raw or {}
    countries = tuple(sorted({str(c).upper() for c in raw.get("countries") or ()}))
    currencies = tuple(sorted({str(c).upper() for c in raw.get("currencies") or ()}))
    if any(not COUNTRY.match(c) for c in countries):
        raise ValidationFailed("countries are ISO 3166 alpha-2 codes such as NL", field="targeting")
    if any(not CURRENCY.match(c) for c in currencies):
        raise ValidationFailed("currencies are ISO 4217 codes such as EUR", field="targeting")
    return Targeting(countries, currencies, bool(raw.get("new_visitors_only", False)))


def bucket(experiment_id: str, visitor_key: str) -> int:
    """The visitor's bucket (0..9999) in this experiment: the same key always gives the same bucket, and
    different experiments split the same visitors independently."""
    digest = hashlib.sha256(f"{experiment_id}:{visitor_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(experiment_id: str, visitor_key: str, variants: Sequence[Variant]) -> Variant:
    """The variant a visitor sees: the variants own consecutive bucket ranges sized by their weights
    (integer arithmetic, so the split is exact to one bucket in 10,000)."""
    total = sum(v.weight for v in variants)
    point = bucket(experiment_id, visitor_key) * total  # compare in units of BUCKETS * total
    edge = 0
    for variant in variants:
        edge += variant.weight * BUCKETS
        if point < edge:
            return variant
    return variants[-1]  # pragma: no cover - point < total * BUCKETS always
