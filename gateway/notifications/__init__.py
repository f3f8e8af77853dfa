"""Notifications: the outbox relay and outgoing webhooks (e-mail later).

Public: `Relay`, `Consumer`, `WebhookSender`, `DeliveryPolicy`, `enqueue_handler`, `wants_event`.
"""

from gateway.notifications.relay import Consumer, Relay
from gateway.notifications.service import DeliveryPolicy, WebhookSender, enqueue_handler, wants_event

__all__ = ["Consumer", "DeliveryPolicy", "Relay", "WebhookSender", "enqueue_handler", "wants_event"]
