"""The SSRF guard, the retry policy and the signature headers, without a server."""
from __future__ import annotations

import ipaddress
import random
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from app.webhooks import signing, ssrf
from app.webhooks.delivery import retry_after_seconds
from app.webhooks.dispatcher import MAX_WAIT_SECONDS, retry_delay


def resolver(*addresses: str) -> ssrf.Resolver:
    return lambda host, port: list(addresses)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.0.0.1", "172.16.5.4", "192.168.1.1", "100.64.0.1", "169.254.169.254",
    "0.0.0.0", "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255", "198.18.0.1", "192.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "ff0e::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::1", "2001:db8::1", "64:ff9b::7f00:1", "::127.0.0.1",
])
def test_non_global_addresses_are_forbidden(address: str) -> None:
    assert ssrf.is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert not ssrf.is_forbidden(ipaddress.ip_address(address))


def test_a_host_is_refused_when_any_of_its_addresses_is_private() -> None:
    with pytest.raises(ssrf.ForbiddenTarget, match="10.0.0.1"):
        ssrf.check("https://hooks.example/x", False, resolver("8.8.8.8", "10.0.0.1"))
    target = ssrf.check("https://hooks.example:8443/x", False, resolver("8.8.8.8"))
    assert (target.host, target.port, target.addresses) == ("hooks.example", 8443, ("8.8.8.8",))


def test_private_targets_pass_only_when_allowed() -> None:
    assert ssrf.check("http://receiver.internal/x", True, resolver("10.0.0.1")).addresses == ("10.0.0.1",)
    ssrf.check_syntax("http://receiver.internal/x", True, resolver())
    with pytest.raises(ssrf.ForbiddenTarget):
        ssrf.check_syntax("http://receiver.internal/x", False, resolver("10.0.0.1"))


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "example.com/x", "http:///x", ""])
def test_only_absolute_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(ssrf.ForbiddenTarget):
        ssrf.check_syntax(url, True, resolver("8.8.8.8"))


def test_an_unresolvable_host_is_refused() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(ssrf.ForbiddenTarget, match="does not resolve"):
        ssrf.check("https://nowhere.example/", False, fails)
    with pytest.raises(ssrf.ForbiddenTarget, match="does not resolve"):
        ssrf.check("https://nowhere.example/", False, resolver())


def test_retries_follow_the_schedule_with_jitter_then_stop() -> None:
    schedule = [5.0, 300.0]
    rng = random.Random(7)
    first = [retry_delay(schedule, 1, None, rng) for _ in range(200)]
    assert 4.0 <= min(first) < 4.5 and 5.5 < max(first) <= 6.0
    assert 240.0 <= retry_delay(schedule, 2, None, rng) <= 360.0
    assert retry_delay(schedule, 3, None, rng) is None


def test_retry_after_lengthens_the_wait_up_to_a_day() -> None:
    assert retry_delay([1.0], 1, 120.0) == 120.0
    assert retry_delay([1.0], 1, 10 * 86400.0) == MAX_WAIT_SECONDS
    assert retry_delay([600.0], 1, 1.0) >= 480.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    moment = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert retry_after_seconds("30", moment) == 30.0
    assert retry_after_seconds("Sun, 01 Jun 2025 12:01:00 GMT", moment) == 60.0
    assert retry_after_seconds("Sun, 01 Jun 2025 11:00:00 GMT", moment) == 0.0
    assert retry_after_seconds("soon", moment) is None
    assert retry_after_seconds(None, moment) is None


def test_headers_carry_one_verifiable_signature_per_secret() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = signing.event_body({"type": "AgreementConcluded", "recorded_at": "2025-06-01T12:00:00.000000Z",
                               "id": "e1", "data": {"note": "Überprüfung"}})
    now = datetime.now(timezone(timedelta(hours=3)))
    headers = signing.headers("e1", body, [new, old], now)
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body.encode("utf-8"), headers)["data"]["data"]["note"] == "Überprüfung"
    with pytest.raises(Exception):
        Webhook(signing.new_secret()).verify(body.encode("utf-8"), headers)
