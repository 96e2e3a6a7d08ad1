"""Bad input through the real app: a problem+json naming the field, nothing recorded, never a 5xx."""
from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.body import MAX_BODY
from app.main import create_app
from app.settings import Settings
from projections.schema import audit_chain, events
from tests import builders as b
from tests.conftest import ADMIN_TOKEN, BACKENDS, drop_postgres_database, fresh_postgres_database

MAX_SAFE = 2**53 - 1


@dataclass
class Accord:
    """An agreement between AA and BB with AA's live commitment c1 and BB's open accusation a1."""

    client: TestClient
    aid: str
    commitment_event: str = ""
    routes: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def state(self) -> tuple[int, int, int]:
        """(events in the store, newest position, rows of the hash chain), read from the database."""
        with self.client.app.state.runtime.engine.connect() as conn:
            count, newest = conn.execute(select(func.count(), func.max(events.c.id))).one()
            chained = conn.execute(select(func.count()).select_from(audit_chain)).scalar()
        return count, newest, chained

    def expect(self, label: str, status: int, pointer: str | None = None, *, method: str = "POST",
               path: str, body: Any = None, content: bytes | None = None, params: Any = None,
               headers: dict[str, str] | None = None) -> None:
        """Send one request; note a failure unless it is refused as expected and records nothing."""
        before = self.state()
        if body is not None:
            content = json.dumps(body).encode()
        answer = self.client.request(method, path, content=content, params=params,
                                     headers={"Content-Type": "application/json", **(headers or {})})
        problem = problem_of(answer)
        why = []
        if answer.status_code != status:
            why.append(f"status {answer.status_code}, expected {status}: {answer.text[:300]}")
        elif problem is None:
            why.append(f"not a problem+json: {answer.headers.get('content-type')} {answer.text[:200]}")
        elif pointer is not None:
            pointers = [e.get("pointer") for e in problem.get("errors") or []]
            if not any(p == pointer or (pointer and p.startswith(pointer + "/")) for p in pointers):
                why.append(f"errors name {pointers}, expected {pointer!r}: {problem['detail']}")
        if self.state() != before:
            why.append("something was recorded")
        if why:
            self.failures.append(f"{label}: {'; '.join(why)}")

    @property
    def base(self) -> str:
        return f"/v1/agreements/{self.aid}"

    @property
    def fresh(self) -> str:
        """The id of the agreement the `agreement` route's valid body would create."""
        return f"{self.aid}-new"

    def check(self) -> None:
        assert not self.failures, "\n".join(self.failures)


def problem_of(answer: Any) -> dict[str, Any] | None:
    if not answer.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    body = answer.json()
    if not {"type", "title", "status", "detail"} <= set(body) or body["status"] != answer.status_code:
        return None
    if answer.status_code == 422 and not (isinstance(body.get("errors"), list) and body["errors"]
                                          and all({"pointer", "detail"} <= set(e) for e in body["errors"])):
        return None
    return body


def at(body: dict[str, Any], pointer: str, value: Any = ..., *, drop: bool = False) -> dict[str, Any]:
    """A copy of body with the field at a JSON pointer replaced (or dropped)."""
    out = copy.deepcopy(body)
    parts = pointer.strip("/").split("/")
    node: Any = out
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last: Any = int(parts[-1]) if isinstance(node, list) else parts[-1]
    if drop:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def shared_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app and database for the whole module: refused requests record nothing, and each test
    works in an agreement of its own."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bad-input')}/pactwatch.db"
    else:
        url, name = fresh_postgres_database()
    settings = Settings(database_url=url, admin_token=ADMIN_TOKEN)
    try:
        with TestClient(create_app(settings)) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            yield client
    finally:
        if name is not None:
            drop_postgres_database(name)


AGREEMENT_IDS = itertools.count(1)


