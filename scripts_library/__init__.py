"""The content domain: scripts (话术), their versions, rendering and the content pack.

models      Script, ScriptVersion (tables `scripts`, `script_versions`), ScriptContent
variables   RenderContext: every template variable, its Chinese description and sample
render      render(script, context) -> OutMessage, in a bounded Jinja2 sandbox
sandbox     that sandbox (guards: its checks); bounds: what a render may build and spend
trial       trial renders (save, preview) in worker processes limited in memory and time
validate    validate(content) -> raises ScriptValidationError with per-field problems
service     create/update/get/list, versions, diff, rollback, preview
loader      import_pack / export_pack for content/*.yaml; cli: `campbot scripts …`
api         /admin/api/scripts (models in api_schemas, helpers in api_support, api_views)
"""
