"""Groups and the channel that reaches each: `api.py` serves /admin/api/groups, `service.py`
does the work and the audit."""
