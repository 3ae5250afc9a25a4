"""Channels: which WeCom API really reaches a group or a person (ARCHITECTURE §2),
the message each one accepts, and delivering outbox rows through it."""
