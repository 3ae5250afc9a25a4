"""Check-in (打卡) and homework (作业): rules per cohort, entries, streaks, points, ranks,
the student's personal H5 page, reminders and homework review."""
