"""Remembered sessions in the OS keyring, never in a plain file.

`keyring` is imported on first use, not with this module: finding its backends takes a good
part of the app's start, and the app asks it from a thread once its first screen is up.
"""

from __future__ import annotations

from types import ModuleType

SERVICE = "tfa"


def _keyring() -> ModuleType:
    import keyring

    return keyring


def _errors() -> tuple[type[Exception], ...]:
    from keyring.errors import KeyringError, NoKeyringError

    return (KeyringError, NoKeyringError)


class SessionStore:
    """Tokens keyed by server URL and username.

    Over SSH there is usually no keyring backend: then `available` is False, remembering is
    skipped and the app says so once; the token is never written anywhere else.
    """

    def __init__(self) -> None:
        self._available: bool | None = None  # not asked yet

    @property
    def available(self) -> bool:
        if self._available is None:
            self._available = self._probe()
        return self._available

    @available.setter
    def available(self, value: bool) -> None:
        self._available = value

    @staticmethod
    def _probe() -> bool:
        try:
            backend = _keyring().get_keyring()
        except _errors():
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
            _keyring().set_password(self._key(server), "last-user", username)
            _keyring().set_password(self._key(server), username, token)
        except _errors():
            self.available = False
            return False
        return True

    def load(self, server: str) -> tuple[str, str] | None:
        """The last remembered (username, token) for this server, if any."""
        if not self.available:
            return None
        try:
            username = _keyring().get_password(self._key(server), "last-user")
            token = _keyring().get_password(self._key(server), username) if username else None
        except _errors():
            return None
        return (username, token) if username and token else None

    def forget(self, server: str, username: str) -> None:
        if not self.available:
            return
        for entry in (username, "last-user"):
            try:
                _keyring().delete_password(self._key(server), entry)
            except _errors():
                continue
