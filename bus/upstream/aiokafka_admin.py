"""Admin requests aiokafka's admin client has no method for."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from bus.upstream.registry import workaround


@workaround(
    relies_on={"aiokafka.admin.client:AIOKafkaAdminClient._send_request": "651fab1488ec4a1a"},
    issue="aio-libs/aiokafka#955 (open: add create_acls to the admin client)",
    recheck="whether aiokafka now has create_acls (then use it and drop this); else that "
            "_send_request(request) still sends a request to any broker and returns its response.")
async def send_request(admin: AIOKafkaAdminClient, request: Any) -> Any:
    """Send one admin protocol request (CreateAcls) to a broker and return its response.

    aiokafka 0.14 builds ACL requests (`aiokafka.protocol.admin.CreateAclsRequest`) but its
    admin client has no method that sends them.
    """
    return await admin._send_request(request)
