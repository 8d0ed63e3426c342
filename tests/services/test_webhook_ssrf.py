"""Where outbound webhooks may not go (CONTRACT 9): refused at registration (invalid params,
`fieldErrors.url`) and again at delivery, with nothing sent anywhere."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import pytest

from rpc.connections import ConnectionRegistry
from rpc.errors import RpcError
from rpc.ssrf import UnsafeUrl, check_url, forbidden_address
from rpc.transport_aiohttp.webhook_client import WebhookClient
from services.container import Services
from tests.services.conftest import FakeClock, alert_input
from tests.services.stores import Backend
from tests.services.webhook_receiver import receiver

UNSAFE = [
    "http://example.com/hook",  # not https
    "ftp://example.com/hook",
    "https://127.0.0.1/hook",
    "https://127.1.2.3:8443/hook",
    "https://localhost/hook",
    "https://10.0.0.5/hook",
    "https://172.16.0.1/hook",
    "https://192.168.1.1/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
    "https://[::1]/hook",
    "https://[fe80::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped loopback
    "https://0.0.0.0/hook",
    "https://100.64.0.1/hook",  # shared address space
    "https://user:password@example.com/hook",
    "https:///no-host",
    "not a url",
]


@pytest.mark.parametrize("url", UNSAFE)
async def test_unsafe_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url, allow_private=False)


async def test_allow_private_also_allows_http() -> None:
    target = await check_url("http://127.0.0.1:8080/x", allow_private=True)
    assert (target.scheme, target.host, target.port) == ("http", "127.0.0.1", 8080)
    with pytest.raises(UnsafeUrl):
        await check_url("ftp://127.0.0.1/x", allow_private=True)


def test_public_addresses_are_allowed() -> None:
    assert not forbidden_address(ipaddress.ip_address("93.184.216.34"))
    assert not forbidden_address(ipaddress.ip_address("2606:2800:220:1:248:1893:25c8:1946"))


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "http://example.com/x"])
async def test_registration_refuses_with_a_field_error(services: Services, url: str) -> None:
    with pytest.raises(RpcError) as refused:
        await services.webhooks.create("h1", url, ["alert.*"], None)
    assert refused.value.data["fieldErrors"].keys() == {"url"}
    assert await services.webhooks.of_hospital("h1") == []


@pytest.fixture
async def services_private(backend: Backend, clock: FakeClock) -> AsyncIterator[Services]:
    config = backend.config(webhook_allow_private=True)
    opened = await Services.open(config, ConnectionRegistry(), clock=clock, background=False)
    try:
        yield opened
    finally:
        await opened.close()


async def test_delivery_checks_again_and_sends_nothing(services_private: Services) -> None:
    """An endpoint registered while private targets were allowed, delivered by a node that
    does not allow them: refused at the connection, recorded, nothing received."""
    async with receiver() as got:
        row = await services_private.webhooks.create("h1", got.url, ["alert.*"], None)
        strict = WebhookClient(allow_private=False, timeout_s=1.0)
        services_private.deliveries.sender = strict
        try:
            await services_private.alerts.create(alert_input(), "device-1")
            assert await services_private.deliveries.run_due() == 1
        finally:
            await strict.close()
        (attempt,) = await services_private.integrations.deliveries(row.webhook_id, 5)
        assert attempt.status == "failed"
        assert attempt.error is not None
        assert attempt.error.startswith("refused")
        assert "127.0.0.1" not in attempt.error
        assert got.requests == []


async def test_a_name_resolving_to_loopback_is_refused_at_the_connection() -> None:
    async with receiver() as got:
        client = WebhookClient(allow_private=False, timeout_s=1.0)
        try:
            url = got.url.replace("127.0.0.1", "localhost").replace("http:", "https:")
            result = await client.post(url, b"{}", {})
        finally:
            await client.close()
        assert not result.ok
        assert result.error is not None
        assert result.error.startswith("refused")
        assert got.requests == []
