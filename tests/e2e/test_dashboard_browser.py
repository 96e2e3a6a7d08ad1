"""The dashboard in headless Chromium against a real uvicorn server: look, change the date, look again."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.main import create_app
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN, BACKENDS, drop_postgres_database, fresh_postgres_database
from tests.e2e.test_dashboard_html import A1_URL, PAGE, seed

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium (Debian's, never a downloaded one) for the whole module."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _serve(settings: Settings) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on a free local port over a fresh database, seeded through the HTTP API."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('browser')}/pactwatch.db"
    else:
        url, name = fresh_postgres_database()
    try:
        for base in _serve(Settings(database_url=url, admin_token=ADMIN_TOKEN)):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as api:
                seed(api)
            yield base
    finally:
        if name is not None:
            drop_postgres_database(name)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    yield context.new_page()
    context.close()


def test_the_index_states_each_sides_compliance_and_links_to_the_agreement(server: str, page: Page) -> None:
    page.goto(server + "/")
    item = page.locator(".agreement-item").filter(has_text="Test accord")
    expect(item.locator(".state")).to_have_text("Alpha 0 of 2 fulfilled, 1 overdue · Beta 1 of 1")
    expect(item).to_contain_text("Alpha")
    expect(item).to_contain_text("Beta")
    item.get_by_role("link", name="Test accord").click()
    page.wait_for_url(server + PAGE)
    expect(page.get_by_role("heading", level=1)).to_have_text("Test accord")


def test_the_agreement_page_shows_both_sides_their_figures_and_what_was_said(server: str, page: Page) -> None:
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(server + PAGE)

    expect(page.get_by_role("heading", name="Alpha AA")).to_be_visible()
    expect(page.get_by_role("heading", name="Beta BB")).to_be_visible()
    c1, c2 = page.locator("#c-c1"), page.locator("#c-c2")
    expect(c1).to_contain_text("detainees held by Alpha")
    expect(c1).to_contain_text("exactly 100")
    expect(c1).to_contain_text("40 of 100 reported · 40%")
    expect(c1.locator(".delivered")).to_contain_text("about 30")
    expect(c1.locator(".badge-overdue")).to_have_text("! Overdue")
    expect(c1).to_have_attribute("data-status", "overdue")
    expect(c1.locator(".badge-disputed")).to_be_visible()
    expect(c1.get_by_role("progressbar")).to_have_attribute("value", "40")
    expect(c2.locator(".badge-fulfilled")).to_have_text("✓ Fulfilled")
    expect(page.locator("#c-c3 .badge-pending")).to_be_visible()
    left, right = c1.bounding_box(), c2.bounding_box()
    assert left and right and left["y"] == right["y"] and left["x"] + left["width"] <= right["x"]

    a1 = page.locator("#a-a1")
    expect(a1).to_contain_text("Alpha hides the prisoners")
    expect(a1.locator(".answer")).to_contain_text("Denied")
    expect(a1.locator(".answer")).to_contain_text("Alpha denies hiding anyone")
    expect(a1.locator(".badge-open")).to_have_text("● Open")
    expect(page.locator("#a-a2 .badge-resolved")).to_have_text("■ Resolved: Upheld")
    source = a1.get_by_role("link", name="Beta Wire")
    expect(source).to_have_attribute("href", A1_URL)
    expect(source).to_have_attribute("rel", "noopener noreferrer")
    expect(page.locator(".timeline .event")).to_have_count(10)
    expect(page.get_by_role("link", name="Raw events (JSON)")).to_have_attribute(
        "href", "/v1/agreements/accord/events")
    expect(page.get_by_label("Show the record as of")).to_have_attribute("type", "date")
    assert page.locator("link[rel=stylesheet]").evaluate("link => link.sheet.cssRules.length") > 0
    assert problems == []


def test_changing_the_date_shows_the_record_of_that_day(server: str, page: Page) -> None:
    page.goto(server + PAGE)
    page.get_by_label("Show the record as of").fill("2025-02-05")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(server + PAGE + "?as_of=2025-02-05")
    expect(page.get_by_role("status")).to_contain_text("Showing the record as of 5 Feb 2025")
    expect(page.get_by_label("Show the record as of")).to_have_value("2025-02-05")
    c1 = page.locator("#c-c1")
    expect(c1).to_contain_text("40 of 100 reported")
    expect(c1.locator(".delivered")).not_to_contain_text("about 30")
    expect(c1.locator(".badge-in_progress")).to_be_visible()
    expect(page.locator("#a-a1 .answer")).to_contain_text("Alpha denies hiding anyone")
    expect(page.locator("#a-a2")).to_have_count(0)

    page.goto(server + PAGE + "?as_of=2025-02-03")
    expect(page.locator("#a-a1")).to_contain_text("No answer on record")
    page.get_by_role("link", name="as of 1 Feb 2025").click()
    page.wait_for_url(server + PAGE + "?as_of=2025-02-01")
    expect(page.locator("#a-a1")).to_have_count(0)

    page.get_by_label("Show the record as of").fill("")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(server + PAGE)
    expect(page.locator("#c-c1 .delivered")).to_contain_text("about 30")


def test_on_a_phone_the_sides_stack_and_nothing_scrolls_sideways(server: str, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    try:
        phone = context.new_page()
        phone.goto(server + PAGE)
        first, second = phone.locator("#c-c1").bounding_box(), phone.locator("#c-c2").bounding_box()
        assert first and second and second["y"] >= first["y"] + first["height"]
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        expect(phone.get_by_label("Show the record as of")).to_be_visible()
    finally:
        context.close()


def test_a_bad_date_gets_a_friendly_page_with_the_date_control(server: str, page: Page) -> None:
    answer = page.goto(server + PAGE + "?as_of=2025-02-30")
    assert answer is not None and answer.status == 422
    expect(page.get_by_role("alert")).to_contain_text("is not a date")
    page.get_by_label("Show the record as of").fill("2025-02-05")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(server + PAGE + "?as_of=2025-02-05")
    expect(page.locator("#c-c1")).to_contain_text("40 of 100 reported")
