"""Subscriptions: lifecycle state machine, periods and anchors, plan changes, trials, test clocks.

Public: `SubscriptionService`, `TestClockService`, `AddonInput`, and the types in `domain`.
"""

from gateway.subscriptions.clocks import TestClockService
from gateway.subscriptions.service import AddonInput, SubscriptionService

__all__ = ["AddonInput", "SubscriptionService", "TestClockService"]
