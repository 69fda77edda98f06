"""The server key: one 32-byte file outside the database, from which purpose keys derive."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
_NONCE_BYTES = 12


class KeyFileError(Exception):
    pass


def create_key_file(path: Path) -> None:
    """Write a fresh key readable by the owner only; refuse to replace an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"key file {path} already exists") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(KEY_BYTES))
        handle.flush()
        os.fsync(handle.fileno())


def load_key_file(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found (run 'tfa-server init')") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    if len(key) != KEY_BYTES:
        raise KeyFileError(f"key file {path} is not a tfa key ({len(key)} bytes)")
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class ServerKeys:
    """Separate keys per purpose, so the recovery-code MAC key never doubles as a cipher key."""

    def __init__(self, master: bytes) -> None:
        self._secrets = AESGCM(_derive(master, b"tfa/totp-secret/aes-256-gcm/v1"))
        self._recovery_mac = _derive(master, b"tfa/recovery-code/hmac-sha256/v1")

    def encrypt_secret(self, plaintext: str, user_id: int) -> bytes:
        """AES-256-GCM with the user id as associated data: a row copied to another user fails."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._secrets.encrypt(nonce, plaintext.encode(), _aad(user_id))

    def decrypt_secret(self, blob: bytes, user_id: int) -> str:
        nonce, ciphertext = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
        return self._secrets.decrypt(nonce, ciphertext, _aad(user_id)).decode()

    def recovery_code_digest(self, normalized_code: str, user_id: int) -> str:
        """HMAC-SHA-256 salted with the user id: a database dump alone reveals no code."""
        message = f"{user_id}:{normalized_code}".encode()
        return hmac.new(self._recovery_mac, message, hashlib.sha256).hexdigest()


def _aad(user_id: int) -> bytes:
    return f"tfa-user:{user_id}".encode()


def token_digest(token: str) -> str:
    """Session tokens are stored only as SHA-256: they are 256 random bits, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
