"""A small round-robin HTTP proxy, used when nginx is not installed: `python -m bench.proxy --port P UPSTREAM...`.

Writes are sent to one upstream only and never retried on another (a retry
could record an event twice); reads move on to the next upstream when one
refuses the connection.
"""
from __future__ import annotations

import argparse
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "host", "content-length"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class Proxy:
    """An ASGI app that forwards each request to the next upstream in turn."""

    def __init__(self, upstreams: list[str]) -> None:
        self.upstreams = upstreams
        self._turn = itertools.cycle(range(len(upstreams)))
        # Idle connections expire before uvicorn closes them (after 5 s), so a write never meets a closing one.
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(60.0), limits=httpx.Limits(
            max_keepalive_connections=64, keepalive_expiry=4.0))

    async def __call__(self, scope: dict[str, Any], receive: Callable[[], Awaitable[dict[str, Any]]],
                       send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self.client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in HOP_BY_HOP]
        path = scope["raw_path"].decode("latin-1") + (("?" + scope["query_string"].decode("latin-1"))
                                                       if scope["query_string"] else "")
        tries = len(self.upstreams) if scope["method"] in SAFE_METHODS else 1
        for attempt in range(tries):
            upstream = self.upstreams[next(self._turn)]
            try:
                answer = await self.client.request(scope["method"], upstream + path, headers=headers, content=body)
                break
            except httpx.TransportError:
                if attempt == tries - 1:
                    await _send(send, 502, [(b"content-type", b"text/plain")], b"upstream unavailable")
                    return
        out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.multi_items()
               if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"]
        await _send(send, answer.status_code, out, answer.content)


async def _send(send: Callable[[dict[str, Any]], Awaitable[None]], status: int, headers: list[tuple[bytes, bytes]],
                body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("upstreams", nargs="+", help="base URLs, e.g. http://127.0.0.1:8001")
    args = parser.parse_args()
    uvicorn.run(Proxy([u.rstrip("/") for u in args.upstreams]), host=args.host, port=args.port,
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
