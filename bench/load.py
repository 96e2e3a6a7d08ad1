"""A lean HTTP/1.1 load generator over asyncio streams, for the benchmarks only.

Why not httpx here: on a two-core machine a client that spends half a
millisecond of CPU per request steals the cores it is measuring. This one
keeps one keep-alive connection per concurrent writer and spends a few tens
of microseconds per request.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

Request = tuple[str, str, dict[str, Any]]  # method, path, JSON body


@dataclass
class Answer:
    status: int
    body: bytes
    sent_at: float
    done_at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: {self.host}:{self.port}\r\nContent-Type: application/json\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Answer:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        sent_at = time.time()
        self._writer.write(f"{method} {path} HTTP/1.1\r\n{self._head}Content-Length: {len(payload)}\r\n\r\n"
                           .encode() + payload)
        assert self._reader is not None
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        data = await self._reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return Answer(status, data, sent_at, time.time())

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


@dataclass
class Run:
    """What a load run saw."""

    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: int = 201) -> int:
        return sum(1 for a in self.answers if a.status == status)

    def rate(self, status: int = 201) -> float:
        return self.count(status) / self.seconds if self.seconds else 0.0

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for a in self.answers:
            out[a.status] = out.get(a.status, 0) + 1
        return out


async def closed_loop(url: str, headers: dict[str, str], connections: int, seconds: float,
                      next_request: Callable[[int, int], Request], warmup: float = 1.0) -> Run:
    """`connections` writers, each sending its next request as soon as the last is answered."""
    run = Run()
    start = time.perf_counter()
    measuring_from = start + warmup
    stop_at = measuring_from + seconds

    async def writer(w: int) -> None:
        conn = Connection(url, headers)
        n = 0
        try:
            while time.perf_counter() < stop_at:
                method, path, body = next_request(w, n)
                n += 1
                answer = await conn.request(method, path, body)
                if time.perf_counter() >= measuring_from:
                    run.answers.append(answer)
        finally:
            await conn.close()

    await asyncio.gather(*(writer(w) for w in range(connections)))
    run.seconds = min(time.perf_counter(), stop_at) - measuring_from
    return run


async def open_loop(url: str, headers: dict[str, str], rate: float, seconds: float,
                    next_request: Callable[[int, int], Request], connections: int = 64) -> Run:
    """Requests at a fixed rate, whatever the answers' pace (up to `connections` in flight)."""
    run = Run()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(Connection(url, headers))
    start = time.perf_counter()
    total = int(rate * seconds)
    tasks = []

    async def one(i: int) -> None:
        conn = await idle.get()
        try:
            method, path, body = next_request(i % connections, i)
            run.answers.append(await conn.request(method, path, body))
        finally:
            idle.put_nowait(conn)

    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    run.seconds = time.perf_counter() - start
    while not idle.empty():
        await idle.get_nowait().close()
    return run
