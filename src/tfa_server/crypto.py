"""The server key: one 32-byte file outside the database, from which purpose keys derive."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
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


def key_fingerprint(master: bytes) -> str:
    """A key check value the database keeps, so a server given the wrong key file (or the
    old one after a rotation) refuses to start instead of failing at each sign-in. Derived
    for this purpose alone: it tells nothing about the other keys."""
    return _derive(master, b"tfa/key-fingerprint/v1")[:16].hex()


class ServerKeys:
    """Separate keys per purpose, so the recovery-code MAC key never doubles as a cipher key.

    Recovery codes are stored only as MACs, so a new key (`tfa-server rotate-key`) cannot
    recompute them: it MACs each stored digest again under its own key (`rewrap`), and keeps
    the retired MAC keys, sealed under itself, for as long as codes made under them remain.
    A code made under key generation g is then checked as MAC_g, re-MACed by every later
    key in turn (`recovery_code_digest` with `retired`, oldest first).
    """

    def __init__(self, master: bytes) -> None:
        self._secrets = AESGCM(_derive(master, b"tfa/totp-secret/aes-256-gcm/v1"))
        self._recovery_mac = _derive(master, b"tfa/recovery-code/hmac-sha256/v1")
        self.fingerprint = key_fingerprint(master)

    def encrypt_secret(self, plaintext: str, user_id: int) -> bytes:
        """AES-256-GCM with the user id as associated data: a row copied to another user fails."""
        return self._seal(plaintext.encode(), _aad(user_id))

    def decrypt_secret(self, blob: bytes, user_id: int) -> str:
        return self._open(blob, _aad(user_id)).decode()

    def recovery_code_digest(
        self, normalized_code: str, user_id: int, retired: Sequence[bytes] = ()
    ) -> str:
        """HMAC-SHA-256 salted with the user id: a database dump alone reveals no code.

        `retired`: the MAC keys of the generations since the code was made, oldest first."""
        first, *later = [*retired, self._recovery_mac]
        message = f"{user_id}:{normalized_code}".encode()
        digest = hmac.new(first, message, hashlib.sha256).hexdigest()
        for key in later:
            digest = _rewrap(key, digest)
        return digest

    def rewrap(self, digest: str) -> str:
        """A stored digest made under an older key, MACed again under this one: after a
        rotation the stored values can be checked only with the current key."""
        return _rewrap(self._recovery_mac, digest)

    def seal_retired(self, retired: ServerKeys, generation: int) -> bytes:
        """A retired key's recovery MAC key, sealed under this key for the database."""
        return self._seal(retired._recovery_mac, _retired_aad(generation))

    def reseal(self, sealed: bytes, generation: int, new: ServerKeys) -> bytes:
        """A retired MAC key sealed under this key, sealed under `new` instead."""
        return new._seal(self.unseal_retired(sealed, generation), _retired_aad(generation))

    def unseal_retired(self, sealed: bytes, generation: int) -> bytes:
        return self._open(sealed, _retired_aad(generation))

    def _seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._secrets.encrypt(nonce, plaintext, aad)

    def _open(self, sealed: bytes, aad: bytes) -> bytes:
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        return self._secrets.decrypt(nonce, ciphertext, aad)


def _rewrap(key: bytes, digest: str) -> str:
    # "rewrap:" cannot begin a first digest's message, which begins with the user id.
    return hmac.new(key, f"rewrap:{digest}".encode(), hashlib.sha256).hexdigest()


def _retired_aad(generation: int) -> bytes:
    return f"tfa-retired-recovery-key:{generation}".encode()


def _aad(user_id: int) -> bytes:
    return f"tfa-user:{user_id}".encode()


def token_digest(token: str) -> str:
    """Session tokens are stored only as SHA-256: they are 256 random bits, so no salt is needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)
