"""Remembered sessions in the OS keyring, never in a plain file."""

from __future__ import annotations

import keyring
from keyring.errors import KeyringError, NoKeyringError

SERVICE = "tfa"


class SessionStore:
    """Tokens keyed by server URL and username.

    Over SSH there is usually no keyring backend: then `available` is False, remembering is
    skipped and the app says so once; the token is never written anywhere else.
    """

    def __init__(self) -> None:
        self.available = self._probe()

    @staticmethod
    def _probe() -> bool:
        try:
            backend = keyring.get_keyring()
        except KeyringError:
            return False
        priority = getattr(backend, "priority", 0)
        return isinstance(priority, (int, float)) and priority > 0

    @staticmethod
    def _key(server: str) -> str:
        return f"{SERVICE}:{server}"

    def save(self, server: str, username: str, token: str) -> bool:
        if not self.available:
            return False
        try:
            keyring.set_password(self._key(server), "last-user", username)
            keyring.set_password(self._key(server), username, token)
        except (KeyringError, NoKeyringError):
            self.available = False
            return False
        return True

    def load(self, server: str) -> tuple[str, str] | None:
        """The last remembered (username, token) for this server, if any."""
        if not self.available:
            return None
        try:
            username = keyring.get_password(self._key(server), "last-user")
            token = keyring.get_password(self._key(server), username) if username else None
        except (KeyringError, NoKeyringError):
            return None
        return (username, token) if username and token else None

    def forget(self, server: str, username: str) -> None:
        if not self.available:
            return
        for entry in (username, "last-user"):
            try:
                keyring.delete_password(self._key(server), entry)
            except (KeyringError, NoKeyringError):
                continue
