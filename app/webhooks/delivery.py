"""One signed POST to a receiver: resolved and checked first, then sent to the very address checked."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

from app.webhooks import signing, ssrf

USER_AGENT = "pactwatch-webhooks/1"
MAX_RESPONSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What one attempt gave: a 2xx is a delivery; otherwise `error` says why not."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_after_seconds(value: str | None, moment: datetime) -> float | None:
    """A `Retry-After` header (seconds or an HTTP date) as seconds from `moment`."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - moment).total_seconds())


class Sender:
    """Signs and posts payloads; one httpx client per subscription, never following redirects."""

    def __init__(self, allow_private: bool, timeout_seconds: float = 15.0,
                 resolve: ssrf.Resolver = ssrf.system_resolver) -> None:
        self.allow_private = allow_private
        self.timeout_seconds = timeout_seconds
        self.resolve = resolve
        self._clients: dict[str, tuple[str, httpx.Client]] = {}
        self._lock = threading.Lock()

    def send(self, key: str | None, url: str, msg_id: str, body: str,
             signing_secrets: list[str] | tuple[str, ...]) -> Outcome:
        """POST `body` signed with every secret; `key` names the kept client (one per subscription), None for a one-off."""
        started = time.perf_counter()
        try:
            target = ssrf.check(url, self.allow_private, self.resolve)
        except ssrf.ForbiddenTarget as exc:
            return Outcome(None, f"refused: {exc}", _ms(started))
        moment = datetime.now(timezone.utc)
        headers = signing.headers(msg_id, body, list(signing_secrets), moment)
        headers["user-agent"] = USER_AGENT
        headers["host"] = target.url.netloc.decode("ascii")
        client = self._client(key, url) if key is not None else self._new_client()
        try:
            return self._post(client, target, headers, body.encode("utf-8"), started, moment)
        finally:
            if key is None:
                client.close()

    def _post(self, client: httpx.Client, target: ssrf.Target, headers: dict[str, str], content: bytes,
              started: float, moment: datetime) -> Outcome:
        extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
        error = "no address to connect to"
        for address in target.addresses:
            pinned = target.url.copy_with(host=address.split("%", 1)[0])
            try:
                with client.stream("POST", pinned, content=content, headers=headers,
                                   extensions=extensions) as response:
                    _drain(response)
            except httpx.ConnectError as exc:
                error = f"cannot connect to {address}: {exc}"
                continue
            except httpx.TimeoutException:
                return Outcome(None, f"no answer within {self.timeout_seconds:g} s", _ms(started))
            except httpx.HTTPError as exc:
                return Outcome(None, f"{type(exc).__name__}: {exc}", _ms(started))
            return self._judge(response, started, moment)
        return Outcome(None, error, _ms(started))

    def _judge(self, response: httpx.Response, started: float, moment: datetime) -> Outcome:
        duration = _ms(started)
        code = response.status_code
        if duration > self.timeout_seconds * 1000:
            return Outcome(code, f"answered after {duration} ms, over {self.timeout_seconds:g} s", duration)
        if 200 <= code < 300:
            return Outcome(code, None, duration)
        retry_after = retry_after_seconds(response.headers.get("retry-after"), moment)
        if 300 <= code < 400:
            return Outcome(code, f"HTTP {code}: redirects are not followed", duration, retry_after)
        return Outcome(code, f"HTTP {code}", duration, retry_after)

    def _client(self, key: str, url: str) -> httpx.Client:
        with self._lock:
            known = self._clients.get(key)
            if known is not None and known[0] == url:
                return known[1]
            client = self._new_client()
            self._clients[key] = (url, client)
        if known is not None:
            known[1].close()
        return client

    def _new_client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_seconds, follow_redirects=False, trust_env=False)

    def forget(self, keep: set[str]) -> None:
        """Close the clients of subscriptions no longer in `keep`."""
        with self._lock:
            gone = [k for k in self._clients if k not in keep]
            closing = [self._clients.pop(k)[1] for k in gone]
        for client in closing:
            client.close()

    def close(self) -> None:
        self.forget(set())


def _drain(response: httpx.Response) -> None:
    """Read (a bounded part of) the answer so that the connection can be reused."""
    size = 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break


def _ms(started: float) -> int:
    return int(round((time.perf_counter() - started) * 1000))