@pytest.fixture
def accord(shared_client: TestClient) -> Accord:
    client = shared_client
    subject = Accord(client, f"accord-{next(AGREEMENT_IDS)}")
    base = subject.base
    assert client.post("/v1/agreements", json=b.agreement(subject.aid)).status_code == 201
    made = client.post(f"{base}/commitments", json=b.commitment("c1"))
    assert made.status_code == 201
    assert client.post(f"{base}/accusations", json=b.accusation("a1")).status_code == 201
    subject.commitment_event = made.json()["id"]
    subject.routes = {
        "agreement": ("/v1/agreements", b.agreement(subject.fresh)),
        "commitment": (f"{base}/commitments", b.commitment("c2")),
        "stage": (f"{base}/stages", b.stage("s1")),
        "claim": (f"{base}/claims", b.claim("k1", commitment_id="c1", count=3)),
        "accusation": (f"{base}/accusations", b.accusation("a2")),
        "response": (f"{base}/accusations/a1/responses", b.response()),
        "resolution": (f"{base}/accusations/a1/resolution", b.resolution()),
        "fulfilment": (f"{base}/commitments/c1/fulfilment", b.declaration("BB")),
        "correction": (f"{base}/corrections", b.correction(subject.commitment_event)),
    }
    return subject


def test_every_valid_body_used_here_is_accepted(accord: Accord) -> None:
    for route, (path, body) in accord.routes.items():
        answer = accord.client.post(path, json=body)
        assert answer.status_code == 201, (route, answer.text)


# Malformed JSON and the JSON limits.

MALFORMED = [b"", b"{", b'{"id": "x",}', b"{'id': 'x'}", b"\xff\xfe{}", b'{"id": NaN}', b'{"n": Infinity}',
             b'{"n": -Infinity}', b"[]", b'"accord"', b"null", b"42", b"{} {}", b'{"id": "x"', b"\x00"]


def test_malformed_json_is_422_on_every_route(accord: Accord) -> None:
    for route, (path, _) in accord.routes.items():
        for raw in MALFORMED:
            accord.expect(f"{route} {raw!r}", 422, "", path=path, content=raw)
    accord.check()


def test_strings_holding_u0000_or_an_unpaired_surrogate_are_422(accord: Accord) -> None:
    path, body = accord.routes["agreement"]
    text = json.dumps(body)
    accord.expect("U+0000 escaped", 422, "/title", path=path, body=at(body, "/title", "Test\u0000accord"))
    accord.expect("U+0000 in the source", 422, "/source/publisher", path=path,
                  body=at(body, "/source/publisher", "\u0000"))
    accord.expect("lone high surrogate", 422, "/title", path=path,
                  content=text.replace('"Test accord"', '"\\ud800"').encode())
    accord.expect("lone low surrogate", 422, "/venue", path=path,
                  content=text.replace('"Geneva"', '"Gen\\udc00eva"').encode())
    accord.expect("reversed surrogate pair", 422, "/title", path=path,
                  content=text.replace('"Test accord"', '"\\udc00\\ud800"').encode())
    accord.expect("surrogate in a key", 422, None, path=path,
                  content=text.replace('"venue"', '"ven\\ud800ue"').encode())
    accord.expect("raw surrogate bytes", 422, None, path=path,
                  content=text.replace("Test accord", "Test").encode()[:-1] + b', "x": "\xed\xa0\x80"}')
    claim_path, claim = accord.routes["claim"]
    accord.expect("U+0000 in a statement", 422, "/statement", path=claim_path,
                  body=at(claim, "/statement", "a\u0000b"))
    accord.check()
    paired = at(body, "/title", "\U0001F54A peace")
    assert accord.client.post(path, json=paired).json()["data"]["title"] == "\U0001F54A peace"


