"""Payment provider adapters (one per `ProviderKind`) and the registry that builds them from accounts."""
