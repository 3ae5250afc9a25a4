"""The platform's admin resources behind `/admin/api`: cohorts, groups, members, outbox, tokens.

One package per resource, each the same shape: `api.py` (routes: parse → service → response)
and `service.py` (the work and its audit entry, through `audit.AuditTrail`). Service functions
are keyword-only, take `*, session`, flush but never commit: the admin request's unit of work
(`app.api.admin.route_class`) commits once the whole request succeeded. Shared: `audit`,
`common` (pages, lookups, snapshots), `errors`, `models`, `h5_tokens`; `api` composes the
resources' routers.
"""
