"""Demo tokens matching `deploy/intake-credentials.yaml`: LOCAL USE ONLY (they are public)."""

from __future__ import annotations

#: agency code -> token, for the demo, the docs and the tests.
DEMO_TOKENS: dict[str, str] = {
    agency: f"rb_{tid}_local-demo-only-{tid}"
    for agency, tid in (
        ("health.designated_medical_institution", "hospital"),
        ("transport", "coachstn"),
        ("education", "school"),
        ("womens_federation", "wfcadre"),
        ("police", "police"),
        ("police.command_center", "policecc"),
        ("civil_affairs", "civilaff"),
        ("anti_trafficking_office", "atoffice"),
        ("publicity", "publicty"),
        ("health", "healthdp"),
        ("radio_tv", "radiotv"),
    )
}
