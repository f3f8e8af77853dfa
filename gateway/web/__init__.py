"""HTTP plumbing shared by every domain's `http.py`: problem+json, sessions, auth guard, pagination.

Imports only the framework, `kernel`, `db` and `identity`; never a business domain.
"""
