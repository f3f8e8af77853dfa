"""Secrets at rest: AES-256-GCM with key ids, so the key can be rotated without a flag day.

A sealed value is text: `tgs1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id says which key
opens it; the first configured key seals every new value, every configured key opens. The associated data
(`context`, e.g. "webhook_endpoints.secret:we_123") binds a ciphertext to the column and row it was written
for, so a value copied into another row does not open there.

Keys come from the environment, `TIERGATE_SECRET_KEY="k2:<base64 32 bytes>,k1:<base64 old key>"` (a bare
key without an id is id `k1`). Without it, the embedded default (SQLite) generates a key file
(`secret_key_file`, mode 0600) and keeps using it; any other database refuses to start (`SecretKeyMissing`):
a production deployment must not silently invent (or pick up a stray local) key that the next replica does
not have.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config import Settings

PREFIX = "tgs1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
DEFAULT_KEY_ID = "k1"
ENV_NAME = "TIERGATE_SECRET_KEY"


class SecretKeyMissing(RuntimeError):
    """No key for secrets at rest where one is required (production): refuse to start."""


class SecretKeyInvalid(ValueError):
    """`TIERGATE_SECRET_KEY` (or the key file) cannot be parsed."""


class SecretUnreadable(RuntimeError):
    """A sealed value names an unknown key id or fails authentication (wrong key, tampered, other row)."""


def _decode_key(text: str, where: str) -> bytes:
    try:
        # Standard or URL-safe alphabet, padding optional.
        standard = text.replace("-", "+").replace("_", "/")
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyInvalid(f"{where}: the key is not base64") from None
    if len(raw) != KEY_BYTES:
        raise SecretKeyInvalid(
            f"{where}: a key must be {KEY_BYTES} random bytes, base64 encoded (got {len(raw)})"
        )
    return raw


def parse_keys(spec: str, where: str = ENV_NAME) -> list[tuple[str, bytes]]:
    """`"k2:<b64>,k1:<b64>"` → [(id, key), ...], first = the sealing key. A bare `<b64>` is id `k1`."""
    keys: list[tuple[str, bytes]] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        if not sep:
            key_id, encoded = DEFAULT_KEY_ID, item
        if not KEY_ID.match(key_id):
            raise SecretKeyInvalid(f"{where}: key id {key_id!r} must be 1-32 letters, digits, '-' or '_'")
        if key_id in (k for k, _ in keys):
            raise SecretKeyInvalid(f"{where}: key id {key_id!r} is given twice")
        keys.append((key_id, _decode_key(encoded.strip(), where)))
    if not keys:
        raise SecretKeyInvalid(f"{where}: no key given")
    return keys


def new_key_spec(key_id: str = DEFAULT_KEY_ID) -> str:
    """A fresh `<id>:<base64 key>` entry (what `tiergate secret-key` prints)."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


@dataclass(frozen=True)
class SecretBox:
    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretKeyInvalid("a secret box needs at least one key")

    @classmethod
    def from_spec(cls, spec: str, where: str = ENV_NAME) -> SecretBox:
        return cls(tuple(parse_keys(spec, where)))

    @property
    def primary_id(self) -> str:
        return self.keys[0][0]

    def derive(self, purpose: str) -> str:
        """A secret for one purpose (e.g. signing CSRF tokens), derived from the primary key: the same on
        every replica sharing the key, unrelated to the key itself or to another purpose's secret."""
        import hmac

        return hmac.new(self.keys[0][1], f"tiergate:{purpose}".encode(), "sha256").hexdigest()

    def seal(self, plaintext: str, *, context: str) -> str:
        key_id, key = self.keys[0]
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), _aad(key_id, context))
        return f"{PREFIX}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, value: str, *, context: str) -> str:
        """The plaintext of a sealed value. A value that is not sealed (written before encryption at rest,
        see `is_sealed`) is returned as it is: the start-up sweep seals those."""
        if not is_sealed(value):
            return value
        _, key_id, body = value.split(".", 2)
        key = dict(self.keys).get(key_id)
        if key is None:
            raise SecretUnreadable(f"sealed with key id {key_id!r}, which is not configured ({ENV_NAME})")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(key_id, context))
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretUnreadable(
                f"a secret sealed with key {key_id!r} does not open here ({context})"
            ) from None
        return plain.decode()

    def needs_reseal(self, value: str) -> bool:
        """Clear (legacy) or sealed with a key other than the primary one (rotation)."""
        return not is_sealed(value) or key_id_of(value) != self.primary_id

    def reseal_column(self, rows: Iterable[Any], table: str, column: str) -> int:
        """Seal `column` of every row whose value is clear (legacy) or under a retired key, bound to
        `<table>.<column>:<row id>` (the context every sealed column uses); returns how many changed."""
        resealed = 0
        for row in rows:
            value = getattr(row, column)
            if self.needs_reseal(value):
                context = column_context(table, column, row.id)
                setattr(row, column, self.seal(self.open(value, context=context), context=context))
                resealed += 1
        return resealed


def column_context(table: str, column: str, row_id: str) -> str:
    """What a sealed column's value is bound to: a value copied into another row or column won't open."""
    return f"{table}.{column}:{row_id}"


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX + ".") and value.count(".") >= 2


def key_id_of(value: str) -> str | None:
    return value.split(".", 2)[1] if is_sealed(value) else None


def _aad(key_id: str, context: str) -> bytes:
    return f"{PREFIX}|{key_id}|{context}".encode()


# -- where the key comes from ------------------------------------------------------------------------------
def load_box(*, key_spec: str, key_file: str, embedded: bool) -> SecretBox:
    """The configured key (`TIERGATE_SECRET_KEY`) wins. Otherwise, for the embedded default only, the key
    file: read if it exists, else created (0600). Any other database without the variable refuses to start,
    even if a key file from an embedded run lies around: every replica must share one configured key."""
    if key_spec.strip():
        return SecretBox.from_spec(key_spec)
    if not embedded or not key_file:
        raise SecretKeyMissing(
            f"{ENV_NAME} is not set: Tiergate encrypts stored secrets (signing keys, webhook and SSO client "
            f"secrets) and will not invent a key for a shared database. Generate one with "
            f"`tiergate secret-key` and give the same {ENV_NAME} to every replica and worker."
        )
    path = Path(key_file)
    if path.exists():
        return SecretBox.from_spec(path.read_text().strip(), where=str(path))
    return SecretBox.from_spec(_create_key_file(path), where=str(path))


def _create_key_file(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = new_key_spec("local")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this embedded install made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(spec + "\n")
    return spec


_boxes: dict[tuple[str, str, bool], SecretBox] = {}


def box_for(settings: Settings, *, embedded: bool | None = None) -> SecretBox:
    """The process's box for these settings (loaded once). `embedded` defaults to the settings' database;
    the composition root passes the injected database's own answer."""
    is_embedded = settings.embedded if embedded is None else embedded
    cache_key = (settings.secret_key, settings.secret_key_file, is_embedded)
    box = _boxes.get(cache_key)
    if box is None:
        box = load_box(key_spec=settings.secret_key, key_file=settings.secret_key_file, embedded=is_embedded)
        _boxes[cache_key] = box
    return box
