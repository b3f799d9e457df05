"""RequestContext: everything a request carries through the pipeline, and every decision made on it.

Response headers and the audit record are both read from here, so they cannot disagree.
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from lockgate.chat import ChatRequest, Event, Usage


# Request ids: a random per-process prefix and a counter. uuid4 per request showed up in profiles (the
# random-bytes call gives up the GIL and has to win it back under load).
_PREFIX = secrets.token_hex(6)
_COUNTER = itertools.count(1)


@dataclass(slots=True)
class Hop:
    """One upstream attempt: which model/deployment, and how it ended."""

    model: str
    deployment: str
    outcome: str  # served | outage | withdrawn | refusal | client | skipped:<why>
    detail: str = ""


@dataclass(slots=True)
class RequestContext:
    req: ChatRequest
    client_ip: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: f"req_{_PREFIX}{next(_COUNTER):08x}")
    started: float = field(default_factory=time.perf_counter)
    wall_time: float = field(default_factory=time.time)

    # identity
    principal: Any = None  # identity.Subject
    key_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)  # what policies may use (identity.attributes)

    # routing: the public model asked for, and the one that serves
    requested_model: str = ""
    model: str = ""

    # decisions
    directives: list[str] = field(default_factory=list)
    notice: str | None = None
    safeguards: list[dict] = field(default_factory=list)  # {"stage","domain","score","action"}
    hops: list[Hop] = field(default_factory=list)
    fallback_reason: str | None = None

    # outcome
    events: AsyncIterator[Event] | None = None
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    status: int = 200
    error: str | None = None
    output_text: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # per-stage scratch, keyed by stage name

    def response_headers(self) -> dict[str, str]:
        h = {"lockgate-request-id": self.request_id}
        if self.model:
            h["lockgate-served-model"] = self.model
        if self.directives:
            h["lockgate-directives"] = ",".join(self.directives)
        if self.notice:
            # Header values must be latin-1; notices are operator text and may not be.
            h["lockgate-notice"] = self.notice.encode("ascii", "replace").decode()
        for s in self.safeguards:
            if s.get("action") in ("refuse", "reroute"):
                h["lockgate-safeguard"] = f"domain={s['domain']}; action={s['action']}" + (
                    f"; model={s['model']}" if s.get("model") else ""
                )
        if self.fallback_reason:
            h["lockgate-fallback"] = f"reason={self.fallback_reason}; from={self.requested_model}"
        return h
