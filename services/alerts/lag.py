"""Consumer lag of every agency's consumer group (`agency.<code>`) and of the router.

Lag = end offset - committed offset, per group and topic (summed over partitions). A group that
has never committed on a topic lags by the whole topic: that agency reads nothing there.
"""

from __future__ import annotations

from collections import defaultdict

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bus.settings import KafkaSettings
from rules.catalog import COMMAND_CENTER, catalog
from services.alerts.metrics import AlertsMetrics
from topics.catalog import ESCALATIONS, EVENTS, POLICE_ALERTS, referral_topic_name

log = structlog.get_logger("alerts.lag")


def agency_group(agency: str) -> str:
    """The consumer group of one agency's readers (`tail`, delivery endpoint, pagers)."""
    return f"agency.{agency}"


def lag_by_topic(ends: dict[TopicPartition, int], starts: dict[TopicPartition, int],
                 committed: dict[TopicPartition, int]) -> dict[str, int]:
    """Pure: per-topic lag of one group. A partition without a commit lags from its first offset."""
    out: dict[str, int] = defaultdict(int)
    for tp, end in ends.items():
        position = committed.get(tp, -1)
        if position < 0:
            position = starts.get(tp, 0)
        out[tp.topic] += max(0, end - position)
    return dict(out)


class LagExporter:
    """Sets `referral_bus_consumer_lag{group,topic}`; clients are created on the first scan."""

    def __init__(self, kafka: KafkaSettings, metrics: AlertsMetrics, *, router_group: str) -> None:
        self.kafka, self.metrics, self.router_group = kafka, metrics, router_group
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each group with the topics it is expected to read."""
        groups: dict[str, tuple[str, ...]] = {agency_group(a): (referral_topic_name(a),)
                  for a, info in sorted(catalog().agencies.items()) if not info.abolished}
        # The command centres also read the alerts and their escalations.
        groups[agency_group(COMMAND_CENTER)] += (POLICE_ALERTS.name, ESCALATIONS.name)
        groups[self.router_group] = (EVENTS.name,)
        return groups

    async def scan(self) -> None:
        try:
            await self._scan()
        except Exception as exc:
            log.warning("lag_scan_failed", error=type(exc).__name__)

    async def _scan(self) -> None:
        if self._admin is None or self._consumer is None:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka.bootstrap_servers,
                                              request_timeout_ms=self.kafka.request_timeout_ms)
            await self._admin.start()
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka.bootstrap_servers, group_id=None)
            await self._consumer.start()
        await self._consumer.topics()  # refresh metadata for every topic, subscribed or not
        for group, topics in self.groups().items():
            parts = [TopicPartition(t, p) for t in topics
                     for p in sorted(self._consumer.partitions_for_topic(t) or ())]
            if not parts:
                continue
            # Partitions named explicitly: the local broker mis-answers an OffsetFetch for "all".
            offsets = await self._admin.list_consumer_group_offsets(group, partitions=parts)
            committed = {tp: meta.offset for tp, meta in offsets.items()}
            ends = await self._consumer.end_offsets(parts)
            starts = await self._consumer.beginning_offsets(parts)
            for topic, lag in lag_by_topic(ends, starts, committed).items():
                self.metrics.consumer_lag.labels(group, topic).set(lag)
