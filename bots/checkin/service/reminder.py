"""What the check-in reminder says to each member, for other capabilities (the staff sidebar
shows the reminder a student would be pushed): the very code the reminder job renders with
(`bots.checkin.variables`), reached through the service as capabilities reach each other."""

from bots.checkin.variables import FALLBACK_ASSISTANT, FALLBACK_NAME, member_contexts

__all__ = ["FALLBACK_ASSISTANT", "FALLBACK_NAME", "member_contexts"]
