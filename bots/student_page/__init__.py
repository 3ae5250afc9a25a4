"""The student's personal H5 page: today's task, check-in and homework forms, standing and rank,
the FAQ search and the 喜报 report — through the check-in, Q&A and 喜报 services."""

from app.capability import Capability
from bots.dispatch import Router
from bots.student_page import pages

capability: Capability[Router] = Capability(name="student_page", public_routers=(pages.router,))
