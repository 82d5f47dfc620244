"""Sessions (expiry, CSRF, refused sign-ins) and the answer outbox (queued, delivered, refused)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from bus.credentials import Credentials
from bus.settings import KafkaSettings
from schemas.alerts import ReferralResponse
from schemas.answers import RefusedAnswer
from services.console.answers import AnswerDesk, AnswerRefused, AnswerUnavailable
from services.console.auth import Sessions, SignInRefused, load_officers
from services.console.demo import demo_password
from services.console.metrics import ConsoleMetrics
from services.console.settings import DEFAULT_AGENCY_CREDENTIALS, DEFAULT_OFFICERS
from services.intake.demo import DEMO_TOKENS


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sessions(clock: Clock) -> Sessions:
    return Sessions(load_officers(DEFAULT_OFFICERS), Credentials.load(DEFAULT_AGENCY_CREDENTIALS), ttl_s=3600,
                    idle_s=600, clock=clock)


def test_officer_and_token_sign_in_record_the_person() -> None:
    s = sessions(Clock())
    officer = s.sign_in_officer("cc-wang", demo_password("cc-wang"))
    assert (officer.agency, officer.officer, officer.via) == ("police.command_center", "王明 (cc-wang)", "officer")
    cadre = s.sign_in_token(DEMO_TOKENS["womens_federation"], "刘芳")
    assert (cadre.agency, cadre.officer, cadre.token) == ("womens_federation", "刘芳 (wfcadre)",
                                                          DEMO_TOKENS["womens_federation"])
    bad: Callable[[], object]
    for bad in (lambda: s.sign_in_officer("cc-wang", "wrong"), lambda: s.sign_in_officer("nobody", "x"),
                lambda: s.sign_in_token("rb_police_wrong-secret-wrong-secret", "x"),
                lambda: s.sign_in_token(DEMO_TOKENS["police"], "  ")):
        with pytest.raises(SignInRefused):
            bad()


def test_sessions_expire_by_age_and_idleness_and_csrf_is_checked() -> None:
    clock = Clock()
    s = sessions(clock)
    a = s.sign_in_officer("cc-li", demo_password("cc-li"))
    forged = ("y" if a.csrf[0] == "x" else "x") + a.csrf[1:]  # one character off (never the token itself)
    assert s.csrf_ok(a, a.csrf) and not s.csrf_ok(a, None) and not s.csrf_ok(a, forged)
    clock.now += 599
    assert s.get(a.sid) is not None  # touched: idle time starts again
    clock.now += 599
    assert s.get(a.sid) is not None
    clock.now += 601
    assert s.get(a.sid) is None  # idle
    b = s.sign_in_officer("cc-li", demo_password("cc-li"))
    for _ in range(8):  # 4,000 s > the 3,600 s shift
        clock.now += 500
        s.get(b.sid)
    assert s.get(b.sid) is None  # a duty shift is over, however busy
    s.sign_out(b.sid)


class FlakySink:
    def __init__(self) -> None:
        self.up = False
        self.refuse = False
        self.delivered: list[ReferralResponse] = []

    async def deliver(self, response: ReferralResponse) -> None:
        if self.refuse:
            raise AnswerRefused("not_entitled")
        if not self.up:
            raise AnswerUnavailable("broker_down")
        self.delivered.append(response)

    async def close(self) -> None:
        return None


def answer(referral_id: uuid.UUID) -> ReferralResponse:
    return ReferralResponse(referral_id=referral_id, answer="acknowledged", agency="police.command_center",
                            officer="王明 (cc-wang)")


async def test_an_answer_made_while_the_bus_is_away_is_queued_then_delivered_once(tmp_path: Path) -> None:
    changed: list[str]
    sink, changed = FlakySink(), []
    desk = AnswerDesk(tmp_path / "answers.sqlite", sink, ConsoleMetrics(CollectorRegistry()), changed.append,
                      retry_max_s=0.2)
    rid = uuid.uuid4()
    response = answer(rid)
    assert await desk.give(response) == "queued"
    assert [p.status for p in desk.pending()[str(rid)]] == ["queued"] and not desk.reachable
    stop = asyncio.Event()
    loop = asyncio.create_task(desk.run(stop))
    sink.up = True
    for _ in range(100):
        if sink.delivered:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await loop
    assert [r.response_id for r in sink.delivered] == [response.response_id]
    assert desk.pending() == {} and desk.reachable and str(rid) in changed
    assert [p.response_id for p in desk.unrecorded()[str(rid)]] == [str(response.response_id)]
    # Kept on disk: a restarted console still has it (and would resend nothing already sent).
    again = AnswerDesk(tmp_path / "answers.sqlite", sink, ConsoleMetrics(CollectorRegistry()), changed.append)
    assert again.outbox.counts() == {"pending": 0, "sent": 1, "rejected": 0}
    await desk.close()
    await again.close()


async def test_a_refused_answer_is_kept_with_its_reason(tmp_path: Path) -> None:
    sink = FlakySink()
    sink.refuse = True
    desk = AnswerDesk(tmp_path / "answers.sqlite", sink, ConsoleMetrics(CollectorRegistry()), lambda _: None)
    rid = uuid.uuid4()
    assert await desk.give(answer(rid)) == "refused"
    [p] = desk.pending()[str(rid)]
    assert (p.status, p.error) == ("refused", "not_entitled")
    await desk.close()


async def test_an_answer_the_alerts_service_refused_shows_refused_with_its_reason(tmp_path: Path) -> None:
    """The broker took it, the alerts service refused it (`answers.refused`): the console's own
    reader marks it on its card, refused, with the reason code; another console's refusal is not its."""
    import datetime as dt

    from aiokafka.structs import ConsumerRecord

    from schemas.alerts import dump
    from services.console.agents import BusReader, Fanout
    from services.console.board import card
    from tests.unit.console.console_fakes import Desk, alert_pair
    from topics.catalog import ANSWERS_REFUSED

    sink = FlakySink()
    sink.up = True
    metrics = ConsoleMetrics(CollectorRegistry())
    desk = AnswerDesk(tmp_path / "answers.sqlite", sink, metrics, lambda _: None)
    reader = BusReader(KafkaSettings(), Fanout(metrics), metrics, on_refusal=desk.refused)
    alert, _ = alert_pair()
    response = answer(alert.id)
    assert await desk.give(response) == "published"
    now = dt.datetime.now(dt.UTC)

    def refusal(response_id: str) -> ConsumerRecord[bytes, bytes]:
        value = RefusedAnswer(response_id=response_id, referral_id=str(alert.id), agency="police.command_center",
                              answer="acknowledged", reason="already_final", received_at=now, refused_at=now)
        return ConsumerRecord(ANSWERS_REFUSED.name, 0, 7, 0, 0, value.key, dump(value), None, 0, 0, [])

    assert reader.apply(refusal(str(uuid.uuid4()))) is None  # not an answer given here
    change = reader.apply(refusal(str(response.response_id)))
    assert change is not None and (change.what, change.key) == ("pending", str(alert.id))
    [p] = desk.pending()[str(alert.id)]
    assert (p.status, p.error) == ("refused", "already_final")
    reader.bus.put_state(alert)
    shown = card(alert, reader.bus, Desk("police.command_center"), desk.unrecorded())
    assert shown["pending"] == [{"response_id": str(response.response_id), "answer": "acknowledged",
                                 "status": "refused", "error": "already_final"}]
    await desk.close()
