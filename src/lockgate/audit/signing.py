"""The gateway's Ed25519 key: signs audit checkpoints (and directive versions).

Created on first use as $LOCKGATE_HOME/signing.key (PKCS#8 PEM, mode 0600). Third parties verify with
the public key alone; `key_id` (SHA-256 of the raw public key) names which key signed what.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lockgate import config

_cache: dict[Path, Ed25519PrivateKey] = {}


def key_path() -> Path:
    return config.home() / "signing.key"


def load_or_create_key() -> Ed25519PrivateKey:
    path = key_path()
    if path in _cache:
        return _cache[path]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        # O_EXCL: two processes starting together must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_or_create_key()
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    _cache[path] = key
    return key


def public_key_pem(key: Ed25519PrivateKey | None = None) -> str:
    key = key or load_or_create_key()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    pub = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(pub, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return pub


def key_id(pub: Ed25519PublicKey) -> str:
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def sign(message: bytes, key: Ed25519PrivateKey | None = None) -> str:
    return base64.b64encode((key or load_or_create_key()).sign(message)).decode()


def verify(pub: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        pub.verify(base64.b64decode(signature), message)
        return True
    except (InvalidSignature, ValueError):
        return False
