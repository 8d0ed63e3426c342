"""The dashboard in a real browser (CONTRACT 12): sign-in, alerts arriving live, actions as
the role allows, keyboard-only use, and the page working under its Content-Security-Policy.
The names used to find things are the contract's: "Token", "Hospital", articles named by the
alert title, buttons "Acknowledge", "Escalate", "Resolve", "Mute"/"Unmute", role status."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, expect

from tests.dashboard.conftest import Dashboard, open_screen, token

pytestmark = pytest.mark.slow


def actions(card: Locator) -> Locator:
    """The buttons that act on an alert (a card also has Details, which only shows more)."""
    return card.get_by_role("group", name="Actions").get_by_role("button")


async def test_sign_in_with_a_pasted_token_and_with_a_token_link(
    dashboard: Dashboard, browser: Browser
) -> None:
    screen = await open_screen(browser, dashboard.url)
    page = screen.page
    await page.get_by_label("Token").fill("not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("The token was refused")

    await page.get_by_label("Token").fill(token("charge-1", "charge_nurse", ("h1", "h2")))
    await page.get_by_role("button", name="Sign in").click()
    await screen.expect_live()
    chooser = page.get_by_label("Hospital")
    await expect(chooser.locator("option")).to_have_text(["h1", "h2"])
    await expect(chooser).to_have_value("h1")
    await expect(page.get_by_label("Token")).to_be_hidden()

    # A link from `issue_token.py --url`: the token goes to sessionStorage, not the address.
    minted = token("nurse-2")
    link = await open_screen(browser, dashboard.url, minted)
    assert "token" not in link.page.url
    assert await link.page.evaluate("sessionStorage.getItem('alertwire.token')") == minted
    await link.page.reload()  # still signed in: the tab keeps it
    await link.expect_live()
    await link.page.get_by_role("button", name="Sign out").click()
    await expect(link.page.get_by_label("Token")).to_be_visible()
    assert await link.page.evaluate("sessionStorage.length") == 0
    assert screen.errors == link.errors == []


async def test_alerts_arrive_live_most_urgent_first_with_a_cue_for_critical(
    dashboard: Dashboard, browser: Browser, tmp_path: Path
) -> None:
    await dashboard.create("Bed 4 call button", "low", location="Ward 3, bed 4")
    earlier = await dashboard.create("Fall in room 12", "high", location="Room 12")
    gone = await dashboard.create("Resolved before the page opened", "medium")
    await dashboard.call("healthcare.resolveAlert", {"alertId": gone["id"]}, token("nurse-9"))
    screen = await open_screen(browser, dashboard.url, token("nurse-1"))
    page = screen.page
    await expect(screen.article("Fall in room 12")).to_be_visible()
    await expect(screen.article("Resolved before the page opened")).to_have_count(0)
    await expect(screen.article("Fall in room 12")).to_contain_text(re.compile(r"ago|just now"))

    started = time.monotonic()
    await dashboard.create("Cardiac arrest, bay 2", "critical", location="ICU bay 2")
    await expect(screen.article("Cardiac arrest, bay 2")).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0 + 0.5  # the create's own round trip included
    banner = page.locator("#critical-banner")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("New critical alert: Cardiac arrest, bay 2")
    await expect(page.locator("[aria-live=assertive]")).to_contain_text("Cardiac arrest, bay 2")
    await dashboard.create("Drip finished, bed 7", "medium")
    await expect(page.locator("[aria-live=polite]")).to_contain_text("Drip finished, bed 7")

    titles = page.get_by_role("article").locator("h3")
    await expect(titles).to_have_text(
        [
            "Cardiac arrest, bay 2",
            "Fall in room 12",
            "Drip finished, bed 7",
            "Bed 4 call button",
        ]
    )
    await page.get_by_role("button", name="Mute").click()
    await expect(page.get_by_role("button", name="Unmute")).to_be_visible()

    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")

    # Resolved elsewhere: gone from the page.
    await dashboard.call("healthcare.resolveAlert", {"alertId": earlier["id"]}, token("nurse-9"))
    await expect(screen.article("Fall in room 12")).to_have_count(0)
    assert screen.errors == []


async def test_acknowledge_in_one_browser_shows_in_another(
    dashboard: Dashboard, browser: Browser
) -> None:
    alert = await dashboard.create("Patient calling, room 8", "high")
    first = await open_screen(browser, dashboard.url, token("nurse-a"))
    second = await open_screen(browser, dashboard.url, token("nurse-b"))
    card = first.article(alert["title"])
    await card.get_by_role("button", name="Acknowledge").click()
    await expect(card).to_contain_text("Acknowledged by nurse-a")

    other = second.article(alert["title"])
    await expect(other).to_contain_text("Acknowledged by nurse-a", timeout=1000)
    await expect(other.get_by_role("button", name="Acknowledge")).to_have_count(0)
    await expect(actions(other)).to_have_text(["Escalate", "Resolve"])

    await other.get_by_role("button", name="Resolve").click()
    await expect(card).to_have_count(0)
    await expect(other).to_have_count(0)
    assert first.errors == second.errors == []


async def test_buttons_follow_the_role_and_a_service_token_is_read_only(
    dashboard: Dashboard, browser: Browser
) -> None:
    await dashboard.create("Low battery, pump 3", "low")
    nurse = await open_screen(browser, dashboard.url, token("nurse-1", "nurse"))
    card = nurse.article("Low battery, pump 3")
    # Nurses acknowledge, escalate and resolve; nothing else (updateAlert is not theirs).
    await expect(actions(card)).to_have_text(["Acknowledge", "Escalate", "Resolve"])

    service = await open_screen(browser, dashboard.url, token("integration-1", "service"))
    read_only = service.article("Low battery, pump 3")
    await expect(read_only).to_be_visible()
    await expect(actions(read_only)).to_have_count(0)
    await expect(read_only.get_by_role("button", name="Add note")).to_have_count(0)
    await dashboard.create("Door alarm, exit B", "medium")
    await expect(service.article("Door alarm, exit B")).to_be_visible()
    await expect(actions(service.page.get_by_role("article"))).to_have_count(0)
    await expect(service.page.get_by_text("read-only")).to_be_visible()
    assert nurse.errors == service.errors == []


async def test_keyboard_alone_signs_in_and_acknowledges(
    dashboard: Dashboard, browser: Browser
) -> None:
    alert = await dashboard.create("Keyboard test alert", "high")
    screen = await open_screen(browser, dashboard.url)
    page = screen.page
    await expect(page.get_by_label("Token")).to_be_focused()
    await page.keyboard.type(token("nurse-k"))
    await page.keyboard.press("Enter")
    await screen.expect_live()

    target = screen.article(alert["title"]).get_by_role("button", name="Acknowledge")
    await expect(target).to_be_visible()
    for _ in range(20):  # Tab through the page until the alert's button has the focus
        await page.keyboard.press("Tab")
        if await target.evaluate("button => button === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Acknowledge button")
    await page.keyboard.press("Enter")
    card = screen.article(alert["title"])
    await expect(card).to_contain_text("Acknowledged by nurse-k")
    # The focus stays on the card (on its next action), not thrown back to the page's top.
    await expect(card.get_by_role("button", name="Escalate")).to_be_focused()
    assert screen.errors == []


async def test_the_page_works_under_its_content_security_policy(
    dashboard: Dashboard, browser: Browser
) -> None:
    screen = await open_screen(browser, dashboard.url)
    response = await screen.page.goto(dashboard.url)
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"

    await screen.page.get_by_label("Token").fill(token("nurse-c"))
    await screen.page.keyboard.press("Enter")
    await screen.expect_live()
    await dashboard.create("Under the policy", "medium")
    await expect(screen.article("Under the policy")).to_be_visible()
    await expect(screen.page.locator("#m-active")).to_have_text("1")  # live metrics
    assert screen.errors == []
    assert screen.console_errors == []  # a CSP violation is reported here
