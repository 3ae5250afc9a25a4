"""Operator tokens: `api.py` serves /admin/api/tokens, `service.py` makes, checks and revokes
them, with the audit."""
