"""Client address -> country, offline (iptocc bundles RIR data). A signal for directives; it can never
make anyone a US person."""

from __future__ import annotations

from functools import lru_cache

import iptocc


@lru_cache(maxsize=65536)
def country(ip: str) -> str:
    try:
        return iptocc.country_code(ip) or ""
    except (ValueError, TypeError):
        return ""
