"""Keyword Q&A: answers 1:1 app messages from internal members."""

from __future__ import annotations

from bots.dispatch import Router

router = Router("qa")
