"""Catalog: products, features, plans (tiers) with versioned grants, prices, add-ons, coupons and
promotion codes.

Public names for other domains: `CatalogService`, `PlanTerms`, `price_terms`, `CouponService`,
`Redemption`, `RedemptionRefused` (the 409 family of refused redemptions), `coupon_terms` (a stored
coupon's immutable terms, for later invoices), `display_name` (a plan's or product's name in a
customer's language, from its `name_translations`), and the types in `domain`.
"""

from gateway.catalog.coupons import CouponService, coupon_terms
from gateway.catalog.domain import CouponDuration, CouponTerms, Redemption
from gateway.catalog.errors import RedemptionRefused
from gateway.catalog.service import CatalogService, GrantInput, PlanTerms, price_terms
from gateway.catalog.translations import display_name

__all__ = [
    "CatalogService",
    "CouponDuration",
    "CouponService",
    "CouponTerms",
    "GrantInput",
    "PlanTerms",
    "Redemption",
    "RedemptionRefused",
    "coupon_terms",
    "display_name",
    "price_terms",
]
