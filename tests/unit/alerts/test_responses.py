"""The answer schema: a rejection needs a reason, 'done' needs a note."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from schemas.alerts import ReferralResponse


def test_reject_without_reason_is_invalid() -> None:
    with pytest.raises(ValidationError, match="rejection needs a reason"):
        ReferralResponse(referral_id=uuid.uuid4(), answer="rejected", reason="  ")


def test_done_without_note_is_invalid() -> None:
    with pytest.raises(ValidationError, match="'done' needs a note"):
        ReferralResponse(referral_id=uuid.uuid4(), answer="done")


def test_unknown_agency_is_invalid() -> None:
    with pytest.raises(ValidationError, match="unknown agency"):
        ReferralResponse(referral_id=uuid.uuid4(), answer="acknowledged", agency="martians")


def test_keyed_by_referral_id() -> None:
    rid = uuid.uuid4()
    assert ReferralResponse(referral_id=rid, answer="acknowledged").key == str(rid).encode()
