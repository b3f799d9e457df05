"""Transparency report for one directive, from the audit trail: counts only, never content."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone

from sqlalchemy import select

from lockgate.audit.chain import iso
from lockgate.audit.tables import RECORDS

MIN_CELL = 1  # aggregates below this are shown as "<n" (raise it to protect small groups)


def _outcome(rec: dict) -> str:
    if rec.get("status") == 403:
        return "denied"
    if rec.get("model_served") and rec.get("model_served") != rec.get("model_requested"):
        return f"re-routed to {rec['model_served']}"
    if rec.get("status") and rec["status"] >= 400:
        return f"failed ({rec['status']})"
    return "served with notice" if rec.get("notice") else "served"


def collect(store, directive: str, since: datetime | None = None) -> dict:
    agg = {"requests": 0, "principals": set(), "outcomes": Counter(), "by_citizenship": Counter(), "by_org": Counter(),
           "by_model": Counter(), "by_country": Counter(), "notices": Counter(), "first": None, "last": None,
           "versions": set()}
    q = select(RECORDS.c.body).where(RECORDS.c.kind == "request").order_by(RECORDS.c.seq)
    if since is not None:
        q = q.where(RECORDS.c.at >= since)
    with store.engine.connect() as c:
        for (body,) in c.execute(q.execution_options(yield_per=2000)):
            if directive not in body:  # cheap pre-filter before parsing
                continue
            rec = json.loads(body)
            if directive not in rec.get("directives", []):
                continue
            agg["requests"] += 1
            agg["principals"].add(rec.get("principal"))
            agg["outcomes"][_outcome(rec)] += 1
            for cz in rec.get("citizenships") or ["(not attested)"]:
                agg["by_citizenship"][cz] += 1
            agg["by_org"][rec.get("org") or "(none)"] += 1
            agg["by_model"][rec.get("model_requested") or "?"] += 1
            agg["by_country"][rec.get("country") or "(unknown)"] += 1
            if rec.get("notice"):
                agg["notices"][rec["notice"]] += 1
            if rec.get("policy_version") is not None:
                agg["versions"].add(str(rec["policy_version"]))
            agg["first"] = agg["first"] or rec["at"]
            agg["last"] = rec["at"]
    return agg


def _table(title: str, counts: Counter, head: str) -> list[str]:
    lines = [f"### {title}", "", f"| {head} | requests |", "|---|---:|"]
    for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"| {k} | {n if n >= MIN_CELL else f'<{MIN_CELL}'} |")
    return lines + [""]


class UnknownDirective(LookupError):
    pass


def markdown(store, directive: str, since: datetime | None = None) -> str:
    """The report; UnknownDirective when the id was never applied and no request names it (a typo, most likely:
    an empty report would read as "nobody was affected")."""
    from lockgate.directives import store as dstore

    a = collect(store, directive, since)
    if not a["requests"] and not dstore.history(store, directive):
        raise UnknownDirective(f"no directive {directive!r} was ever applied here (see `lockgate directive list`)")
    out = [f"# Transparency report: directive `{directive}`", "",
           f"Generated {iso(datetime.now(timezone.utc))} from the signed audit trail (`lockgate audit verify`).",
           "Counts only: no prompt, answer or identity of any person appears in this report.", ""]
    if not a["requests"]:
        return "\n".join(out + ["No request in the trail was affected by this directive.", ""])
    out += ["## Summary", "",
            f"- Requests affected: **{a['requests']}**",
            f"- Distinct principals affected: **{len(a['principals'])}**",
            f"- Period: {a['first']} to {a['last']}",
            f"- Policy versions in force: {', '.join(sorted(a['versions'])) or 'not recorded'}", ""]
    out += ["## What the directive changed", ""] + _table("Outcome", a["outcomes"], "outcome")[2:]
    if a["notices"]:
        out += _table("Notices shown to users", a["notices"], "notice")
    out += ["## Who was affected", ""]
    out += _table("By citizenship (attested attribute)", a["by_citizenship"], "citizenship")
    out += _table("By organisation", a["by_org"], "organisation")
    out += _table("By client country", a["by_country"], "country")
    out += _table("By model requested", a["by_model"], "model")
    return "\n".join(out)
