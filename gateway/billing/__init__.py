"""Billing math: rating prices, proration, coupons and credit application.

Pure functions over `gateway.kernel.money.Money` and catalog price terms: no I/O, no clock. Exact
intermediates are `Decimal` minor units; every line is rounded once, half-up, by `round_minor`
(billing-rules.md rule 20), and totals are sums of rounded lines.
"""
