"""The WeCom sandbox: a faithful stand-in for WeCom, for tests, demos and first runs.

`callbacks` plays WeCom's side of the callback protocol (encrypted, signed POSTs).
"""
