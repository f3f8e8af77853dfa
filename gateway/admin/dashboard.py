"""The KPI dashboard's numbers: a calendar month at a time, each month being exactly the window
`GET /v1/metrics?start=<1st>&end=<next 1st>` answers (the month in progress ends now), built by the same
function (`gateway.metrics.report.window_report`), plus the cohorts of `GET /v1/metrics/cohorts`.

Closed months come from their roll-ups (gateway/metrics/rollups.py: computed once, kept while their
inputs are unchanged); the others' MRR ends from one pass over the history (gateway/metrics/history.py)
and the rest from the same queries as the API. The page draws its charts from `series()` (as JSON) and each
chart's CSV is the same rows, so the table, the charts, the CSV and the API can never disagree."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import format_timestamp
from gateway.kernel.periods import add_months
from gateway.metrics.history import MrrHistory
from gateway.metrics.report import churn_of, live_parts, mrr_report
from gateway.metrics.rollups import MonthRollups, rolled_up
from gateway.metrics.service import MetricsService, Scope, cohort_rows, month_ends

MONTH_CHOICES = (3, 6, 12, 24)


@dataclass(frozen=True, slots=True)
class Month:
    start: datetime
    end: datetime  # the next 1st, or now for the month in progress
    report: dict[str, Any]  # what GET /v1/metrics answers for [start, end)

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m")


def month_windows(now: datetime, months: int) -> list[tuple[datetime, datetime]]:
    """The last `months` calendar months up to `now`, oldest first, half-open; the last one ends now."""
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = [add_months(this_month, -i) for i in reversed(range(months))]
    return [(start, min(add_months(start, 1), now)) for start in starts if start < now]


@dataclass(frozen=True, slots=True)
class Board:
    months: list[Month]
    history: MrrHistory  # read once: the cohorts reuse it


async def board(session: AsyncSession, scope: Scope, now: datetime, months: int) -> Board:
    """Each month's report. Closed months of the unsegmented scope come from their roll-ups while these
    are right (gateway/metrics/rollups.py); the others from one pass over the MRR history
    (gateway/metrics/history.py) and the trials from one query, instead of queries per month, and the
    closed ones among them are kept. Payments and dunning are read live, for all the months at once
    (`report.live_parts`: what `GET /v1/metrics` reads for one window)."""
    windows = month_windows(now, months)
    store = MonthRollups(session, scope) if rolled_up(scope) else None
    closed = [(start, end) for start, end in windows if end == add_months(start, 1)]
    # The fingerprints are read before the history: see MonthRollups.keep.
    kept, prints = await store.kept(closed) if store is not None else ({}, {})
    history = await MrrHistory.load(session, scope)
    if not windows:
        return Board([], history)
    todo = [(start, end) for start, end in windows if start not in kept]
    snaps = history.snapshots([bound for window in todo for bound in window])
    # The months' trials in one query, counted per month as `MetricsService.trials` counts one.
    endings = await MetricsService(session).trial_endings(scope, todo[0][0], todo[-1][1]) if todo else []
    reports: list[dict[str, Any]] = []
    for start, end in windows:
        if start in kept:
            reports.append(dict(kept[start]))
            continue
        ended = [converted for at, converted in endings if start <= at < end]
        report = await mrr_report(
            session, scope, start, end, ends=(snaps[start], snaps[end]), trials=(sum(ended), len(ended))
        )
        if store is not None and start in prints:
            await store.keep(start, prints[start], report, now)
        reports.append(report)
    live = await live_parts(session, scope, windows, [churn_of(report) for report in reports])
    rows = [
        Month(start, end, {**report, **parts})
        for (start, end), report, parts in zip(windows, reports, live, strict=True)
    ]
    return Board(rows, history)


async def monthly(session: AsyncSession, scope: Scope, now: datetime, months: int) -> list[Month]:
    """Each month's report (`board` without the cohorts)."""
    return (await board(session, scope, now, months)).months


async def cohorts(
    session: AsyncSession, scope: Scope, now: datetime, months: int, history: MrrHistory | None = None
) -> list[dict[str, Any]]:
    """`GET /v1/metrics/cohorts?months=<months>` for the same scope and time, from the same one pass."""
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    bounds, ends = month_ends(add_months(this_month, 1 - months), months, now)
    history = history or await MrrHistory.load(session, scope)
    snaps = history.snapshots(ends)
    return cohort_rows(bounds, [snaps[end].mrr for end in ends], history.first_paid(), months)


def _rate(value: str | None) -> float | None:
    """Rates travel as decimal strings in the API; charts want numbers (null stays a gap)."""
    return None if value is None else float(value)


