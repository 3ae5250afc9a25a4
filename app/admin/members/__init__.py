"""Members, their cohort, tags and personal link: `api.py` serves /admin/api/members,
`service.py` does the work and the audit."""
