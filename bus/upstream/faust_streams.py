"""An agent's stream read straight from its channel's queue, for values faust would pass unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust

from bus.upstream.registry import NO_ISSUE, workaround


@workaround(
    relies_on={"faust.streams:Stream._c_aiter": "e1c5071a8280fd46",
               "faust.streams:Stream.__aiter__": "5b6b0d2ca5f5f765",
               "faust.streams:Stream.on_merge": "8366a42301276d02",
               "faust.agents.agent:Agent.actor_from_stream": "e471f7df8e35271f",
               "faust.agents.agent:Agent._maybe_unwrap_reply_request": "5e894ff34ef88ef3",
               "faust.agents.actor:Actor.cancel": "f235081d02d1587d"},
    issue=f"{NO_ISSUE} (a cost, not a bug)",
    recheck="faust's stream iterator (faust/_cython/streams.pyx `StreamIterator.next`, and "
            "`_py_aiter`) still only sleeps one turn, takes the channel queue's next value "
            "(raising the errors thrown into it), and for a value that is not an event passes "
            "it through the stream's processors and on_merge and yields it, with no ack, sensor "
            "or current event; an agent's stream still has faust's request-reply unwrapping as "
            "its only processor, and on_merge still returns the value of a stream combined with "
            "none; faust still stops an agent's iteration by throwing StopAsyncIteration into its "
            "channel (Actor.cancel), which the iterator takes for the end of the stream.")
async def channel_values(stream: faust.StreamT[Any]) -> AsyncIterator[Any]:
    """The values put on the queue of `stream`'s channel, in order, as iterating `stream` gives
    them when they are not faust events (the lists of records `bus/kafka/batches.py` hands over).

    faust's stream iterator sleeps one turn of the event loop before it looks at its queue, so an
    agent that asks for its next value wakes twice: once at that sleep, once when the value
    comes (at 100 events/s, a wake-up of the agent per event for nothing; benchmarks/router_cpu.py).
    Here the agent sleeps that turn only when a value is already waiting (others still run between
    two of its values, as with faust's iterator); otherwise it waits on the queue, which is one
    turn anyway. The rest of faust's iterator does nothing to such values: no event to ack or
    sense, a processor (request-reply unwrapping) that returns them unchanged, no combined stream.
    """
    channel: Any = stream.channel
    queue = channel.queue  # faust's ThrowableQueue: get() raises what was thrown in
    try:
        while True:
            if queue.empty():
                value = await queue.get()
            else:
                await asyncio.sleep(0)
                value = queue.get_nowait() if not queue.empty() else await queue.get()
            yield value
    except StopAsyncIteration:
        return  # faust stops an agent by throwing this into its channel (`Actor.cancel`)
