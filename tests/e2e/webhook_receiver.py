"""A real webhook receiver for tests: an HTTP server on 127.0.0.1 that records requests and answers as scripted."""
from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    status: int

    @property
    def msg_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """Answers 204 unless told otherwise; `hold()` keeps requests waiting until `release()`."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._script: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._open.set()
        self.waiting = 0
        self._arrivals = 0
        self._hold_from: int | None = None
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        """Listen (again, on the same port after a stop)."""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status, headers = owner._answer()
                with owner._lock:
                    owner.received.append(Received(body, {k.lower(): v for k, v in self.headers.items()}, status))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop listening: connections are refused until `start()`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, *answers: int | tuple[int, dict[str, str]]) -> None:
        """The next answers, in order (a status, or a status and headers); 204 after them."""
        with self._lock:
            self._script.extend(a if isinstance(a, tuple) else (a, {}) for a in answers)

    def hold(self, after: int = 0) -> None:
        """Let `after` more requests through, then keep the next ones waiting until `release()`."""
        with self._lock:
            self._hold_from = self._arrivals + after
            self._open.clear()

    def release(self) -> None:
        with self._lock:
            self._hold_from = None
            self._open.set()

    def _answer(self) -> tuple[int, dict[str, str]]:
        with self._lock:
            held = self._hold_from is not None and self._arrivals >= self._hold_from
            self._arrivals += 1
            if held:
                self.waiting += 1
        if held:
            self._open.wait()
            with self._lock:
                self.waiting -= 1
        with self._lock:
            return self._script.pop(0) if self._script else (204, {})

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx, in arrival order."""
        return [r for r in self.snapshot() if 200 <= r.status < 300]

    def delivered_positions(self, secret: str) -> list[int]:
        return [r.verify(secret)["data"]["position"] for r in self.delivered()]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until `condition()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)