# Each chart: its series, each a name and how to read it from a month's report. The CSV of a chart has
# these columns after `month`, with the API's own values (minor units, rates as decimal strings).
CHARTS: dict[str, list[tuple[str, Callable[[dict[str, Any]], Any]]]] = {
    "mrr": [("mrr", lambda r: r["mrr"]["end"]), ("arr", lambda r: r["arr"])],
    "movements": [
        (kind, lambda r, kind=kind: r["movements"][kind]["amount"])
        for kind in ("new", "expansion", "contraction", "churn", "reactivation")
    ]
    + [("net_new", lambda r: r["movements"]["net_new"])],
    "churn": [
        ("customer_churn", lambda r: r["churn"]["customer"]),
        ("gross_revenue_churn", lambda r: r["churn"]["gross_revenue"]),
        ("net_revenue_churn", lambda r: r["churn"]["net_revenue"]),
    ],
    "retention": [("nrr", lambda r: r["retention"]["net"]), ("grr", lambda r: r["retention"]["gross"])],
    "arpa": [("arpa", lambda r: r["arpa"]), ("ltv", lambda r: r["ltv"])],
    "trials": [
        ("trials_ended", lambda r: r["trials"]["ended"]),
        ("trials_converted", lambda r: r["trials"]["converted"]),
        ("trial_conversion", lambda r: r["trials"]["conversion"]),
    ],
    "customers": [
        ("customers", lambda r: r["customers"]["end"]),
        ("churned_customers", lambda r: r["customers"]["churned"]),
    ],
    "payments": [
        ("first_attempt_success_rate", lambda r: r["payments"]["first_attempt_success_rate"]),
        ("final_success_rate", lambda r: r["payments"]["final_success_rate"]),
        ("dunning_recovery_rate", lambda r: r["dunning"]["recovery_rate"]),
    ],
    "recovery": [
        ("recovered_revenue", lambda r: r["dunning"]["recovered_revenue"]),
        ("involuntary_churn", lambda r: r["dunning"]["involuntary_churn"]["mrr"]),
        ("voluntary_churn", lambda r: r["dunning"]["voluntary_churn"]["mrr"]),
    ],
}
RATE_SERIES = {
    "customer_churn",
    "gross_revenue_churn",
    "net_revenue_churn",
    "nrr",
    "grr",
    "trial_conversion",
    "first_attempt_success_rate",
    "final_success_rate",
    "dunning_recovery_rate",
}


def series(months: list[Month]) -> dict[str, Any]:
    """The charts' data for uPlot: x = each month's start (Unix seconds), then one array per series."""
    charts: dict[str, Any] = {}
    for chart, columns in CHARTS.items():
        charts[chart] = {
            "series": [name for name, _ in columns],
            "data": [
                [int(m.start.timestamp()) for m in months],
                *[
                    [_rate(read(m.report)) if name in RATE_SERIES else read(m.report) for m in months]
                    for name, read in columns
                ],
            ],
        }
    return {"months": [m.label for m in months], "charts": charts}


def chart_csv(chart: str, months: list[Month]) -> str:
    """A chart's rows as CSV: `month` (its first instant, the API's timestamp) and the chart's series."""
    columns = CHARTS[chart]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["month", *[name for name, _ in columns]])
    for m in months:
        writer.writerow(
            [format_timestamp(m.start), *["" if (v := read(m.report)) is None else v for _, read in columns]]
        )
    return out.getvalue()


def cohorts_csv(rows: list[dict[str, Any]]) -> str:
    """One line per cohort and month since: customers still paying and their MRR."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["cohort", "cohort_customers", "month", "customers", "mrr"])
    for row in rows:
        for period in row["periods"]:
            writer.writerow(
                [row["cohort"], row["customers"], period["month"], period["customers"], period["mrr"]]
            )
    return out.getvalue()


def retention_share(row: dict[str, Any], period: dict[str, Any]) -> int:
    """A heatmap cell's shade, 0-10: the share of the cohort still paying, in tenths (0 for an empty one)."""
    if not row["customers"]:
        return 0
    return round(10 * int(period["customers"]) / int(row["customers"]))


def churn_by_reason(months: list[Month]) -> list[dict[str, Any]]:
    """The months' churned customers and the MRR they took, by the reason they gave when canceling
    (each month's `churn.by_reason` of GET /v1/metrics, added up), largest loss first."""
    totals: dict[str, dict[str, int]] = {}
    for month in months:
        for reason, counted in month.report["churn"]["by_reason"].items():
            row = totals.setdefault(reason, {"customers": 0, "mrr": 0})
            row["customers"] += int(counted["customers"])
            row["mrr"] += int(counted["mrr"])
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1]["mrr"], -kv[1]["customers"], kv[0]))
    return [{"reason": reason, **counted} for reason, counted in ranked if counted["customers"]]
