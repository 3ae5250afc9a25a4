"""The WeCom protocol: the API client, tokens, callback crypto, events, errors, passive replies.

Knows nothing of camps. The stateful fake of WeCom is `app.wecom_sandbox`, not part of this.
"""
