"""The topic catalog: one declaration per topic, names from one place."""

from __future__ import annotations

import re

import pytest

from rules.catalog import catalog
from topics.catalog import (
    ALERT_PARKED,
    ALERT_STATES,
    ANSWERS,
    EVENTS,
    FIXED_TOPICS,
    KEYS,
    PARTICIPANTS,
    RESPONSES,
    all_topics,
    broadcast_topic,
    current_agencies,
    gate_agency,
    gate_topics,
    key_of,
    referral_topic,
    referral_topic_name,
    refusals_topic,
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
    assert EVENTS.key == "case_id_else_event_id" and EVENTS.partitions >= 2
    assert EVENTS.config == {"retention.ms": str(EVENTS.retention_ms), "cleanup.policy": "delete"}


def test_answers_are_not_on_a_referral_topic() -> None:
    """Issue #18: `referrals.responses` held answers but matched `^referrals\\.`."""
    assert re.match(r"^referrals\.", ANSWERS.name) is None
    assert RESPONSES is ANSWERS  # the old name still imports (other branches merge against it)
    # The bus's answers topic, and the agencies' own answers topics the intake's gate reads.
    assert [t.name for t in all_topics() if t.value == "ReferralResponse" and not t.name.startswith("agency.")] == [
        ANSWERS.name]
    assert not any(re.match(r"^referrals\.", t.name) for t in all_topics() if t.value == "ReferralResponse")


def test_each_agency_has_its_own_gate_topics_which_only_it_writes() -> None:
    events, answers = gate_topics("police.command_center")
    assert (events.name, answers.name) == ("agency.police.command_center.events",
                                           "agency.police.command_center.answers")
    assert (events.value, events.key, answers.value, answers.key) == (
        "Event", EVENTS.key, "ReferralResponse", ANSWERS.key)
    assert events.writers == answers.writers == ("agency",) and events.readers == answers.readers == ("intake",)
    names = {t.name for t in all_topics()}
    for agency in current_agencies():
        assert {t.name for t in gate_topics(agency)} <= names
        assert {gate_agency(t.name) for t in gate_topics(agency)} == {agency}
    assert gate_agency("agency.nasa.events") is None and gate_agency(EVENTS.name) is None
    assert gate_agency("agency.police.command_center.referrals") is None
    with pytest.raises(KeyError, match="unknown agency code"):
        gate_topics("nasa")


def test_each_agency_has_its_own_refusals_topic_which_only_it_reads_and_the_gate_does_not() -> None:
    notices = refusals_topic("police.command_center")
    assert (notices.name, notices.value, notices.key) == (
        "agency.police.command_center.refusals", "RefusalNotice", "refused_position")
    assert notices.writers == ("intake", "alerts") and notices.readers == ("agency",)
    names = {t.name for t in all_topics()}
    for agency in current_agencies():
        assert refusals_topic(agency).name in names
        assert gate_agency(refusals_topic(agency).name) is None  # the gate does not read its own notices
    with pytest.raises(KeyError, match="unknown agency code"):
        refusals_topic("nasa")
    # One key per refused message: where it was.
    value = {"topic": "agency.education.events", "partition": 0, "offset": 312, "event_id": "sha256:0123456789ab"}
    assert key_of("refused_position", value) == b"agency.education.events:0:312"
    assert "agency" not in EVENTS.writers and "agency" not in ANSWERS.writers


def test_the_alerts_service_changelogs_are_created_like_every_other_topic() -> None:
    """`topics create` makes only the catalog's topics; the Compose Kafka creates none by itself."""
    assert ALERT_STATES in FIXED_TOPICS and ALERT_PARKED in FIXED_TOPICS


def test_every_topic_says_its_key_and_who_writes_and_reads_it() -> None:
    for t in all_topics():
        assert t.key in KEYS, t.name
        assert t.writers and t.readers, t.name
        assert set(t.writers) | set(t.readers) <= set(PARTICIPANTS), t.name


def test_answers_readers_read_the_old_topic_only_during_an_upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    from bus.settings import KafkaSettings
    from topics.catalog import LEGACY_ANSWERS_TOPIC

    assert KafkaSettings().answer_topics == (ANSWERS.name,)
    monkeypatch.setenv("REFERRAL_BUS_LEGACY_ANSWERS_TOPIC", LEGACY_ANSWERS_TOPIC)
    assert KafkaSettings().answer_topics == (ANSWERS.name, "referrals.responses")
