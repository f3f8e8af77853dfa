"""Payment-provider adapters (each implements `gateway.payments.port.PaymentProvider`) and the registry
that builds them from provider accounts."""
