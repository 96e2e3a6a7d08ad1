"""The Istanbul agreement of June 2025, as the Moscow Times report of 9 June tells it."""
from __future__ import annotations

import json
from typing import Any

from app.runtime import Runtime
from domain.errors import AgreementNotFound

AGREEMENT_ID = "istanbul-2025"
REPORT_URL = ("https://www.themoscowtimes.com/2025/06/09/"
              "russia-and-ukraine-begin-pow-exchange-with-young-soldiers-a89389")


def _source(quote: str, channel: str | None = None) -> dict[str, Any]:
    return {"publisher": "The Moscow Times", "url": REPORT_URL, "channel": channel,
            "published_on": "2025-06-09", "quote": quote}


AGREED = ("both sides agreed to release all wounded troops and captured soldiers under the age of 25 — "
          "more than 1,000 people on each side")
BODIES_QUOTE = "They also pledged to exchange the bodies of 6,000 fallen soldiers each."

STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("agreement", "", {
        "id": AGREEMENT_ID, "title": "Istanbul prisoner-exchange agreement", "concluded_on": "2025-06-02",
        "venue": "Istanbul", "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
        "mediators": ["Türkiye"],
        "source": _source("During negotiations in Istanbul last Monday, " + AGREED + "."),
    }),
    ("commitment", "", {
        "commitment_id": "ru-release-prisoners", "obligor": "RU", "beneficiary": "UA",
        "action": "release_prisoners", "subject": "wounded and captured soldiers under 25",
        "quantity": {"qualifier": "at_least", "value": 1001}, "source": _source(AGREED),
    }),
    ("commitment", "", {
        "commitment_id": "ua-release-prisoners", "obligor": "UA", "beneficiary": "RU",
        "action": "release_prisoners", "subject": "wounded and captured soldiers under 25",
        "quantity": {"qualifier": "at_least", "value": 1001}, "reciprocal_of": "ru-release-prisoners",
        "source": _source(AGREED),
    }),
    ("commitment", "", {
        "commitment_id": "ru-return-bodies", "obligor": "RU", "beneficiary": "UA", "action": "return_bodies",
        "subject": "bodies of fallen soldiers", "quantity": {"qualifier": "exact", "value": 6000},
        "source": _source(BODIES_QUOTE),
    }),
    ("commitment", "", {
        "commitment_id": "ua-return-bodies", "obligor": "UA", "beneficiary": "RU", "action": "return_bodies",
        "subject": "bodies of fallen soldiers", "quantity": {"qualifier": "exact", "value": 6000},
        "reciprocal_of": "ru-return-bodies", "source": _source(BODIES_QUOTE),
    }),
    ("claim", "", {
        "claim_id": "ru-list-640", "party": "RU", "commitment_id": "ru-release-prisoners",
        "statement": "Moscow submitted a list of 640 Ukrainian POWs for release", "count": 640,
        "made_on": "2025-06-07",
        "source": _source("Russian lead negotiator Vladimir Medinsky said Saturday that Moscow had submitted "
                          "a list of 640 Ukrainian POWs for release."),
    }),
    ("accusation", "", {
        "accusation_id": "ru-no-date-set", "accuser": "RU", "accused": "UA",
        "commitment_id": "ua-release-prisoners", "allegation": "Kyiv has not set a date for the POW swap",
        "made_on": "2025-06-07",
        "source": _source("On Saturday, Russia's Defense Ministry accused Kyiv of not setting a date for the "
                          "POW swap.", "Telegram"),
    }),
    ("accusation", "", {
        "accusation_id": "ua-dirty-games", "accuser": "UA", "accused": "RU",
        "commitment_id": "ru-release-prisoners",
        "allegation": "Moscow plays “dirty games” and does not adhere to the agreed terms",
        "made_on": "2025-06-07",
        "source": _source("Ukraine, in its turn, accused Moscow of “dirty games” and not adhering to the "
                          "agreed terms."),
    }),
    ("accusation", "", {
        "accusation_id": "ru-bodies-not-collected", "accuser": "RU", "accused": "UA",
        "commitment_id": "ru-return-bodies",
        "allegation": "Ukraine did not show up to collect the bodies of its fallen soldiers",
        "made_on": "2025-06-07",
        "source": _source("Medinsky claimed Ukraine did not show up to collect the bodies of its fallen "
                          "soldiers."),
    }),
    ("response", "ru-no-date-set", {
        "by": "UA", "stance": "disputed_facts",
        "statement": "No date had been agreed, and the list of names Russia provided did not match the "
                     "terms of the agreement.",
        "made_on": "2025-06-07",
        "source": _source("Ukraine's Coordination Headquarters for the Treatment of Prisoners of War said no "
                          "date had been agreed and that the list of names Russia provided did not match "
                          "the terms of the agreement."),
    }),
    ("accusation", "", {
        "accusation_id": "ru-obligations-unmet", "accuser": "RU", "accused": "UA",
        "allegation": "Ukraine is failing to meet its obligations under the agreements",
        "made_on": "2025-06-09",
        "source": _source("The Kremlin said earlier on Monday it was ready to follow through on the agreements, "
                          "while accusing Ukraine of failing to meet its obligations."),
    }),
    ("stage", "", {
        "stage_id": "stage-1", "completed_on": "2025-06-09",
        "description": "First stage: soldiers under 25; neither side disclosed the number",
        "transfers": [
            {"commitment_id": "ua-release-prisoners", "from": "UA", "to": "RU", "count_basis": "undisclosed"},
            {"commitment_id": "ru-release-prisoners", "from": "RU", "to": "UA", "count_basis": "undisclosed"},
        ],
        "source": _source("The first group of Russian servicemen under the age of 25 was returned from the "
                          "territory controlled by the Kyiv regime ... Russia said it had returned “a similar "
                          "number” of Ukrainian troops.", "Telegram"),
    }),
]


def load(runtime: Runtime) -> bool:
    """Record the demo unless the store has it already; True when it was recorded now."""
    try:
        runtime.app.get_agreement(AGREEMENT_ID)
        return False
    except AgreementNotFound:
        pass
    writer = runtime.writer
    for kind, accusation_id, body in STEPS:
        raw = json.dumps(body).encode()
        if kind == "agreement":
            writer.conclude(raw, "demo")
        else:
            writer.record(AGREEMENT_ID, kind, raw, "demo", accusation_id=accusation_id or None)
    return True
