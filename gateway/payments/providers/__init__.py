"""Payment-provider adapters: each implements `gateway.payments.port.PaymentProvider`."""
