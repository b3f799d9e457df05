"""Verification of the trail, in the store or in an exported bundle, and the bundle export itself.

The verifier recomputes every link from the stored canonical JSON, checks every checkpoint signature
with the public key, and compares the recomputed head at each signed size. It stops at the first
problem and names the record: edited (hash differs), removed (sequence gap or a signed size beyond
the end), reordered (a record holding another position's body), or rewritten (links recomputed by
someone without the signing key: the head no longer matches a signed checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from sqlalchemy import select

from lockgate.audit import signing
from lockgate.audit.chain import GENESIS, checkpoint_message, checkpoint_now, iso, link
from lockgate.audit.tables import CHECKPOINTS, HEAD, RECORDS

BUNDLE_FORMAT = "lockgate-audit-bundle/1"


@dataclass
class Report:
    ok: bool = True
    records: int = 0
    checkpoints: int = 0
    problem: str | None = None
    seq: int | None = None  # the first record found wrong
    notes: list[str] = field(default_factory=list)

    def fail(self, seq: int | None, problem: str) -> "Report":
        self.ok, self.seq, self.problem = False, seq, problem
        return self


def check(rows: Iterable[tuple], checkpoints: list[dict], pub, first_seq: int = 1, first_prev: str = GENESIS,
          claimed_size: int | None = None) -> Report:
    """rows: (seq, body, prev, hash) in seq order; checkpoints: dicts with size, head, at, signature."""
    rep = Report()
    signed: dict[int, dict] = {}
    for cp in sorted(checkpoints, key=lambda c: c["size"]):
        if not signing.verify(pub, checkpoint_message(cp["size"], cp["head"], cp["at"]), cp["signature"]):
            return rep.fail(None, f"checkpoint at size {cp['size']} ({cp['at']}): signature does not verify "
                                  "with this public key (forged or signed by another key)")
        signed[cp["size"]] = cp
    rep.checkpoints = len(signed)
    expected, prev, last_cp = first_seq, first_prev, first_seq - 1
    for seq, body, stored_prev, stored_hash in rows:
        if seq != expected:
            return rep.fail(expected, f"record {expected} is missing (removed; the next stored record is {seq})")
        try:
            claimed = json.loads(body).get("seq")
        except (ValueError, AttributeError):
            return rep.fail(seq, f"record {seq} was edited (its body is not valid JSON)")
        if claimed != seq:
            return rep.fail(seq, f"record {seq} holds the body of record {claimed}: records were reordered")
        if stored_prev != prev:
            return rep.fail(seq, f"record {seq} was edited (its link to record {seq - 1} does not match)")
        h = link(prev, body)
        if h != stored_hash:
            return rep.fail(seq, f"record {seq} was edited (its content does not match its hash)")
        cp = signed.get(seq)
        if cp is not None:
            if cp["head"] != h:
                return rep.fail(last_cp + 1, f"records {last_cp + 1}..{seq} were rewritten: the chain head at "
                                             f"{seq} differs from the checkpoint signed at {cp['at']}")
            last_cp = seq
        prev, expected = h, expected + 1
        rep.records += 1
    end = expected - 1
    beyond = [s for s in signed if s > end]
    if beyond:
        return rep.fail(end + 1, f"records {end + 1}..{max(beyond)} are missing (removed): a checkpoint "
                                 f"signed {signed[max(beyond)]['at']} covers {max(beyond)} records")
    if claimed_size is not None and claimed_size > end:
        return rep.fail(end + 1, f"records {end + 1}..{claimed_size} are missing (removed from the end)")
    if end > last_cp:
        rep.notes.append(f"records {last_cp + 1}..{end} are not yet covered by a signed checkpoint")
    return rep


def _checkpoint_dicts(conn, min_size: int = 0, max_size: int | None = None) -> list[dict]:
    q = select(CHECKPOINTS).where(CHECKPOINTS.c.size >= min_size).order_by(CHECKPOINTS.c.size)
    if max_size is not None:
        q = q.where(CHECKPOINTS.c.size <= max_size)
    return [{"size": r.size, "head": r.head, "at": iso(r.at), "key_id": r.key_id, "signature": r.signature}
            for r in conn.execute(q)]


def _rows(conn, first: int = 1, last: int | None = None, chunk: int = 5000):
    # Keyset pagination: constant memory on a trail of any length, on both databases.
    while True:
        q = select(RECORDS.c.seq, RECORDS.c.body, RECORDS.c.prev, RECORDS.c.hash).where(RECORDS.c.seq >= first)
        if last is not None:
            q = q.where(RECORDS.c.seq <= last)
        batch = conn.execute(q.order_by(RECORDS.c.seq).limit(chunk)).all()
        yield from (tuple(r) for r in batch)
        if len(batch) < chunk:
            return
        first = batch[-1][0] + 1


def verify_store(store, pub=None) -> Report:
    pub = pub or signing.load_or_create_key().public_key()
    with store.engine.connect() as conn:
        size = conn.execute(select(HEAD.c.size).where(HEAD.c.id == 1)).scalar_one()
        return check(_rows(conn), _checkpoint_dicts(conn), pub, claimed_size=size)


def export(store, out: Path, since: datetime | None = None) -> dict:
    """Writes records (from `since`), the checkpoints over them and the public key to `out`."""
    size, _ = checkpoint_now(store.engine)
    out.mkdir(parents=True, exist_ok=True)
    with store.engine.connect() as conn:
        first = 1
        if since is not None:
            first = conn.execute(select(RECORDS.c.seq).where(RECORDS.c.at >= since.astimezone(timezone.utc))
                                 .order_by(RECORDS.c.seq).limit(1)).scalar() or size + 1
        n = 0
        with open(out / "records.jsonl", "w") as f:
            for seq, body, prev, h in _rows(conn, first, size):
                f.write(json.dumps({"seq": seq, "prev": prev, "hash": h, "body": body}, ensure_ascii=False) + "\n")
                n += 1
        cps = _checkpoint_dicts(conn, first, size)
    with open(out / "checkpoints.jsonl", "w") as f:
        f.writelines(json.dumps(cp) + "\n" for cp in cps)
    (out / "public_key.pem").write_text(signing.public_key_pem())
    manifest = {"format": BUNDLE_FORMAT, "first_seq": first, "last_seq": size, "records": n,
                "exported_at": iso(datetime.now(timezone.utc))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def verify_bundle(path: Path, public_key_pem: str | None = None) -> Report:
    """Needs nothing but the directory (and, ideally, a public key obtained independently)."""
    pub = signing.load_public_key(public_key_pem or (path / "public_key.pem").read_text())
    manifest = json.loads((path / "manifest.json").read_text())
    lines = [json.loads(x) for x in (path / "records.jsonl").read_text().splitlines() if x.strip()]
    cps = [json.loads(x) for x in (path / "checkpoints.jsonl").read_text().splitlines() if x.strip()]
    first_prev = lines[0]["prev"] if lines else GENESIS
    if manifest["first_seq"] == 1 and first_prev != GENESIS:
        return Report().fail(1, "record 1 was edited (it does not start from the genesis hash)")
    rows = ((x["seq"], x["body"], x["prev"], x["hash"]) for x in lines)
    return check(rows, cps, pub, manifest["first_seq"], first_prev, claimed_size=manifest["last_seq"])
