"""faust's stuck-stream check, fed without faust's Monitor sensor."""

from __future__ import annotations

import time
from typing import Any

import faust

from bus.upstream.registry import NO_ISSUE, workaround


@workaround(
    relies_on={"faust.transport.drivers.aiokafka:AIOKafkaConsumerThread.verify_event_path": "3f5576be114149b0",
               "faust.sensors.monitor:Monitor.on_stream_event_in": "de452defd9dad12e"},
    issue=NO_ISSUE,
    recheck="faust's check for a stuck stream still reads `app.monitor.stream_inbound_time` "
            "(topic partition -> monotonic time a stream last took an event of it), which the "
            "Monitor sets in on_stream_event_in; `bus/kafka/batches.py` writes it too.")
class StreamLiveness(faust.Sensor):
    """Records when a stream last took an event of each partition, where faust's check for a
    stuck stream looks (the Monitor's `stream_inbound_time`); nothing else.

    The bus's apps remove faust's Monitor from their sensors (`BusApp`): it keeps statistics for
    faust's web views, which are off, and runs four times per event. Its check for a stuck
    stream, run by the consumer thread, still reads the Monitor's record of each partition's
    last event: this sensor keeps that record.
    """

    def __init__(self, monitor: Any) -> None:
        super().__init__()
        self.inbound_time: dict[Any, float] = monitor.stream_inbound_time

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.inbound_time[tp] = time.monotonic()
