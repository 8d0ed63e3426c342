"""Outbound webhook POSTs with aiohttp's client (rpc/outbound_webhooks.py `WebhookSender`).

The connector resolves names through `CheckedResolver`, which hands it only addresses
rpc/ssrf.py allows, so the address connected to is the address checked (no second lookup for
DNS rebinding to change). aiohttp does not ask the resolver about IP literals, so those are
checked before the request. Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from rpc.outbound_webhooks import SendResult
from rpc.ssrf import UnsafeUrl, parse_target, safe_addresses

USER_AGENT = "Alertwire-Webhooks/1"
MAX_CONNECTIONS = 100


class CheckedResolver(AbstractResolver):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await safe_addresses(host, port, self.allow_private)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        return None


class WebhookClient:
    def __init__(self, allow_private: bool, timeout_s: float) -> None:
        self.allow_private = allow_private
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=CheckedResolver(self.allow_private),
                use_dns_cache=False,
                limit=MAX_CONNECTIONS,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self.timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            target = parse_target(url, self.allow_private)
            # IP literals never reach the resolver: checked here instead.
            await safe_addresses(target.host, target.port, self.allow_private)
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await _drain(response)
                status = response.status
        except UnsafeUrl as exc:
            return SendResult(False, None, f"refused: the URL {exc}")
        except TimeoutError:
            return SendResult(False, None, "timed out")
        except aiohttp.ClientError as exc:
            return SendResult(False, None, _describe(exc))
        except OSError:
            return SendResult(False, None, "connection failed")
        if 200 <= status < 300:
            return SendResult(True, status, None)
        if 300 <= status < 400:
            return SendResult(False, status, f"HTTP {status} (redirects are not followed)")
        return SendResult(False, status, f"HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read (and drop) a bounded amount of the answer, so the connection can be reused."""
    read = 0
    async for chunk in response.content.iter_chunked(65536):
        read += len(chunk)
        if read > 1_048_576:
            response.close()
            return


def _describe(exc: Any) -> str:
    """A failure in a few fixed words: aiohttp's messages may quote the URL."""
    cause = getattr(exc, "os_error", None) or exc.__cause__
    if isinstance(cause, UnsafeUrl):
        return f"refused: the URL {cause}"
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientOSError):
        return "connection failed"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return "request failed"
