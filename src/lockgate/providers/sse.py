"""Reading server-sent events from an upstream response."""

from __future__ import annotations

from typing import AsyncIterator

import httpx


async def events(resp: httpx.Response) -> AsyncIterator[tuple[str | None, str]]:
    """Yields (event name, data) per SSE event; multi-line data is joined with newlines."""
    name: str | None = None
    data: list[str] = []
    async for line in resp.aiter_lines():
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
    if data:
        yield name, "\n".join(data)
