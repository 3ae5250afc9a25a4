"""Cohorts (期次): `api.py` serves /admin/api/cohorts, `service.py` does the work and the audit."""
