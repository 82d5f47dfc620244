"""Turn validation failures into the stable, privacy-safe error format the bus reports.

Only the field path and the reason are kept: pydantic's own message embeds the input value,
which may be a victim's personal data.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError

_UNION_TAGS = {"child_missing_reported", "case_resolved", "missing_child_info_release", "event"}


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    reason: str


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One entry per failing field: its dotted path (`person.age`) and why it failed."""
    out: list[FieldError] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = list(err["loc"])
        if loc and loc[0] in _UNION_TAGS:
            loc = loc[1:]
        path = ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "(event)"
        reason = err["msg"].removeprefix("Value error, ")
        out.append(FieldError(field=path, reason=reason))
    return out


def summary(errors: list[FieldError]) -> str:
    """One line naming every failing field and its reason."""
    return "; ".join(f"{e.field}: {e.reason}" for e in errors)
