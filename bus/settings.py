"""Settings shared by every entry point, read once from the environment (prefix REFERRAL_BUS_)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the broker and how to talk to it.

    `fetch_max_wait_ms` sets every consumer hop's latency on the local Tansu broker, which holds
    a fetch for the full wait; on Apache Kafka the default is harmless (it answers on arrival).
    """

    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(default="", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    fetch_max_wait_ms: int = Field(default=10, ge=1, le=10_000)
    # The faust workers' fetch wait once their topics are quiet (no records for the busy tail,
    # `BusyTail` in bus/kafka/faust_transport.py), until records come (0: the same as
    # fetch_max_wait_ms). On Tansu the first record after a quiet spell waits up to it (half of it
    # on average); each poll costs the worker and the broker CPU (docs/benchmarks.md).
    idle_fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)
    # aiokafka's idempotent producer fails on the local broker (InitProducerId); on Apache Kafka
    # turn it on. Consumers drop duplicates by id either way.
    idempotent_producer: bool = False
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    request_timeout_ms: int = Field(default=40_000, ge=1000)
    # During the upgrade that moved answers off `referrals.responses` (deploy/README.md,
    # "Upgrading"), the answers' readers also read the old topic until it is drained.
    legacy_answers_topic: str | None = Field(
        default=None, description="Also read answers from this topic (e.g. referrals.responses) during an upgrade.")

    @property
    def answer_topics(self) -> tuple[str, ...]:
        """The topics the answers' readers read: the answers topic, and the old one during an upgrade."""
        from topics.catalog import ANSWERS

        return (ANSWERS.name, *((self.legacy_answers_topic,) if self.legacy_answers_topic else ()))


class StateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_BUS_", frozen=True, extra="ignore")

    state_dir: Path = Field(default=Path(".state"), description="Local state: faust tables, dedup stores, outbox.")
