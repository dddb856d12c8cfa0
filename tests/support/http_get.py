"""A tiny asyncio HTTP/1.1 client for tests of local servers (the engine's, Prometheus's)."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


async def http_request(
    host: str, port: int, path: str, *, method: str = "GET", raw: bytes | None = None
) -> HttpResponse:
    """Send one request (or ``raw`` bytes as the request) and read the response to EOF."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        request = (
            raw
            or (
                f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return _parse(data)


async def http_get(host: str, port: int, path: str, **query: str) -> HttpResponse:
    if query:
        path = f"{path}?{urllib.parse.urlencode(query)}"
    return await http_request(host, port, path)


def _parse(data: bytes) -> HttpResponse:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return HttpResponse(status, headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out
