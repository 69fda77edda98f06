"""Fixtures for the proofs with real programs (tests/system/harness.py does the work): each
gives a fresh, uniquely named thing and removes it after the test, whatever happened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import paramiko
import pytest

from .harness import Sshd, UnixUser, client_key, pam_service_file, running_sshd, throwaway_user


@pytest.fixture
def unix_user() -> Iterator[UnixUser]:
    """A throw-away Unix user tfa-t-<random> with a home in a temporary folder."""
    with throwaway_user() as user:
        yield user


@pytest.fixture
def pam_service() -> Iterator[Callable[[str], str]]:
    """Writes /etc/pam.d/tfa-t-<random> from the given text and returns the service name."""
    with ExitStack() as files:
        yield lambda content: files.enter_context(pam_service_file(content))


@pytest.fixture
def sshd() -> Iterator[Callable[[str], Sshd]]:
    """Starts a real sshd on 127.0.0.1 whose PAM service file holds the given stack."""
    with ExitStack() as servers:
        yield lambda pam_stack: servers.enter_context(running_sshd(pam_stack))


@pytest.fixture
def ssh_key(tmp_path: Path) -> tuple[paramiko.PKey, str]:
    """A client key pair: the key, and its line for authorized_keys."""
    return client_key(tmp_path)
