"""Catalog: products, features, plans (tiers) with versioned grants, prices, add-ons, coupons and
promotion codes.

Public names for other domains: `CatalogService`, `PlanTerms`, `price_terms`, `CouponService`,
`Redemption`, `RedemptionRefused` (the 409 family of refused redemptions), and the types in `domain`.
"""

from gateway.catalog.coupons import CouponService
from gateway.catalog.domain import CouponDuration, Redemption
from gateway.catalog.errors import RedemptionRefused
from gateway.catalog.service import CatalogService, GrantInput, PlanTerms, price_terms

__all__ = [
    "CatalogService",
    "CouponDuration",
    "CouponService",
    "GrantInput",
    "PlanTerms",
    "Redemption",
    "RedemptionRefused",
    "price_terms",
]
