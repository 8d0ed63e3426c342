"""What outbound webhook delivery needs from a transport: one POST, and how it went.

The services decide what to send, when, and what an answer means for the endpoint
(services/webhook_delivery.py); the transport's client (rpc/transport_aiohttp/
webhook_client.py) sends it, connecting only where rpc/ssrf.py allows and never following a
redirect.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool  # a 2xx answer
    http_status: int | None  # None when no answer came
    error: str | None  # why it failed, in words safe to show an admin (never the URL)


class WebhookSender(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult: ...

    async def close(self) -> None: ...
