"""The HTML dashboard over plain HTTP: what each page says, as of any day, escaped and guarded."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
from fastapi.testclient import TestClient

from app import dashboard
from app.main import create_app
from app.settings import Settings
from tests import builders as b
from tests.conftest import ADMIN_TOKEN

AGREEMENT = "accord"
PAGE = f"/agreements/{AGREEMENT}"
A1_URL = "https://example.org/reports/a1?x=1&y=2"


def seed(client: httpx.Client, agreement_id: str = AGREEMENT) -> dict[str, dict[str, Any]]:
    """Alpha owes Beta 100 detainees by 1 March 2025 (40 reported, about 30 more); Beta owes the same back
    (all 100 reported); Beta accuses Alpha, Alpha denies; later Alpha accuses Beta, upheld."""
    base = f"/v1/agreements/{agreement_id}"
    steps = [
        ("/v1/agreements", b.agreement(agreement_id)),
        (f"{base}/commitments", b.commitment("c1", due_by="2025-03-01", subject="detainees held by Alpha")),
        (f"{base}/commitments", b.commitment("c2", "BB", "AA", reciprocal_of="c1", subject="detainees held by Beta")),
        (f"{base}/commitments", b.commitment("c3", qualifier="unspecified", value=None, action="share_maps",
                                             subject="minefield maps")),
        (f"{base}/stages", b.stage("s1", "2025-02-01", [b.transfer("c1", count=40),
                                                        b.transfer("c2", "BB", "AA", count=100)])),
        (f"{base}/accusations", b.accusation("a1", commitment_id="c1", allegation="Alpha hides the prisoners",
                                             source={"publisher": "Beta Wire", "url": A1_URL})),
        (f"{base}/accusations/a1/responses", b.response(statement="Alpha denies hiding anyone")),
        (f"{base}/stages", b.stage("s2", "2025-02-10", [b.transfer("c1", count=30, basis="approximate")])),
        (f"{base}/accusations", b.accusation("a2", "AA", "BB", allegation="Beta released the wrong people",
                                             made_on="2025-02-12")),
        (f"{base}/accusations/a2/resolution", b.resolution("upheld", note="mediators confirmed it",
                                                           made_on="2025-02-13")),
    ]
    recorded = {}
    for path, body in steps:
        answer = client.post(path, json=body)
        assert answer.status_code == 201, (path, answer.text)
        envelope = answer.json()
        key = next((envelope["data"].get(k) for k in ("accusation_id", "stage_id", "commitment_id")
                    if envelope["data"].get(k)), envelope["type"])
        recorded[f"{envelope['type']}:{key}"] = envelope
    return recorded


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def text(html: str) -> str:
    """The visible text of a page, whitespace collapsed."""
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def section(html: str, heading_id: str) -> str:
    """The markup of the <section> labelled by `heading_id`."""
    start = html.index(f'aria-labelledby="{heading_id}"')
    end = html.find("<section class=\"block\"", start)
    return html[start:end if end != -1 else len(html)]


def page(client: TestClient, path: str = PAGE, **query: str) -> httpx.Response:
    answer = client.get(path, params=query)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer


def test_index_lists_each_agreement_with_its_parties_and_a_one_line_state(client: TestClient) -> None:
    seed(client)
    client.post("/v1/agreements", json=b.agreement("quiet", title="Quiet accord"))
    shown = text(page(client, "/").text)
    assert "Test accord" in shown and "Quiet accord" in shown
    assert "Alpha" in shown and "Beta" in shown
    assert "Alpha 0 of 2 fulfilled, 1 overdue · Beta 1 of 1" in shown
    assert "Alpha no commitments · Beta no commitments" in shown
    assert f'href="{PAGE}"' in page(client, "/").text


def test_agreement_page_shows_figures_statuses_accusations_answers_and_sources(client: TestClient) -> None:
    seed(client)
    html = page(client).text
    shown = text(html)
    for expected in ("Alpha", "Beta", "detainees held by Alpha", "exactly 100", "minefield maps",
                     "an unspecified number", "40 of 100 reported · 40%", "about 30", "Overdue", "Fulfilled",
                     "Pending", "Disputed", "Alpha hides the prisoners", "Alpha denies hiding anyone", "Denied",
                     "Beta released the wrong people", "Resolved: Upheld", "mediators confirmed it", "Open",
                     "Beta Wire", "Test Wire", "due by 1 Mar 2025"):
        assert expected in shown, expected
    compliance = section(html, "commitments-h")
    assert '<progress class="reported" max="100" value="40"' in compliance
    assert 'href="#a-a1"' in compliance  # c1's open accusation
    assert f'<a href="{A1_URL.replace("&", "&amp;")}" rel="noopener noreferrer">Beta Wire</a>' in html
    assert '<input type="date" id="as_of" name="as_of" value="">' in html
    assert f'href="/v1/agreements/{AGREEMENT}/events"' in html
    assert "Stage completed" in text(section(html, "timeline-h"))


def test_reciprocal_commitments_share_one_row_and_the_rest_follow(client: TestClient) -> None:
    seed(client)
    html = section(page(client).text, "commitments-h")
    rows = html.split('<div class="columns cols-2 row"')[1:]
    assert len(rows) == 2
    reciprocal, rest = rows
    assert reciprocal.index('id="c-c1"') < reciprocal.index('id="c-c2"')
    assert 'id="c-c3"' not in reciprocal and 'id="c-c3"' in rest


def test_as_of_shows_the_earlier_record_without_the_later_figures(client: TestClient) -> None:
    seed(client)
    html = page(client, as_of="2025-02-05").text
    shown = text(html)
    assert "40 of 100 reported" in shown
    assert "about 30" not in shown and "Beta released the wrong people" not in shown
    assert "Overdue" not in text(section(html, "commitments-h")) and "In progress" in shown
    assert "Alpha denies hiding anyone" in shown
    assert '<input type="date" id="as_of" name="as_of" value="2025-02-05">' in html
    assert "Showing the record as of 5 Feb 2025" in shown

    before_answer = text(page(client, as_of="2025-02-03").text)
    assert "Alpha hides the prisoners" in before_answer and "Alpha denies hiding anyone" not in before_answer
    assert "No answer on record" in before_answer

    upheld_yet = text(section(page(client, as_of="2025-02-12").text, "accusations-h"))
    assert "Beta released the wrong people" in upheld_yet and "Resolved" not in upheld_yet

    before = text(page(client, as_of="2025-01-01").text)
    assert "Nothing was on record on 1 Jan 2025" in before and "detainees held by Alpha" not in before


def test_an_empty_date_shows_the_latest_record(client: TestClient) -> None:
    seed(client)
    assert "about 30" in text(page(client, as_of="").text)


def test_a_retracted_accusation_leaves_the_page_but_stays_in_the_timeline(client: TestClient) -> None:
    recorded = seed(client)
    client.post(f"/v1/agreements/{AGREEMENT}/corrections",
                json=b.correction(recorded["AccusationMade:a1"]["id"], reason="misattributed"))
    html = page(client).text
    accusations = text(section(html, "accusations-h"))
    assert "Alpha hides the prisoners" not in accusations and "Alpha denies hiding anyone" not in accusations
    timeline = section(html, "timeline-h")
    assert re.search(r'class="event retracted"[^>]*>.*?Alpha hides the prisoners', timeline, re.S)
    assert "Disputed" not in text(section(html, "commitments-h"))


def test_a_long_timeline_shows_its_latest_events_and_says_so(client: TestClient, monkeypatch: Any) -> None:
    seed(client)
    monkeypatch.setattr(dashboard, "TIMELINE_SHOWN", 3)
    timeline = section(page(client).text, "timeline-h")
    assert timeline.count('<li class="event') == 3
    assert "The latest 3 of 10 events" in text(timeline)
    assert "Beta released the wrong people" in text(timeline) and "Agreement concluded" not in text(timeline)
    assert "The latest 3 of 4 events" in text(section(page(client, as_of="2025-01-31").text, "timeline-h"))
    monkeypatch.setattr(dashboard, "TIMELINE_SHOWN", 10)
    assert "The latest" not in text(section(page(client).text, "timeline-h"))


def test_a_bad_date_gets_a_friendly_422_page_and_an_unknown_agreement_a_404(client: TestClient) -> None:
    seed(client)
    for bad in ("2025-02-30", "yesterday", "2025-2-5", "<b>x</b>"):
        answer = client.get(PAGE, params={"as_of": bad})
        assert answer.status_code == 422, bad
        assert answer.headers["content-type"].startswith("text/html")
        assert "is not a date" in text(answer.text)
        assert "<b>x</b>" not in answer.text
    for path, query in (("/agreements/nowhere", {}), ("/agreements/nowhere", {"as_of": "bad"})):
        missing = client.get(path, params=query)
        assert missing.status_code == 404 and "Agreement not found" in missing.text


def test_markup_and_unsafe_urls_from_sources_are_never_live(client: TestClient) -> None:
    evil = "<script>alert(1)</script>"
    client.post("/v1/agreements", json=b.agreement("evil", title=evil, venue='"><img src=x onerror=alert(1)>',
                                                   source={"publisher": evil, "url": "javascript:alert(1)"}))
    client.post("/v1/agreements/evil/commitments",
                json=b.commitment(subject=evil, source={"publisher": "P", "url": " JavaScript:alert(2)"}))
    for path in ("/", "/agreements/evil"):
        answer = page(client, path)
        assert "<script>alert" not in answer.text and "<img src=x" not in answer.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
        assert 'href="javascript' not in answer.text.lower() and 'href=" javascript' not in answer.text.lower()
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_anonymous_readers_see_the_dashboard_only_when_reads_are_public(settings: Settings,
                                                                       anonymous: TestClient) -> None:
    assert anonymous.get("/").status_code == 200
    private = settings.model_copy(update={"public_read": False})
    with TestClient(create_app(private, workers=False)) as closed:
        assert closed.get("/").status_code == 401
        assert closed.get(PAGE).status_code == 401
        closed.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        assert closed.get("/").status_code == 200
        assert closed.get(PAGE).status_code == 404


def test_the_stylesheet_and_script_are_served_and_nothing_else(client: TestClient) -> None:
    css = client.get("/static/dashboard.css")
    js = client.get("/static/dashboard.js")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for name in ("missing.css", "..%2Fdashboard.py", ".hidden.css", "dashboard.py"):
        assert client.get(f"/static/{name}").status_code == 404, name
