"""Demo officers matching `deploy/console-officers.yaml`: LOCAL USE ONLY (their passwords are public)."""

from __future__ import annotations

#: officer id -> (name, agency); the password is `local-demo-only-<id>`.
DEMO_OFFICERS: dict[str, tuple[str, str]] = {
    "cc-wang": ("王明", "police.command_center"),
    "cc-li": ("李华", "police.command_center"),
    "ato-zhao": ("赵敏", "anti_trafficking_office"),
    "edu-chen": ("陈静", "education"),
    "civ-sun": ("孙丽", "civil_affairs"),
}


def demo_password(officer_id: str) -> str:
    return f"local-demo-only-{officer_id}"
