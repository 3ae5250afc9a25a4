"""`/admin/api`: the plumbing every operators' JSON resource shares (ARCHITECTURE §4).

Every route needs `Authorization: Bearer <ADMIN_TOKEN or an operator token>`. Resource
modules — the platform's (`app.admin.*.api`) and the domain packages' — declare their routes
on `deps.admin_resource_router(...)` (an `AdminRoute` router, `route_class`: one
authenticated, committed-once unit of work per request; the token check is `auth`). Here
too: the error bodies (`errors`), field types (`fields`), shared models (`schemas`), the
wrong-token throttle and the audit log's listing (`audit`).
"""
