"""Check-in (打卡) and homework (作业): rules per cohort, entries, streaks, points, ranks,
reminders, the leaderboard and homework review."""
