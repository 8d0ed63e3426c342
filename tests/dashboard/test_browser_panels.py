"""The dashboard's panels beside the alerts, in a real browser (CONTRACT 12, 10 and 8): staff
presence kept live, who else is viewing an alert (and writing about it), notes on an alert
seen live by another screen, the history on demand, and a patient's vitals arriving as a
device reports them. Notes are clinical text: they must travel only in call bodies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Locator, WebSocket, expect

from tests.dashboard.conftest import Dashboard, Screen, open_screen, token

pytestmark = pytest.mark.slow

SERVICE = token("monitor-gw", "service")


def staff(screen: Screen) -> Locator:
    return screen.page.get_by_role("region", name=re.compile(r"^Staff on shift"))


def vitals(screen: Screen) -> Locator:
    return screen.page.get_by_role("region", name="Patient vitals")


def record_traffic(screen: Screen) -> list[str]:
    """Every request URL, WebSocket frame sent and console message of the page, to look for
    text that must not travel outside a call's body (or at all)."""
    seen: list[str] = []
    screen.page.on("request", lambda request: seen.append(request.url))
    screen.page.on("console", lambda message: seen.append(message.text))

    def on_socket(socket: WebSocket) -> None:
        socket.on("framesent", lambda frame: seen.append(str(frame)))

    screen.page.on("websocket", on_socket)
    return seen


async def test_presence_lists_the_staff_and_a_second_user_who_connects(
    dashboard: Dashboard, browser: Browser
) -> None:
    first = await open_screen(browser, dashboard.url, token("nurse-1"))
    panel = staff(first)
    await expect(panel.get_by_role("listitem")).to_have_count(1)
    await expect(panel.get_by_role("listitem")).to_contain_text(["nurse-1 (you)"])

    second = await open_screen(browser, dashboard.url, token("dr-2", "physician"))
    arrived = panel.get_by_role("listitem").filter(has_text="dr-2")
    await expect(arrived).to_be_visible()
    await expect(arrived).to_contain_text("physician")
    await expect(arrived).to_contain_text("Online")
    await expect(arrived).to_contain_text("1 device")
    await expect(panel.get_by_role("heading")).to_have_text("Staff on shift (2)")
    # A second device of the same user: one row, two devices.
    third = await open_screen(browser, dashboard.url, token("dr-2", "physician"))
    await expect(arrived).to_contain_text("2 devices")
    await expect(panel.get_by_role("listitem")).to_have_count(2)
    # A status set on one device shows everywhere.
    await dashboard.call(
        "presence.set", {"status": "busy", "activity": "Ward round"}, token("dr-2", "physician")
    )
    await expect(arrived).to_contain_text("Busy")
    await expect(arrived).to_contain_text("Ward round")
    # A service account (a device) is never listed.
    await open_screen(browser, dashboard.url, SERVICE)
    await expect(panel.get_by_role("listitem")).to_have_count(2)
    assert first.errors == second.errors == third.errors == []

    # Gone from every device: off the list once the server's 10 s grace has passed.
    await second.context.close()
    await third.context.close()
    await expect(arrived).to_have_count(0, timeout=25_000)
    await expect(panel.get_by_role("heading")).to_have_text("Staff on shift (1)")


async def test_a_note_added_in_one_browser_appears_on_the_alert_in_another(
    dashboard: Dashboard, browser: Browser
) -> None:
    alert = await dashboard.create("Patient distressed, room 5", "high")
    writer = await open_screen(browser, dashboard.url, token("nurse-a"))
    reader = await open_screen(browser, dashboard.url, token("nurse-b"))
    service = await open_screen(browser, dashboard.url, SERVICE)
    traffic = [record_traffic(screen) for screen in (writer, reader, service)]
    note = "Family informed, daughter on her way"

    card = writer.article(alert["title"])
    await card.get_by_role("button", name="Details").click()
    await expect(card.get_by_role("button", name="Details")).to_have_attribute(
        "aria-expanded", "true"
    )
    await card.get_by_label("Note").fill(note)
    await card.get_by_role("button", name="Add note").click()
    await expect(card.get_by_label("Note")).to_have_value("")
    await expect(card).to_contain_text(f"Latest note, nurse-a: {note}")

    # Live on the other screens, without opening anything.
    other = reader.article(alert["title"])
    await expect(other).to_contain_text(f"Latest note, nurse-a: {note}")
    await expect(service.article(alert["title"])).to_contain_text(note)

    # The history on demand: every event of the alert, the note with its author.
    await other.get_by_role("button", name="Details").click()
    await other.get_by_role("button", name="Show history").click()
    history = other.get_by_role("list", name="History")
    await expect(history.get_by_role("listitem")).to_have_count(2)
    await expect(history.get_by_role("listitem").nth(0)).to_contain_text("Raised by device-1")
    await expect(history.get_by_role("listitem").nth(1)).to_contain_text(f"Note by nurse-a: {note}")
    # ... and events after it was opened join it live.
    await dashboard.call("healthcare.acknowledgeAlert", {"alertId": alert["id"]}, token("nurse-c"))
    await expect(history.get_by_role("listitem")).to_have_count(3)
    await expect(history.get_by_role("listitem").nth(2)).to_contain_text("Acknowledged by nurse-c")

    # Keyboard: Ctrl+Enter in the note adds it.
    await other.get_by_label("Note").fill("Pain relief given")
    await other.get_by_label("Note").press("Control+Enter")
    await expect(history.get_by_role("listitem")).to_have_count(4)
    await expect(card).to_contain_text("Latest note, nurse-b: Pain relief given")

    for seen in traffic:
        assert not any(note in line and "addNote" not in line for line in seen)
        assert not any(note in line for line in seen if line.startswith("http"))
    assert writer.errors == reader.errors == service.errors == []


