"""Customers: tenant organisations, users and memberships. Public: `CustomerService`."""

from gateway.customers.service import CustomerService

__all__ = ["CustomerService"]
