"""The operators' console (运营后台): sign-in, sessions, CSRF, the layout, static files, and
the navigation built from the capabilities' console pages (`app.console.pages`).

`app.console.mount.mount(app, pages)` puts it into the app (`app.main`). This package's
`__init__` imports nothing, so `app.capability` can name `ConsolePages` without a cycle.
"""
