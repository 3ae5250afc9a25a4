"""The WeCom protocol: callback crypto, event parsing, and (later) the API client.

Knows nothing of camps.
"""