async def test_a_nurse_sees_the_note_form_and_a_service_token_does_not(
    dashboard: Dashboard, browser: Browser
) -> None:
    alert = await dashboard.create("Pump occlusion, bed 3", "medium")
    nurse = await open_screen(browser, dashboard.url, token("nurse-f"))
    card = nurse.article(alert["title"])
    await card.get_by_role("button", name="Details").click()
    await expect(card.get_by_label("Note")).to_be_visible()
    await expect(card.get_by_role("button", name="Add note")).to_be_visible()

    service = await open_screen(browser, dashboard.url, SERVICE)
    frames = record_traffic(service)
    read_only = service.article(alert["title"])
    await read_only.get_by_role("button", name="Details").click()
    await expect(read_only.get_by_role("button", name="Show history")).to_be_visible()
    await expect(read_only).to_contain_text("Also viewing: nurse-f")
    await expect(read_only.get_by_label("Note")).to_have_count(0)
    await expect(read_only.get_by_role("button", name="Add note")).to_have_count(0)
    await expect(
        read_only.get_by_role("group", name="Actions").get_by_role("button")
    ).to_have_count(0)
    assert not any("presence.viewing" in frame for frame in frames)  # read-only: no looks
    await expect(card).to_contain_text("No one else is viewing this alert.")
    assert nurse.errors == service.errors == []


async def test_the_viewers_line_shows_another_user_viewing_and_writing(
    dashboard: Dashboard, browser: Browser
) -> None:
    alert = await dashboard.create("Chest pain, bay 6", "critical")
    first = await open_screen(browser, dashboard.url, token("nurse-v"))
    second = await open_screen(browser, dashboard.url, token("dr-w", "physician"))
    mine, theirs = first.article(alert["title"]), second.article(alert["title"])

    await mine.get_by_role("button", name="Details").click()
    await expect(mine).to_contain_text("No one else is viewing this alert.")
    await theirs.get_by_role("button", name="Details").click()
    await expect(mine).to_contain_text("Also viewing: dr-w")
    await expect(theirs).to_contain_text("Also viewing: nurse-v")

    await theirs.get_by_label("Note").press_sequentially("ECG")
    await expect(mine).to_contain_text("Also viewing: dr-w (writing a note)")
    # The note added, they are no longer writing; the next note's first key says so again.
    await theirs.get_by_label("Note").press_sequentially(" normal")
    await theirs.get_by_role("button", name="Add note").click()
    await expect(mine).to_contain_text("Latest note, dr-w: ECG normal")
    await expect(mine.locator(".viewers")).to_have_text("Also viewing: dr-w")
    await theirs.get_by_label("Note").press_sequentially("R")
    await expect(mine).to_contain_text("Also viewing: dr-w (writing a note)", timeout=2000)

    # Closing the alert (the keyboard's Escape) stops the look at once, not after 30 s.
    await theirs.get_by_label("Note").press("Escape")
    await expect(theirs.get_by_role("button", name="Details")).to_be_focused()
    await expect(theirs.get_by_role("button", name="Details")).to_have_attribute(
        "aria-expanded", "false"
    )
    await expect(mine).to_contain_text("No one else is viewing this alert.")
    assert first.errors == second.errors == []


async def report(dashboard: Dashboard, patient: str, **values: float) -> Any:
    readings = [{"kind": kind, "value": value} for kind, value in values.items()]
    return await dashboard.call(
        "vitals.report",
        {"hospitalId": "h1", "patientId": patient, "deviceId": "mon-12", "readings": readings},
        SERVICE,
    )


