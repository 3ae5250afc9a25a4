"""The student's personal H5 page: today's task, check-in and homework forms, standing and rank,
the FAQ search and the 喜报 report — through the check-in, Q&A and 喜报 services."""
