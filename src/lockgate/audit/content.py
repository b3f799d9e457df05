"""Prompts and answers, encrypted at rest (AES-256-GCM) and purged after the retention window.

The chained record holds only SHA-256(salt || content); the salt lives inside the ciphertext, so once
the content is purged the hash cannot be used to confirm a guessed prompt, and verification is unaffected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import threading
from datetime import datetime, timedelta, timezone

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, func, select

from lockgate import config
from lockgate.audit.tables import CONTENT

_keys: dict[str, bytes] = {}

# Salts and nonces come from a buffer of os.urandom bytes: one urandom call per request gave up the GIL
# on the event loop, which then waited for the audit writer thread to hand it back.
_POOL_BYTES = 4096
_pool = bytearray()
_pool_lock = threading.Lock()
_aead: dict[bytes, AESGCM] = {}


def _random(n: int) -> bytes:
    global _pool
    with _pool_lock:
        if len(_pool) < n:
            _pool = bytearray(os.urandom(_POOL_BYTES))
        out = bytes(_pool[:n])
        del _pool[:n]
        return out


def _forget_pool() -> None:  # a forked child must never reuse its parent's nonces
    _pool.clear()


os.register_at_fork(after_in_child=_forget_pool)


def content_key() -> bytes:
    """32 bytes from LOCKGATE_CONTENT_KEY (base64 or hex), else $LOCKGATE_HOME/content.key (made 0600)."""
    env = os.environ.get("LOCKGATE_CONTENT_KEY")
    if env:
        key = bytes.fromhex(env) if len(env) == 64 else base64.b64decode(env)
        if len(key) != 32:
            raise ValueError("LOCKGATE_CONTENT_KEY must be 32 bytes, base64 or hex")
        return key
    path = config.home() / "content.key"
    if str(path) in _keys:
        return _keys[str(path)]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
            f.flush()
            os.fsync(f.fileno())
    except FileExistsError:
        pass
    key = path.read_bytes()
    _keys[str(path)] = key
    return key


def seal(request_id: str, content: dict, key: bytes) -> tuple[bytes, str]:
    """Returns (nonce || ciphertext, content hash). The request id is bound as associated data."""
    salt = _random(16)
    plain = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(salt + plain).hexdigest()
    nonce = _random(12)
    aead = _aead.get(key) or _aead.setdefault(key, AESGCM(key))
    blob = nonce + aead.encrypt(nonce, salt + plain, request_id.encode())
    return blob, digest


def open_sealed(request_id: str, blob: bytes, key: bytes) -> tuple[dict, str]:
    """Returns (content, content hash); raises cryptography's InvalidTag if it was altered."""
    plain = AESGCM(key).decrypt(blob[:12], blob[12:], request_id.encode())
    return json.loads(plain[16:]), hashlib.sha256(plain).hexdigest()


def read(store, request_id: str) -> dict | None:
    with store.engine.connect() as c:
        blob = c.execute(select(CONTENT.c.blob).where(CONTENT.c.request_id == request_id)).scalar()
    return None if blob is None else open_sealed(request_id, blob, content_key())[0]


def purge(store, days: float, now: datetime | None = None, *, dry_run: bool = False) -> int:
    """Deletes content older than `days` (or, with `dry_run`, only counts it). Returns how many. Metadata stays."""
    if not (math.isfinite(days) and 0 <= days <= 36500):  # a negative window would delete everything
        raise ValueError(f"days must be between 0 and 36500, not {days}")
    older = CONTENT.c.created_at < (now or datetime.now(timezone.utc)) - timedelta(days=days)
    with store.engine.begin() as c:
        if dry_run:
            return c.execute(select(func.count()).select_from(CONTENT).where(older)).scalar_one()
        return c.execute(delete(CONTENT).where(older)).rowcount
