"""SSO: per-tenant and platform OIDC connections, the browser sign-in flow and just-in-time provisioning.

Sits on top of the domains (customers, entitlements, identity); nothing imports it but the app."""
