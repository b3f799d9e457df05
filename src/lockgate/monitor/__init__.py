"""Jailbreak monitoring and containment (see docs/monitoring.md).

Per principal (or key) and per organisation: rolling counts of safeguard hits, refusals and matches
against known jailbreak templates; a ladder flag -> throttle -> suspend that opens an incident.
"""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    """The monitor's clock; one place, so tests can move it (throttle windows are a minute long)."""
    return datetime.now(timezone.utc)
