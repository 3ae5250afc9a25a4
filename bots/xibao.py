"""喜报: achievements rendered as a script and a poster, fanned out to the cohort's groups."""

from __future__ import annotations

from bots.dispatch import Router

router = Router("xibao")