def test_strings_over_10000_characters_are_422(accord: Accord) -> None:
    for route, pointer in [("agreement", "/title"), ("agreement", "/source/quote"), ("claim", "/statement"),
                           ("accusation", "/allegation"), ("response", "/statement"), ("resolution", "/note"),
                           ("commitment", "/subject"), ("agreement", "/mediators/0")]:
        path, body = accord.routes[route]
        if pointer == "/mediators/0":
            body = at(body, "/mediators", ["x"])
        accord.expect(f"{route} {pointer}", 422, pointer, path=path, body=at(body, pointer, "é" * 10_001))
    accord.check()
    path, body = accord.routes["agreement"]
    assert accord.client.post(path, json=at(body, "/title", "é" * 10_000)).status_code == 201


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_json_nested_deeper_than_32_is_422(accord: Accord) -> None:
    path, body = accord.routes["claim"]
    accord.expect("depth 33", 422, "/x", path=path, body={**body, "x": nested(32)})
    accord.expect("depth 100000", 422, "", path=path, content=b"[" * 100_000 + b"]" * 100_000)
    accord.expect("deep objects", 422, None, path=path, content=b'{"a":' * 5000 + b"1" + b"}" * 5000)
    accord.check()
    answer = accord.client.post(path, json={**body, "x": nested(31)})
    assert answer.status_code == 422
    assert "deeper" not in json.dumps(answer.json()["errors"])
    assert answer.json()["errors"][0]["pointer"] == "/x"


