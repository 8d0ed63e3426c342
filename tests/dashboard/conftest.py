"""The dashboard's browser tests: a real server process, a real chromium (browser.py)."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocketRoute,
    async_playwright,
    expect,
)

from rpc.auth import AuthConfig, issue_token
from tests.dashboard.browser import chromium_path
from tests.integration.server import ServerProcess, start_server

SECRET = "dashboard-test-secret-0123456789-abcdef"
# Generous for a loaded 2-core machine; a passing run waits far less (Playwright polls).
expect.set_options(timeout=10_000)


def token(sub: str, role: str = "nurse", hospitals: tuple[str, ...] = ("h1",)) -> str:
    return issue_token(
        AuthConfig(SECRET),
        sub=sub,
        role=role,
        hospitals=list(hospitals),
        ttl_seconds=3600,
        now=time.time(),
    )


def free_port() -> int:
    """A port to restart the server on (a restarted server must come back where it was)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Dashboard:
    """A server process, restartable on the same port and data, and an API client for it."""

    cwd: Path
    port: int
    process: ServerProcess | None = None
    http: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.process = await start_server(
            self.cwd, JWT_SECRET=SECRET, WEBSOCKET_PORT=str(self.port)
        )

    async def kill(self) -> None:
        """A crash, not a shutdown: no goodbye frames, the sockets just go."""
        assert self.process is not None
        self.process.proc.kill()
        await self.process.proc.wait()
        self.process = None

    async def call(self, method: str, params: dict[str, Any], as_token: str) -> Any:
        assert self.http is not None
        async with self.http.post(
            self.url + "api/trpc",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers={"Authorization": f"Bearer {as_token}"},
        ) as response:
            body = await response.json()
        assert "result" in body, body
        return body["result"]

    async def create(self, title: str, priority: str = "high", **extra: str) -> dict[str, Any]:
        params = {"hospitalId": "h1", "type": "call_button", "priority": priority, "title": title}
        return await self.call(  # type: ignore[no-any-return]
            "healthcare.createAlert", {**params, **extra}, token("device-1", "service")
        )


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    chromium_path()  # no server to start when there is no browser to test it with
    board = Dashboard(tmp_path, free_port())
    await board.start()
    async with aiohttp.ClientSession() as http:
        board.http = http
        try:
            yield board
        finally:
            if board.process is not None:
                await board.process.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Screen:
    """One browser context showing the dashboard, with what went wrong in it recorded."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def article(self, title: str) -> Any:
        return self.page.get_by_role("article", name=title, exact=True)

    async def expect_live(self) -> None:
        await expect(self.page.get_by_role("status")).to_contain_text("live")


async def refuse(websocket: WebSocketRoute) -> None:
    await websocket.close(code=1011, reason="refused by the test")


async def open_screen(
    browser: Browser, url: str, with_token: str | None = None, *, websocket: bool = True
) -> Screen:
    """A new browser context on the dashboard, signed in through a token link if one is given;
    `websocket=False`: every WebSocket it opens is closed at once (a proxy that drops them)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    if not websocket:
        await context.route_web_socket(re.compile(r"/api/trpc$"), refuse)
    page = await context.new_page()
    screen = Screen(context, page)
    page.on("pageerror", lambda error: screen.errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            screen.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    await page.goto(url if with_token is None else f"{url}#token={with_token}")
    if with_token is not None and websocket:
        await screen.expect_live()
    return screen
