"""The topic catalog: one declaration per topic, names from one place."""

from __future__ import annotations

import pytest

from rules.catalog import catalog
from topics.catalog import (
    EVENTS,
    all_topics,
    broadcast_topic,
    referral_topic,
    referral_topic_name,
)


def test_every_topic_is_declared_once() -> None:
    names = [t.name for t in all_topics()]
    assert len(names) == len(set(names))


def test_every_current_agency_has_a_referral_topic() -> None:
    names = {t.name for t in all_topics()}
    for code, agency in catalog().agencies.items():
        assert (referral_topic_name(code) in names) is (not agency.abolished), code


def test_sub_unit_topics_keep_the_dotted_code() -> None:
    assert referral_topic("police.command_center").name == "referrals.police.command_center"


def test_unknown_agency_or_channel_is_an_error() -> None:
    with pytest.raises(KeyError, match="unknown agency code 'nasa'"):
        referral_topic("nasa")
    with pytest.raises(KeyError, match="unknown broadcast channel"):
        broadcast_topic("carrier_pigeon")


def test_inbound_events_keep_a_case_in_order() -> None:
    assert EVENTS.key == "case_id" and EVENTS.partitions >= 2
    assert EVENTS.config == {"retention.ms": str(EVENTS.retention_ms), "cleanup.policy": "delete"}
