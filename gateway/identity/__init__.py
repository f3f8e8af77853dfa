"""Identity: API keys and principals (users, sessions and SSO come with the identity issue)."""
