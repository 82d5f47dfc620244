"""Apply the topic catalog to a broker, idempotently."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bus.settings import KafkaSettings
from topics.catalog import TopicSpec, all_topics


@dataclass(frozen=True)
class TopicsApplied:
    created: tuple[str, ...]
    existing: tuple[str, ...]


async def create_topics(settings: KafkaSettings, specs: tuple[TopicSpec, ...] | None = None) -> TopicsApplied:
    """Create every catalog topic the broker lacks; existing topics are left as they are."""
    specs = specs if specs is not None else all_topics()
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers,
                                request_timeout_ms=settings.request_timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [NewTopic(s.name, s.partitions, 1, topic_configs=s.config) for s in missing]
            )
        return TopicsApplied(
            created=tuple(s.name for s in missing),
            existing=tuple(s.name for s in specs if s.name in existing),
        )
    finally:
        await admin.close()
