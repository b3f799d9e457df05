"""Optional webhook: POST one JSON object per ladder step. Failures are logged, never raised."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("lockgate.monitor")


async def post(url: str, payload: dict, timeout: float) -> bool:
    try:
        async with httpx.AsyncClient(timeout=timeout) as client:
            r = await client.post(url, json=payload)
        if r.status_code >= 400:
            log.warning("monitor webhook %s answered %s", url, r.status_code)
            return False
        return True
    except Exception as e:  # an alert sink that is down must not affect requests or the ladder
        log.warning("monitor webhook %s failed: %s", url, e)
        return False
