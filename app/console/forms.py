"""Console forms on the admin API's validation: the same input models, the same Chinese
reasons, shown beside the field they name.

A page reads the posted fields it knows (`values`), validates them with the API's model
(`parse`), and calls the service inside `refusals()`; any refusal becomes `Refused`, whose
`problems` map a field to its reason ("" for the form as a whole) and whose `status` is the
API's (422, 404, 409). The route rolls the request back on that status: nothing half-saved.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from app.admin.errors import AdminError, FieldProblem
from app.api.admin.errors import field_problems

M = TypeVar("M", bound=BaseModel)


class Refused(Exception):
    def __init__(self, problems: Mapping[str, str], status: int = 422) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = dict(problems)
        self.status = status


def problems_of(problems: Collection[FieldProblem]) -> dict[str, str]:
    """Field → reason; a nested field ("cohort_ids.0", "attachments[0].url") shows at the
    input it came from, the first reason for a field winning."""
    shown: dict[str, str] = {}
    for problem in problems:
        field = problem.field.split(".")[0].split("[")[0]
        shown.setdefault(field, problem.message)
    return shown


def values(
    form: FormData,
    fields: Collection[str],
    *,
    lists: Collection[str] = (),
    optional: Collection[str] = (),
    flags: Collection[str] = (),
) -> dict[str, Any]:
    """The posted `fields` (text), `lists` (every value), `flags` (checkboxes: present or
    not). An empty `optional` field is left out, as the API's client would leave it out."""
    found: dict[str, Any] = {}
    for name in fields:
        value = form.get(name)
        if isinstance(value, str) and not (name in optional and not value.strip()):
            found[name] = value
    for name in lists:
        found[name] = [v for v in form.getlist(name) if isinstance(v, str) and v.strip()]
    for name in flags:
        found[name] = form.get(name) is not None
    return found


def form_id(value: object) -> int | None:
    """A posted id (a select's value) as an int, or None when it is not one: ASCII digits
    only (`str.isdigit` takes '²', which int() refuses) and at most 9 of them (an INT32)."""
    if isinstance(value, str) and 0 < len(value) <= 9 and value.isascii() and value.isdigit():
        return int(value)
    return None


def parse(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused(problems_of(field_problems(exc.errors()))) from None


@contextmanager
def refusals() -> Iterator[None]:
    """The services' refusals (AdminError) as `Refused`."""
    try:
        yield
    except AdminError as exc:
        problems = getattr(exc, "problems", None)
        shown = problems_of(problems) if problems else {"": exc.message}
        raise Refused(shown, exc.status_code) from None
