"""Answers given at a desk: kept in a durable outbox first, then delivered to the bus until it has
them, never lost silently.

An answer is committed to SQLite (`bus.outbox.Outbox`, keyed by `response_id`) before any
network attempt; it leaves the pending state when the bus acknowledged it (sent) or refused it
for good (refused, shown on the card with the reason). An answer the broker took can still be
refused by the alerts service, which authorises every answer (`answers.refused`): the reader
tells the desk (`refused`), and the card shows it refused, with the reason code. While the broker is unreachable the
desk is told the answer is queued, and a background task sends it when the broker returns. A
resend is harmless: the alerts service applies a `response_id` once.

Delivery goes through an `AnswerSink`: straight onto the answers topic
(`topics.catalog.ANSWERS`; the console is a bus service with its own principal and signs its
officers in itself, DECISIONS.md), or `HttpAnswerSink`, the intake's answer endpoint
(`POST /v1/referrals/{id}/answers`) with an agency token, when configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import structlog

from bus.kafka.publisher import BrokerUnavailable, KafkaPublisher
from bus.outbox import Outbox, backoff_s
from bus.settings import KafkaSettings
from schemas.alerts import ReferralResponse, dump
from schemas.answers import RefusedAnswer
from services.console.board import PendingAnswer, PendingStatus
from services.console.metrics import ConsoleMetrics
from topics.catalog import ANSWERS

log = structlog.get_logger("console")


class AnswerUnavailable(Exception):
    """The bus did not take the answer now: keep it and try again."""


class AnswerRefused(Exception):
    """The bus refused the answer for good (e.g. not entitled): keep it with the reason, stop."""


class AnswerSink(Protocol):
    async def deliver(self, response: ReferralResponse) -> None: ...

    async def close(self) -> None: ...


class KafkaAnswerSink:
    """Produces the answer on the answers topic (acks=all), keyed by the referral id."""

    def __init__(self, kafka: KafkaSettings, timeout_s: float) -> None:
        self._publisher = KafkaPublisher(kafka, timeout_s)

    async def deliver(self, response: ReferralResponse) -> None:
        try:
            await self._publisher.publish(ANSWERS.name, response.key, dump(response))
        except BrokerUnavailable as exc:
            # A producer that failed once may hold a dead connection: start afresh next time.
            await self._publisher.close()
            raise AnswerUnavailable(str(exc)) from exc

    async def close(self) -> None:
        await self._publisher.close()


class HttpAnswerSink:
    """Posts the answer to the bus's answer endpoint: `POST {url}/v1/referrals/{id}/answers`, the
    `ReferralResponse` as JSON, with the console's bearer token. 2xx: delivered; 5xx or no answer:
    unavailable (retried); any other status: refused for good, with the endpoint's error code."""

    def __init__(self, url: str, token: str, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, transport=transport,
                                       headers={"Authorization": f"Bearer {token}"})

    async def deliver(self, response: ReferralResponse) -> None:
        try:
            r = await self._http.post(f"/v1/referrals/{response.referral_id}/answers",
                                      content=dump(response), headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise AnswerUnavailable(type(exc).__name__) from exc
        if r.status_code >= 500 or r.status_code == 429:
            raise AnswerUnavailable(f"HTTP {r.status_code}")
        if r.status_code >= 300:
            code = "refused"
            with contextlib.suppress(ValueError, KeyError, TypeError):
                code = str(r.json()["error"]["code"])[:64]
            raise AnswerRefused(code)

    async def close(self) -> None:
        await self._http.aclose()


class AnswerDesk:
    """The outbox of answers and the loop that empties it. `on_change(referral_id)` is called
    whenever an answer's delivery status changes, so the boards redraw its card."""

    def __init__(self, path: Path, sink: AnswerSink, metrics: ConsoleMetrics,
                 on_change: Callable[[str], None], retry_max_s: float = 10.0) -> None:
        self.outbox = Outbox(path, id_field="response_id")
        self.sink, self.metrics, self.on_change = sink, metrics, on_change
        self.retry_max_s = retry_max_s
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.reachable = True

    def pending(self) -> dict[str, list[PendingAnswer]]:
        """Answers not yet delivered, or refused, by referral id (delivered ones show once the bus
        has recorded them in `alerts.states`)."""
        out: dict[str, list[PendingAnswer]] = {}
        for item in self.outbox.items():
            if item.status == "sent":
                continue
            body = json.loads(item.body)
            status: PendingStatus = "refused" if item.status == "rejected" else (
                "queued" if item.attempts else "sending")
            p = PendingAnswer(response_id=item.event_id, referral_id=body["referral_id"], answer=body["answer"],
                              status=status, officer=body.get("officer"), error=item.answer or item.last_error)
            out.setdefault(p.referral_id, []).append(p)
        return out

    def unrecorded(self) -> dict[str, list[PendingAnswer]]:
        """Every answer given here that may not be on its card yet: pending, refused, or taken by
        the bus (shown as sending until `alerts.states` records it)."""
        out = self.sent()
        for key, items in self.pending().items():
            out.setdefault(key, []).extend(items)
        return out

    def sent(self) -> dict[str, list[PendingAnswer]]:
        """Answers the bus took, by referral id: shown as 'sent, not yet recorded' until recorded."""
        out: dict[str, list[PendingAnswer]] = {}
        for item in self.outbox.items("sent"):
            body = json.loads(item.body)
            out.setdefault(body["referral_id"], []).append(PendingAnswer(
                response_id=item.event_id, referral_id=body["referral_id"], answer=body["answer"], status="sending"))
        return out

    def refused(self, refusal: RefusedAnswer) -> str | None:
        """The alerts service refused an answer (`answers.refused`): if it was given here, it is
        marked refused with the reason code, for its card; returns its referral id, else None."""
        if refusal.response_id is None:
            return None
        item = next((i for i in self.outbox.items() if i.event_id == refusal.response_id), None)
        if item is None:
            return None
        if item.status != "rejected":
            self.outbox.mark_rejected(item.event_id, refusal.reason)
            log.warning("answer_refused", referral_id=refusal.referral_id, code=refusal.reason)
        referral_id: str = json.loads(item.body)["referral_id"]
        return referral_id

    async def give(self, response: ReferralResponse) -> str:
        """Store, then try once at once: 'published', 'queued' (kept, retried), or 'refused'."""
        self.outbox.add(dump(response))
        self.metrics.outbox_pending.set(self.outbox.counts()["pending"])
        outcome = await self._attempt_one(str(response.response_id))
        self.metrics.answers.labels(outcome).inc()
        self._wake.set()
        return outcome

    async def _attempt_one(self, response_id: str) -> str:
        async with self._lock:
            item = next((i for i in self.outbox.items("pending") if i.event_id == response_id), None)
            if item is None:
                return "published"
            return await self._attempt(item.event_id, item.body, item.attempts)

    async def _attempt(self, response_id: str, body: bytes, attempts: int) -> str:
        response = ReferralResponse.model_validate_json(body)
        try:
            await self.sink.deliver(response)
        except AnswerUnavailable as exc:
            delay = backoff_s(attempts + 1, base=0.5, cap=self.retry_max_s)
            self.outbox.mark_retry(response_id, str(exc) or "unavailable",
                                   dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))
            if self.reachable:
                log.warning("answers_queued_bus_unreachable", error=str(exc))
            self.reachable = False
            outcome = "queued"
        except AnswerRefused as exc:
            self.outbox.mark_rejected(response_id, str(exc))
            log.warning("answer_refused", referral_id=str(response.referral_id), code=str(exc))
            outcome = "refused"
        else:
            self.outbox.mark_sent(response_id, "delivered")
            if not self.reachable:
                log.info("answers_bus_reachable_again")
            self.reachable = True
            outcome = "published"
        self.metrics.outbox_pending.set(self.outbox.counts()["pending"])
        self.on_change(str(response.referral_id))
        return outcome

    async def run(self, stop: asyncio.Event) -> None:
        """Send every due answer, oldest first, until `stop`; sleeps until the next is due."""
        while not stop.is_set():
            async with self._lock:
                for item in self.outbox.due():
                    if await self._attempt(item.event_id, item.body, item.attempts) == "queued":
                        break  # the bus is still away: the rest wait for their own due time
            nxt = self.outbox.next_due()
            wait = 1.0 if nxt is None else max(0.05, min(1.0, (nxt - dt.datetime.now(dt.UTC)).total_seconds()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def close(self) -> None:
        await self.sink.close()
        self.outbox.close()
