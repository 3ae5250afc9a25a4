"""The student's personal H5 page: `GET /h5/m/{token}`, `POST /h5/m/{token}/checkin`."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/h5", tags=["h5"])
