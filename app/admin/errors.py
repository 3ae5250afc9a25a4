"""What an admin operation refuses, by the HTTP answer the edge turns it into.

AdminError (app.errors.CampBotError)     message: Chinese, shown to operators
├── AuthError              401  no token, or not a live one
├── InvalidInput           422  names the field(s) and the reason
├── NotFound               404  no object with that id
├── Conflict               409  a unique value taken, a state that forbids the action
└── TooManyFailures        429  too many wrong tokens from one address (Retry-After)
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import CampBotError


class AdminError(CampBotError):
    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthError(AdminError):
    status_code = 401


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    message: str


class InvalidInput(AdminError):
    status_code = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.problems = [FieldProblem(field, message)]


class NotFound(AdminError):
    status_code = 404


class Conflict(AdminError):
    status_code = 409


class TooManyFailures(AdminError):
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"管理令牌错误次数过多，请 {retry_after} 秒后再试。")
        self.retry_after = retry_after
