"""The dashboard across a server crash (CONTRACT 12): it shows reconnecting, then live again,
and resumes by lastEventId so that alerts raised while it was away appear once each; when the
server cannot replay from its position (`stream.reset`) it loads the list afresh."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, Page, expect

from tests.dashboard.conftest import Dashboard, open_screen, token

pytestmark = pytest.mark.slow

# Every text the status element shows, in order, kept by the page itself: a state that lasts
# less than one of Playwright's polls is still seen.
RECORD_STATUS = """() => {
  const status = document.querySelector('[role=status]');
  window.statusSeen = [status.textContent];
  new MutationObserver(() => window.statusSeen.push(status.textContent))
    .observe(status, { childList: true, characterData: true, subtree: true });
}"""
RECONNECT_S = 30_000  # the client's back-off doubles from 1 s; the server takes a while to start


async def seen_statuses(page: Page) -> list[str]:
    return await page.evaluate("window.statusSeen")  # type: ignore[no-any-return]


async def test_after_a_crash_it_reconnects_and_shows_what_was_missed_once(
    dashboard: Dashboard, browser: Browser
) -> None:
    before = await dashboard.create("Before the crash", "high")
    screen = await open_screen(browser, dashboard.url, token("nurse-r"))
    page = screen.page
    await expect(screen.article("Before the crash")).to_be_visible()
    await page.evaluate(RECORD_STATUS)

    await dashboard.kill()
    await page.wait_for_function("() => window.statusSeen.some((t) => t.includes('reconnecting'))")
    await dashboard.start()
    # Raised (and changed) while the page has no connection, or as it comes back.
    meanwhile = [f"Raised meanwhile {n}" for n in range(1, 4)]
    for title in meanwhile:
        await dashboard.create(title, "medium")
    await dashboard.call("healthcare.acknowledgeAlert", {"alertId": before["id"]}, token("nurse-s"))

    await expect(page.get_by_role("status")).to_contain_text("live", timeout=RECONNECT_S)
    for title in meanwhile:
        await expect(screen.article(title)).to_have_count(1)
    await expect(screen.article("Before the crash")).to_contain_text("Acknowledged by nurse-s")
    await expect(page.get_by_role("article")).to_have_count(4)

    await dashboard.create("After the restart", "high")
    await expect(screen.article("After the restart")).to_be_visible(timeout=1000)
    await expect(page.get_by_role("article")).to_have_count(5)

    seen = await seen_statuses(page)
    first_reconnecting = next(i for i, t in enumerate(seen) if "reconnecting" in t)
    assert any("live" in t for t in seen[first_reconnecting:]), seen
    assert screen.errors == []


async def test_when_the_server_cannot_replay_the_list_is_loaded_afresh(
    dashboard: Dashboard, browser: Browser
) -> None:
    for title in ("Old alert one", "Old alert two"):
        await dashboard.create(title, "low")
    screen = await open_screen(browser, dashboard.url, token("nurse-t"))
    page = screen.page
    await expect(page.get_by_role("article")).to_have_count(2)

    # The server comes back with an empty store: the page's last event id is a position the
    # new log never had, so the resumed stream starts with `stream.reset`.
    await dashboard.kill()
    for database in (dashboard.cwd / "data").glob("alertwire.db*"):
        database.unlink()
    await dashboard.start()

    await expect(page.get_by_role("status")).to_contain_text("live", timeout=RECONNECT_S)
    await expect(page.get_by_role("article")).to_have_count(0)  # the new snapshot
    await dashboard.create("After the reset", "high")
    await expect(screen.article("After the reset")).to_be_visible()
    await expect(page.get_by_role("article")).to_have_count(1)
    assert screen.errors == []


async def test_without_a_websocket_it_polls_over_http(
    dashboard: Dashboard, browser: Browser
) -> None:
    await dashboard.create("Before polling", "low")
    screen = await open_screen(browser, dashboard.url, token("nurse-p"), websocket=False)
    await expect(screen.page.get_by_role("status")).to_contain_text("polling")
    await expect(screen.article("Before polling")).to_be_visible()
    await dashboard.create("Seen by polling", "high")
    # getAlertEvents every 5 s from the snapshot's position
    await expect(screen.article("Seen by polling")).to_have_count(1, timeout=12_000)
    await expect(screen.page.get_by_role("article")).to_have_count(2)
    await expect(screen.page.locator("#m-active")).to_have_text("2", timeout=12_000)
    assert screen.errors == []
