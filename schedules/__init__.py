"""When things happen: schedules, triggers and the APScheduler wiring (issue 4 fills this in)."""
