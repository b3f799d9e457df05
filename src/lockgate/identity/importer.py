"""`principals import FILE.csv`: validate every row first, then upsert all in one transaction."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from lockgate.identity.attributes import ASSURANCE, Attestation, normalise_fact
from lockgate.identity.keys import now
from lockgate.identity.principals import InvalidId, check_id
from lockgate.store import Store
from lockgate.store.models import Principal

COLUMNS = ["id", "name", "org", "citizenships", "permanent_residence", "protected_individual", "programs",
           "assurance", "verified_at", "expires_at"]


class ImportError_(ValueError):
    """A row that cannot be imported; nothing of the file was applied."""


@dataclass
class Row:
    id: str
    name: str
    org: str | None
    facts: dict[str, dict]


def _when(value: str, line: int, column: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ImportError_(f"line {line}: {column} {value!r} is not an ISO 8601 date") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def parse_rows(path: Path) -> list[Row]:
    source = f"import:{path.name}"
    rows: list[Row] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ImportError_(f"line 1: missing columns: {', '.join(missing)} (expected {','.join(COLUMNS)})")
        for rec in reader:
            line = reader.line_num
            pid = (rec["id"] or "").strip()
            if not pid:
                raise ImportError_(f"line {line}: id is empty")
            try:
                check_id(pid)
            except InvalidId as e:
                raise ImportError_(f"line {line}: {e}") from e
            if pid in seen:
                raise ImportError_(f"line {line}: id {pid!r} appears twice in the file")
            seen.add(pid)
            level = (rec["assurance"] or "").strip().lower()
            if level not in ASSURANCE or level == "none":
                raise ImportError_(f"line {line}: assurance must be self, org or kyc, got {rec['assurance']!r}")
            verified = _when(rec["verified_at"] or "", line, "verified_at") or now()
            expires = _when(rec["expires_at"] or "", line, "expires_at")
            facts = {}
            for fact in ("citizenships", "permanent_residence", "protected_individual", "programs"):
                try:
                    value = normalise_fact(fact, rec[fact] or "")
                except ValueError as e:
                    raise ImportError_(f"line {line}: {e}") from None
                facts[fact] = Attestation(value=value, source=source, assurance=level, verified_at=verified,
                                          expires_at=expires).model_dump(mode="json")
            rows.append(Row(pid, (rec["name"] or "").strip() or pid, (rec["org"] or "").strip() or None, facts))
    return rows


def import_csv(store: Store, path: Path, progress: Callable[[int], None] | None = None,
               batch: int = 2000) -> dict[str, int]:
    """Idempotent upsert. Returns counts. Raises ImportError_ (naming the line) before writing anything."""
    rows = parse_rows(path)
    created = updated = 0
    with store.change() as s:
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            existing = {p.id: p for p in s.query(Principal).filter(Principal.id.in_([r.id for r in chunk]))}
            for r in chunk:
                p = existing.get(r.id)
                if p is None:
                    s.add(Principal(id=r.id, name=r.name, org=r.org, created_at=now(), attributes=r.facts,
                                    status="active"))
                    created += 1
                else:
                    p.name, p.org, p.attributes = r.name, r.org, {**(p.attributes or {}), **r.facts}
                    updated += 1
            s.flush()
            if progress:
                progress(len(chunk))
    return {"rows": len(rows), "created": created, "updated": updated}
