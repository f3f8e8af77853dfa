"""SaaS metrics: MRR, its movements, churn, retention, ARPA, LTV and trial conversion (rules 32-37)."""
