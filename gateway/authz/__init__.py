"""Authorization policy: the Casbin model and policy rules, their versions, and the oracle built from them."""