async def test_a_patients_vitals_appear_as_a_device_reports_them(
    dashboard: Dashboard, browser: Browser, tmp_path: Path
) -> None:
    await dashboard.call(
        "devices.reportStatus",
        {"hospitalId": "h1", "deviceId": "mon-12", "status": "online", "patientId": "p-12"},
        SERVICE,
    )
    await report(dashboard, "p-12", heart_rate=88, spo2=97)
    await dashboard.create("Bed 12 call button", "medium", location="Ward 3, bed 12")
    fall = await dashboard.create("Fall in room 4", "high", location="Room 4")
    screen = await open_screen(browser, dashboard.url, token("charge-1", "charge_nurse"))
    await open_screen(browser, dashboard.url, token("dr-2", "physician"))
    await dashboard.create("SpO2 low, bed 9", "critical", location="Ward 3, bed 9", patientId="p-9")
    await dashboard.call(
        "healthcare.addNote",
        {"alertId": fall["id"], "text": "Conscious, no head injury; physio informed"},
        token("nurse-4"),
    )
    panel = vitals(screen)
    # The patients the hospital's monitors are assigned to are offered.
    await expect(panel.locator("datalist option[value='p-12']")).to_have_count(1)

    await panel.get_by_label("Patient", exact=True).fill("p-12")
    await panel.get_by_role("button", name="Show vitals").click()
    heart = panel.get_by_role("group", name="Heart rate")
    await expect(heart).to_contain_text("88 bpm")
    await expect(panel.get_by_role("group", name="SpO₂")).to_contain_text("97 %")

    await report(dashboard, "p-12", heart_rate=92)
    await expect(heart).to_contain_text("92 bpm")
    await report(dashboard, "p-12", heart_rate=95, temperature=37.4)
    await expect(heart).to_contain_text("95 bpm")
    await expect(panel.get_by_role("group", name="Temperature")).to_contain_text("37.4 °C")
    chart = heart.get_by_role("img")
    await expect(chart).to_have_attribute(
        "aria-label", "Heart rate, last 3 readings, from 88 to 95 bpm"
    )
    await expect(chart.locator("polyline")).to_have_count(1)
    # Another patient's readings stay off this one's panel.
    await report(dashboard, "p-13", heart_rate=70)
    await report(dashboard, "p-12", spo2=96)
    await expect(panel.get_by_role("group", name="SpO₂")).to_contain_text("96 %")
    await expect(heart).to_contain_text("95 bpm")

    shot = tmp_path / "dashboard.png"
    await screen.page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")

    # From an alert's card to its patient's vitals.
    card = screen.article("SpO2 low, bed 9")
    await card.get_by_role("button", name="Details").click()
    await card.get_by_role("button", name="Patient vitals").click()
    await expect(panel.get_by_label("Patient", exact=True)).to_have_value("p-9")
    await expect(panel.get_by_label("Patient", exact=True)).to_be_focused()
    await expect(panel).to_contain_text("No readings yet for p-9")
    await expect(heart).to_have_count(0)
    await report(dashboard, "p-9", spo2=86)
    await expect(panel.get_by_role("group", name="SpO₂")).to_contain_text("86 %")
    # An alert with no patient has no such button.
    fall_card = screen.article("Fall in room 4")
    await fall_card.get_by_role("button", name="Details").click()
    await expect(fall_card.get_by_role("button", name="Show history")).to_be_visible()
    await expect(fall_card.get_by_role("button", name="Patient vitals")).to_have_count(0)
    assert screen.errors == []
    assert screen.console_errors == []  # the SVG chart draws under the CSP


async def test_without_a_websocket_the_vitals_are_polled(
    dashboard: Dashboard, browser: Browser
) -> None:
    await report(dashboard, "p-30", heart_rate=71)
    screen = await open_screen(browser, dashboard.url, token("nurse-p"), websocket=False)
    await expect(screen.page.get_by_role("status")).to_contain_text("polling")
    # Presence has no HTTP fallback: the panel says so instead of looking live.
    await expect(staff(screen)).to_contain_text("Not live while polling")
    panel = vitals(screen)
    await panel.get_by_label("Patient", exact=True).fill("p-30")
    await panel.get_by_label("Patient", exact=True).press("Enter")
    heart = panel.get_by_role("group", name="Heart rate")
    await expect(heart).to_contain_text("71 bpm")
    await report(dashboard, "p-30", heart_rate=76)
    await expect(heart).to_contain_text("76 bpm", timeout=12_000)  # vitals.latest every 5 s
    assert screen.errors == []
