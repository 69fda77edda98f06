"""The server's TLS certificate, and reloading it from its files when they are renewed."""

from __future__ import annotations

import ssl
from pathlib import Path


class CertificateError(Exception):
    pass


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, cert, key)
    return context


def _load(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot load the TLS certificate or key: {exc}") from None


class Certificates:
    """The context the listener serves with, and the files it came from.

    `reload` (on SIGHUP: certbot and the like renew the files in place) loads the pair into
    the same context, which every new connection's handshake uses from then on; connections
    already open keep theirs and are not dropped. The pair is first loaded into a fresh
    context of its own, so a broken one (a key that does not match, half-written files) is
    refused before it can touch the one in use.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self.cert = cert
        self.key = key
        self.context = _context(cert, key)

    def reload(self) -> None:
        _context(self.cert, self.key)
        _load(self.context, self.cert, self.key)
