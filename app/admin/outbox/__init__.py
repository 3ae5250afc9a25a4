"""The outbox as operators see it: `api.py` serves /admin/api/outbox, `service.py` does the work
(retry, cancel) and the audit."""
