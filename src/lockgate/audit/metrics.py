"""Prometheus metrics, updated from each request's finished context, and the /metrics route."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily

REQUESTS = Counter("lockgate_requests_total", "Requests by model asked for, model served, and status",
                   ["requested_model", "served_model", "status"])
DECISIONS = Counter("lockgate_directive_decisions_total", "Requests a directive applied to", ["directive"])
SAFEGUARDS = Counter("lockgate_safeguard_hits_total", "Safeguard verdicts by domain and action",
                     ["domain", "action"])
FALLBACKS = Counter("lockgate_fallbacks_total", "Requests served by a fallback, by reason", ["reason"])
LATENCY = Histogram("lockgate_request_duration_seconds", "Time to the end of the answer", ["served_model"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
TOKENS = Counter("lockgate_tokens_total", "Tokens by served model and direction", ["served_model", "direction"])
COST = Counter("lockgate_cost_usd_total", "Cost in USD at catalog prices, by served model", ["served_model"])
CLASSIFY = Histogram("lockgate_safeguard_classify_seconds",
                     "Safety classifier time per judgement: the prompt (input) or one check of an answer (output), "
                     "by the deepest cascade stage that ran (3: MiniLM)", ["direction", "stage"],
                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))


class _MemoCollector:
    """The classifier's per-segment memo, read at scrape time: segments it answered and segments it scored."""

    def __init__(self) -> None:
        self.classifier = None

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("lockgate_safeguard_memo_segments",
                                   "Segments the safety classifier's memo answered (hit) or had scored (miss), by stage",
                                   labels=["stage", "result"])

    def describe(self):
        return [self._family()]

    def collect(self):
        fam = self._family()
        for stage, memo in (getattr(self.classifier, "memo", None) or {}).items():
            fam.add_metric([stage, "hit"], memo.hits)
            fam.add_metric([stage, "miss"], memo.misses)
        yield fam


MEMO = _MemoCollector()
REGISTRY.register(MEMO)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def watch_classifier(classifier) -> None:
    """The classifier whose memo /metrics reports (the gateway's; the last one started in this process)."""
    MEMO.classifier = classifier


def observe_verdict(direction: str, verdict) -> None:
    CLASSIFY.labels(direction, str(verdict.stage)).observe(verdict.latency_ms / 1000)


def observe(ctx, record: dict) -> None:
    served = ctx.model or "-"
    REQUESTS.labels(ctx.requested_model or "-", served, str(ctx.status)).inc()
    for d in ctx.directives:
        DECISIONS.labels(d).inc()
    for s in ctx.safeguards:
        SAFEGUARDS.labels(str(s.get("domain")), str(s.get("action"))).inc()
    if ctx.fallback_reason:
        FALLBACKS.labels(ctx.fallback_reason).inc()
    if record.get("latency_ms") is not None:
        LATENCY.labels(served).observe(record["latency_ms"] / 1000)
    if record.get("tokens_in"):
        TOKENS.labels(served, "input").inc(record["tokens_in"])
    if record.get("tokens_out"):
        TOKENS.labels(served, "output").inc(record["tokens_out"])
    if record.get("cost_micro_usd"):
        COST.labels(served).inc(record["cost_micro_usd"] / 1e6)