def test_a_body_over_one_mebibyte_is_413(accord: Accord) -> None:
    path, body = accord.routes["claim"]
    compact = json.dumps(body).encode()
    padded = compact[:-1] + b" " * (MAX_BODY - len(compact)) + b"}"
    assert len(padded) == MAX_BODY
    accord.expect("1 MiB + 1 of whitespace", 413, path=path, content=padded[:-1] + b" }")
    accord.expect("a huge string", 413, path=path, body=at(body, "/statement", "x" * MAX_BODY))
    accord.expect("a huge agreement", 413, path="/v1/agreements",
                  body=at(accord.routes["agreement"][1], "/venue", "x" * (2 * MAX_BODY)))

    def chunks() -> Iterator[bytes]:
        yield compact[:-1]
        for _ in range(MAX_BODY // 65536 + 1):
            yield b" " * 65536
        yield b"}"

    before = accord.state()
    streamed = accord.client.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and problem_of(streamed) is not None
    assert accord.state() == before
    accord.check()
    assert accord.client.post(path, content=padded, headers={"Content-Type": "application/json"}).status_code == 201


# Types, unknown and missing fields.

def wrong_type(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return ["true", 1]
    if isinstance(value, int):
        return [str(value), float(value), True]
    if isinstance(value, str):
        return [5, True, [value], {"value": value}]
    if isinstance(value, list):
        return [{"0": value}, "list", 0]
    if isinstance(value, dict):
        return [[value], "object", 1]
    return []


def leaves(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    yield pointer, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, f"{pointer}/{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, f"{pointer}/{i}")


def test_every_field_of_the_wrong_json_type_is_422_naming_it(accord: Accord) -> None:
    for route, (path, body) in accord.routes.items():
        for pointer, value in leaves(body):
            if not pointer:
                continue
            for bad in wrong_type(value):
                accord.expect(f"{route} {pointer}={bad!r}", 422, pointer, path=path, body=at(body, pointer, bad))
    accord.check()


@pytest.mark.parametrize("bad", ["5", 5.0, True, 1e3, "0x10"])
def test_integers_are_strict(accord: Accord, bad: Any) -> None:
    commitment_path, commitment = accord.routes["commitment"]
    stage_path, stage = accord.routes["stage"]
    claim_path, claim = accord.routes["claim"]
    accord.expect("quantity.value", 422, "/quantity/value", path=commitment_path,
                  body=at(commitment, "/quantity/value", bad))
    accord.expect("transfer count", 422, "/transfers/0/count", path=stage_path,
                  body=at(stage, "/transfers/0/count", bad))
    accord.expect("claim count", 422, "/count", path=claim_path, body=at(claim, "/count", bad))
    accord.check()


def test_integers_outside_zero_to_two_to_the_53_minus_one_are_422(accord: Accord) -> None:
    commitment_path, commitment = accord.routes["commitment"]
    stage_path, stage = accord.routes["stage"]
    claim_path, claim = accord.routes["claim"]
    for bad in (-1, MAX_SAFE + 1, 2**64, -(2**63), 10**30):
        accord.expect(f"value {bad}", 422, "/quantity/value", path=commitment_path,
                      body=at(commitment, "/quantity/value", bad))
        accord.expect(f"count {bad}", 422, "/transfers/0/count", path=stage_path,
                      body=at(stage, "/transfers/0/count", bad))
        accord.expect(f"claim count {bad}", 422, "/count", path=claim_path, body=at(claim, "/count", bad))
    accord.expect("a number of 5000 digits", 422, None, path=claim_path,
                  content=json.dumps(claim).replace('"count": 3', '"count": ' + "9" * 5000).encode())
    accord.check()
    made = accord.client.post(commitment_path, json=at(commitment, "/quantity/value", MAX_SAFE))
    assert made.status_code == 201 and made.json()["data"]["quantity"]["value"] == MAX_SAFE
    assert accord.client.post(claim_path, json=at(claim, "/count", 0)).status_code == 201


def test_unknown_fields_are_422_naming_them(accord: Accord) -> None:
    for route, (path, body) in accord.routes.items():
        accord.expect(f"{route} top", 422, "/extra", path=path, body={**body, "extra": 1})
        accord.expect(f"{route} source", 422, "/source/extra", path=path, body=at(body, "/source/extra", None))
    stage_path, stage = accord.routes["stage"]
    accord.expect("transfer", 422, "/transfers/0/from_", path=stage_path, body=at(stage, "/transfers/0/from_", "AA"))
    commitment_path, commitment = accord.routes["commitment"]
    accord.expect("quantity", 422, "/quantity/unit", path=commitment_path,
                  body=at(commitment, "/quantity/unit", "people"))
    accord.expect("escaped name", 422, "/a~1b~0c", path=commitment_path, body={**commitment, "a/b~c": 1})
    agreement_path, agreement = accord.routes["agreement"]
    accord.expect("party", 422, "/parties/1/flag", path=agreement_path, body=at(agreement, "/parties/1/flag", "x"))
    accord.check()


REQUIRED = {
    "agreement": ["/id", "/title", "/concluded_on", "/venue", "/parties", "/mediators", "/source",
                  "/source/publisher", "/parties/0/code", "/parties/0/name"],
    "commitment": ["/commitment_id", "/obligor", "/beneficiary", "/action", "/subject", "/quantity",
                   "/quantity/qualifier", "/source"],
    "stage": ["/stage_id", "/completed_on", "/transfers", "/transfers/0/commitment_id", "/transfers/0/from",
              "/transfers/0/to", "/transfers/0/count_basis", "/source"],
    "claim": ["/claim_id", "/party", "/statement", "/made_on", "/source"],
    "accusation": ["/accusation_id", "/accuser", "/accused", "/allegation", "/made_on", "/source"],
    "response": ["/by", "/stance", "/statement", "/made_on", "/source"],
    "resolution": ["/outcome", "/note", "/made_on", "/source"],
    "fulfilment": ["/declared_by", "/made_on", "/source"],
    "correction": ["/event_id", "/reason", "/made_on", "/source"],
}


def test_a_missing_required_field_is_422_naming_it(accord: Accord) -> None:
    for route, pointers in REQUIRED.items():
        path, body = accord.routes[route]
        for pointer in pointers:
            accord.expect(f"{route} without {pointer}", 422, pointer, path=path, body=at(body, pointer, drop=True))
            accord.expect(f"{route} {pointer}=null", 422, pointer, path=path, body=at(body, pointer, None))
    accord.check()


def test_optional_fields_may_be_omitted_or_null(accord: Accord) -> None:
    client = accord.client
    commitment_path, commitment = accord.routes["commitment"]
    nulls = {**commitment, "due_by": None, "made_on": None, "reciprocal_of": None,
             "source": {"publisher": "p", "url": None, "channel": None, "published_on": None, "quote": None}}
    assert client.post(commitment_path, json=nulls).status_code == 201
    claim_path, claim = accord.routes["claim"]
    assert client.post(claim_path, json={**claim, "commitment_id": None, "count": None}).status_code == 201
    stage_path, stage = accord.routes["stage"]
    undisclosed = {"commitment_id": "c1", "from": "AA", "to": "BB", "count_basis": "undisclosed"}
    assert client.post(stage_path, json={**stage, "description": None, "transfers": [undisclosed]}).status_code == 201


# Dates, slugs, party codes and vocabularies.

BAD_DATES = ["2025-02-30", "2023-02-29", "2025-13-01", "2025-00-10", "2025-01-32", "2025-2-03", "25-02-03",
             "20250203", " 2025-02-03", "2025-02-03 ", "2025-02-03\n", "2025-02-03T00:00:00Z", "2025/02/03",
             "٢٠٢٥-٠٢-٠٣", "+2025-02-03", "2025-W06-1", ""]


def test_dates_must_be_real_iso_days(accord: Accord) -> None:
    for route, pointer in [("agreement", "/concluded_on"), ("commitment", "/due_by"), ("commitment", "/made_on"),
                           ("stage", "/completed_on"), ("claim", "/made_on"), ("accusation", "/made_on"),
                           ("response", "/made_on"), ("resolution", "/made_on"), ("fulfilment", "/made_on"),
                           ("correction", "/made_on"), ("agreement", "/source/published_on")]:
        path, body = accord.routes[route]
        for bad in BAD_DATES:
            accord.expect(f"{route} {pointer}={bad!r}", 422, pointer, path=path, body=at(body, pointer, bad))
        accord.expect(f"{route} {pointer} as a number", 422, pointer, path=path, body=at(body, pointer, 20250203))
    accord.check()
    path, body = accord.routes["claim"]
    assert accord.client.post(path, json=at(body, "/made_on", "2024-02-29")).status_code == 201


BAD_SLUGS = ["Accord", "-accord", "a" * 65, "accord\n", "\naccord", "accord x", "", "ac_cord", "accord!", "ä",
             "accord\u0000"]
BAD_CODES = ["A", "ABCDEFGHI", "aa", "AA\n", "A1", "", "ÄÖ", " AA", "A-B"]


def test_slugs_must_match_over_the_whole_string(accord: Accord) -> None:
    for route, pointer in [("agreement", "/id"), ("commitment", "/commitment_id"), ("commitment", "/reciprocal_of"),
                           ("stage", "/stage_id"), ("stage", "/transfers/0/commitment_id"), ("claim", "/claim_id"),
                           ("claim", "/commitment_id"), ("accusation", "/accusation_id")]:
        path, body = accord.routes[route]
        for bad in BAD_SLUGS:
            accord.expect(f"{route} {pointer}={bad!r}", 422, pointer, path=path, body=at(body, pointer, bad))
    accord.check()
    path, body = accord.routes["agreement"]
    assert accord.client.post(path, json=at(body, "/id", "0" + "a-" * 31 + "z")).status_code == 201


def test_party_codes_must_match_over_the_whole_string(accord: Accord) -> None:
    for route, pointer in [("agreement", "/parties/0/code"), ("commitment", "/obligor"),
                           ("commitment", "/beneficiary"), ("stage", "/transfers/0/from"), ("stage", "/transfers/0/to"),
                           ("claim", "/party"), ("accusation", "/accuser"), ("accusation", "/accused"),
                           ("response", "/by"), ("fulfilment", "/declared_by/0")]:
        path, body = accord.routes[route]
        for bad in BAD_CODES:
            accord.expect(f"{route} {pointer}={bad!r}", 422, pointer, path=path, body=at(body, pointer, bad))
    accord.check()
    path, body = accord.routes["agreement"]
    eight = at(body, "/parties/0/code", "ABCDEFGH")
    assert accord.client.post(path, json=eight).status_code == 201


def test_party_codes_are_unique_within_an_agreement(accord: Accord) -> None:
    path, body = accord.routes["agreement"]
    parties = [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}, {"code": "AA", "name": "Again"}]
    accord.expect("duplicate code", 422, "/parties/2/code", path=path, body=at(body, "/parties", parties))
    accord.check()
    assert accord.client.get(f"/v1/agreements/{accord.fresh}").status_code == 404


def test_words_outside_the_vocabularies_are_422(accord: Accord) -> None:
    for route, pointer, bad in [("commitment", "/quantity/qualifier", "about"),
                                ("commitment", "/quantity/qualifier", "EXACT"),
                                ("stage", "/transfers/0/count_basis", "estimated"),
                                ("response", "/stance", "denied "), ("resolution", "/outcome", "dismissed")]:
        path, body = accord.routes[route]
        accord.expect(f"{route} {pointer}={bad!r}", 422, pointer, path=path, body=at(body, pointer, bad))
    accord.check()


# Domain rules and ids in the body.

def test_domain_rules_are_422_naming_the_field(accord: Accord) -> None:
    cases = [
        ("commitment", "/obligor", {"obligor": "ZZ"}),
        ("commitment", "/beneficiary", {"beneficiary": "AA"}),
        ("commitment", "/quantity/value", {"quantity": {"qualifier": "exact"}}),
        ("commitment", "/quantity/value", {"quantity": {"qualifier": "at_least", "value": None}}),
        ("commitment", "/quantity/value", {"quantity": {"qualifier": "all", "value": 3}}),
        ("commitment", "/quantity/value", {"quantity": {"qualifier": "unspecified", "value": 0}}),
        ("commitment", "/reciprocal_of", {"reciprocal_of": "c1"}),
        ("stage", "/transfers", {"transfers": []}),
        ("stage", "/transfers/0/from", {"transfers": [b.transfer("c1", frm="BB", to="AA")]}),
        ("stage", "/transfers/1/to", {"transfers": [b.transfer(), b.transfer(to="ZZ")]}),
        ("stage", "/transfers/0/count", {"transfers": [b.transfer(count=4, basis="undisclosed")]}),
        ("stage", "/transfers/0/count", {"transfers": [b.transfer(count=None, basis="approximate")]}),
        ("claim", "/party", {"party": "ZZ"}),
        ("accusation", "/accused", {"accuser": "AA", "accused": "AA"}),
        ("accusation", "/accuser", {"accuser": "ZZ"}),
        ("response", "/by", {"by": "ZZ"}),
        ("fulfilment", "/declared_by", {"declared_by": []}),
        ("fulfilment", "/declared_by/1", {"declared_by": ["BB", "BB"]}),
        ("fulfilment", "/declared_by/0", {"declared_by": ["ZZ"]}),
    ]
    for route, pointer, over in cases:
        path, body = accord.routes[route]
        accord.expect(f"{route} {over}", 422, pointer, path=path, body={**body, **over})
    accord.check()


def test_ids_in_the_body_must_name_something_live_in_this_agreement(accord: Accord) -> None:
    client = accord.client
    assert client.post("/v1/agreements", json=b.agreement(f"{accord.aid}-other")).status_code == 201
    foreign = client.post(f"/v1/agreements/{accord.aid}-other/commitments", json=b.commitment("c9")).json()
    retracted = client.post(f"{accord.base}/commitments", json=b.commitment("gone")).json()
    assert client.post(f"{accord.base}/corrections", json=b.correction(retracted["id"])).status_code == 201
    reciprocal = {"obligor": "BB", "beneficiary": "AA"}
    for cid in ("c9", "gone", "nothing"):
        for route, pointer, over in [
            ("commitment", "/reciprocal_of", {**reciprocal, "reciprocal_of": cid}),
            ("stage", "/transfers/0/commitment_id", {"transfers": [b.transfer(cid)]}),
            ("claim", "/commitment_id", {"commitment_id": cid}),
            ("accusation", "/commitment_id", {"commitment_id": cid}),
        ]:
            path, body = accord.routes[route]
            accord.expect(f"{route} citing {cid}", 422, pointer, path=path, body={**body, **over})
    path, body = accord.routes["correction"]
    concluded = client.get(f"{accord.base}/events").json()["items"][0]["id"]
    accord.expect("correcting another agreement's event", 422, "/event_id", path=path,
                  body={**body, "event_id": foreign["id"]})
    accord.expect("correcting no event", 422, "/event_id", path=path,
                  body={**body, "event_id": "00000000-0000-0000-0000-000000000000"})
    accord.expect("correcting AgreementConcluded", 422, "/event_id", path=path, body={**body, "event_id": concluded})
    correction_id = client.get(f"{accord.base}/events").json()["items"][-1]["id"]
    accord.expect("correcting a correction", 422, "/event_id", path=path, body={**body, "event_id": correction_id})
    accord.expect("correcting a retracted event", 409, path=path, body={**body, "event_id": retracted["id"]})
    accord.check()


# 409s.

def test_ids_are_used_once_per_kind_forever(accord: Accord) -> None:
    client = accord.client
    for route in ("stage", "claim", "accusation"):
        path, body = accord.routes[route]
        assert client.post(path, json=body).status_code == 201
    retracted = client.post(f"{accord.base}/commitments", json=b.commitment("gone")).json()
    assert client.post(f"{accord.base}/corrections", json=b.correction(retracted["id"])).status_code == 201
    accord.expect("agreement", 409, path="/v1/agreements", body=b.agreement(accord.aid, title="again"))
    accord.expect("commitment", 409, path=f"{accord.base}/commitments", body=b.commitment("c1"))
    accord.expect("retracted commitment", 409, path=f"{accord.base}/commitments", body=b.commitment("gone"))
    accord.expect("stage", 409, path=accord.routes["stage"][0], body=b.stage("s1", completed_on="2025-04-04"))
    accord.expect("claim", 409, path=accord.routes["claim"][0], body=b.claim("k1"))
    accord.expect("accusation", 409, path=accord.routes["accusation"][0], body=b.accusation("a1"))
    resolution_path, resolution = accord.routes["resolution"]
    assert client.post(resolution_path, json=resolution).status_code == 201
    accord.expect("resolving twice", 409, path=resolution_path, body=b.resolution("rejected"))
    accord.check()


# 404s and the order of checks.

def test_unknown_path_ids_are_404_on_every_route(accord: Accord) -> None:
    for route, (path, body) in accord.routes.items():
        if route == "agreement":
            continue
        elsewhere = path.replace(accord.base, "/v1/agreements/nowhere")
        accord.expect(f"{route} unknown agreement", 404, path=elsewhere, body=body)
    accord.expect("answer unknown accusation", 404, path=f"{accord.base}/accusations/a9/responses",
                  body=b.response())
    accord.expect("resolve unknown accusation", 404, path=f"{accord.base}/accusations/a9/resolution",
                  body=b.resolution())
    accord.expect("fulfil unknown commitment", 404, path=f"{accord.base}/commitments/c9/fulfilment",
                  body=b.declaration("BB"))
    for suffix in ("", "/compliance", "/timeline", "/events"):
        accord.expect(f"GET {suffix}", 404, method="GET", path=f"/v1/agreements/nowhere{suffix}")
    accord.check()


def test_retracted_accusations_and_commitments_are_404_in_the_path(accord: Accord) -> None:
    client = accord.client
    accusation = client.post(f"{accord.base}/accusations", json=b.accusation("a2")).json()
    assert client.post(f"{accord.base}/corrections", json=b.correction(accusation["id"])).status_code == 201
    assert client.post(f"{accord.base}/corrections", json=b.correction(accord.commitment_event)).status_code \
        == 201
    accord.expect("answer", 404, path=f"{accord.base}/accusations/a2/responses", body=b.response())
    accord.expect("resolve", 404, path=f"{accord.base}/accusations/a2/resolution", body=b.resolution())
    accord.expect("fulfil", 404, path=f"{accord.base}/commitments/c1/fulfilment", body=b.declaration("BB"))
    accord.check()


def test_checks_run_in_the_documented_order(accord: Accord) -> None:
    commitment_path, commitment = accord.routes["commitment"]
    elsewhere = commitment_path.replace(accord.base, "/v1/agreements/nowhere")
    accord.expect("unknown agreement, bad body", 404, path=elsewhere, content=b"{not json")
    accord.expect("unknown agreement, huge body", 404, path=elsewhere, body=at(commitment, "/subject", "x" * MAX_BODY))
    accord.expect("unknown accusation, bad body", 404, path=f"{accord.base}/accusations/a9/responses",
                  body={"by": 5})
    accord.expect("stale If-Match, bad body", 412, path=commitment_path, body={"commitment_id": 5},
                  headers={"If-Match": '"1"'})
    accord.expect("stale If-Match, huge body", 412, path=commitment_path,
                  body=at(commitment, "/subject", "x" * MAX_BODY), headers={"If-Match": '"1"'})
    accord.expect("unknown agreement, stale If-Match", 404, path=elsewhere, body=commitment,
                  headers={"If-Match": '"1"'})
    accord.expect("duplicate id, bad reference", 422, "/reciprocal_of", path=commitment_path,
                  body={**commitment, "commitment_id": "c1", "obligor": "BB", "beneficiary": "AA",
                        "reciprocal_of": "nothing"})
    accord.expect("duplicate id, undeclared party", 422, "/obligor", path=commitment_path,
                  body={**commitment, "commitment_id": "c1", "obligor": "ZZ"})
    accord.expect("duplicate agreement, bad field", 422, "/concluded_on", path="/v1/agreements",
                  body=b.agreement(accord.aid, concluded_on="2025-02-30"))
    accord.expect("duplicate agreement, duplicate codes", 422, "/parties/1/code", path="/v1/agreements",
                  body=b.agreement(accord.aid, parties=[{"code": "AA", "name": "A"}, {"code": "AA", "name": "B"}]))
    accord.expect("compliance of an unknown agreement with a bad filter", 404, method="GET",
                  path="/v1/agreements/nowhere/compliance", params={"as_of": "2025-02-30"})
    accord.expect("timeline of an unknown agreement with a bad filter", 404, method="GET",
                  path="/v1/agreements/nowhere/timeline", params={"version": "0"})
    accord.check()


# Query parameters.

BAD_FILTERS = [
    ("as_of", "2025-02-30"), ("as_of", "2025-2-3"), ("as_of", "yesterday"), ("as_of", ""),
    ("as_of", "2025-02-03T00:00:00Z"), ("as_of", "0000-01-01"), ("as_of", "2025-02-03\n"),
    ("known_at", "2025-01-01T10:00:00"), ("known_at", "2025-01-01"), ("known_at", "garbage"), ("known_at", ""),
    ("known_at", "2025-01-01T10:00Z"), ("known_at", "2025-02-30T10:00:00Z"), ("known_at", "2025-01-01T25:00:00Z"),
    ("known_at", "0001-01-01T00:00:00+01:00"), ("known_at", "9999-12-31T23:59:59-01:00"),
    ("version", "0"), ("version", "-1"), ("version", "1.0"), ("version", "abc"), ("version", ""),
    ("version", str(MAX_SAFE + 1)), ("version", "1e3"), ("version", "٣"), ("version", "9" * 400),
]


def test_bad_filter_values_are_422_naming_the_parameter(accord: Accord) -> None:
    for suffix in ("compliance", "timeline"):
        for name, value in BAD_FILTERS:
            accord.expect(f"{suffix} {name}={value!r}", 422, name, method="GET",
                          path=f"{accord.base}/{suffix}", params={name: value})
    accord.check()
    for name, value in [("as_of", "2025-02-03"), ("known_at", "2025-01-01T10:00:00+05:30"), ("version", "1"),
                        ("version", str(MAX_SAFE))]:
        assert accord.client.get(f"{accord.base}/compliance", params={name: value}).status_code == 200


def test_bad_log_parameters_are_422_naming_the_parameter(accord: Accord) -> None:
    for name, value in [("after", "-1"), ("after", "x"), ("after", "1.5"), ("after", ""), ("after", "9" * 400),
                        ("limit", "0"), ("limit", "1001"), ("limit", "x"), ("limit", ""), ("limit", "-5"),
                        ("type", "Nope"), ("type", ""), ("type", "commitmentmade")]:
        accord.expect(f"events {name}={value!r}", 422, name, method="GET", path="/v1/events", params={name: value})
    accord.check()
