"""A billing-run worker in its own process, for the crash test (tests/billing/test_billing_run.py).

    python -m tests.billing._billrun_worker <database-url> <at-iso> <batch-size>

Runs `billing_run` over every subscription due by `at` and prints the result. The test kills it with
SIGKILL mid-run: whatever batch was in flight must roll back with the connection, numbers and all.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from gateway.billing.run import billing_run
from gateway.billing.wiring import BillingConfig
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock


async def main(url: str, at: datetime, batch_size: int) -> None:
    db = Database(url, pooled=False)
    try:
        result = await billing_run(db, FrozenClock(at), BillingConfig(), batch_size=batch_size)
    finally:
        await db.dispose()
    print(f"subscriptions={result.subscriptions} steps={result.steps} batches={result.batches}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], datetime.fromisoformat(sys.argv[2]), int(sys.argv[3])))
