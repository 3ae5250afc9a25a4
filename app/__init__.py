"""CampBot platform: settings, storage, HTTP and the WeCom protocol. Imports no capability,
`schedules` or `scripts_library`, except in the composition root (`app.main`, `app.cli`)."""
