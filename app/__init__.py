"""CampBot platform: settings, storage, HTTP and the WeCom protocol. Never imports `bots`."""
