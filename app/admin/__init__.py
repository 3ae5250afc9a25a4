"""Operator-facing services behind `/admin/api`: cohorts, groups, members, outbox, tokens, audit.

Service functions are keyword-only, take `*, session`, flush but never commit: the admin
request's unit of work (`app.api.admin.route_class`) commits once the whole request succeeded.
"""
