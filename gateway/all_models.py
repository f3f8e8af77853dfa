"""Composition: imports every model module so `Base.metadata` is complete (alembic, tests, create_all)."""

from gateway.admin import models as admin_models
from gateway.audit import models as audit_models
from gateway.authz import models as authz_models
from gateway.billing import metered_models as billing_metered_models
from gateway.billing import models as billing_models
from gateway.catalog import models as catalog_models
from gateway.customers import models as customer_models
from gateway.db import idempotency, outbox
from gateway.db.base import Base
from gateway.dunning import models as dunning_models
from gateway.identity import invites as invite_models
from gateway.identity import models as identity_models
from gateway.identity import revocation as revocation_models
from gateway.metering import allowance_models as metering_allowance_models
from gateway.metering import models as metering_models
from gateway.metrics import models as metrics_models
from gateway.notifications import email_models as email_models
from gateway.notifications import models as notification_models
from gateway.notifications import relay as relay_models
from gateway.payments import models as payment_models
from gateway.portal import config_models as portal_config_models
from gateway.portal import experiment_models as portal_experiment_models
from gateway.portal import login_models as portal_login_models
from gateway.portal import session_models as portal_session_models
from gateway.provisioning import models as provisioning_models
from gateway.scim import models as scim_models
from gateway.sso import models as sso_models
from gateway.subscriptions import models as subscription_models
from gateway.taxes import models as tax_models

__all__ = [
    "Base",
    "admin_models",
    "audit_models",
    "authz_models",
    "billing_metered_models",
    "billing_models",
    "catalog_models",
    "customer_models",
    "dunning_models",
    "email_models",
    "idempotency",
    "identity_models",
    "invite_models",
    "metering_allowance_models",
    "metering_models",
    "metrics_models",
    "notification_models",
    "outbox",
    "payment_models",
    "portal_config_models",
    "portal_experiment_models",
    "portal_login_models",
    "portal_session_models",
    "provisioning_models",
    "relay_models",
    "revocation_models",
    "scim_models",
    "sso_models",
    "subscription_models",
    "tax_models",
]
