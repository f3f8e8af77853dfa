"""Security building blocks shared by the domains: the secret box (secrets at rest, AES-GCM with rotatable
key ids) and the outbound-request guard (SSRF). Below every domain package, above the kernel."""
