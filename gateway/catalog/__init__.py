"""Catalog: products, features, plans (tiers) with versioned grants, prices, add-ons.

Public names for other domains: `CatalogService`, `PlanTerms`, `price_terms`, and the types in `domain`.
"""

from gateway.catalog.service import CatalogService, GrantInput, PlanTerms, price_terms

__all__ = ["CatalogService", "GrantInput", "PlanTerms", "price_terms"]
