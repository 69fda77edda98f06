"""How long one GET takes from outside: sequential requests over one keep-alive connection
(http.client, so the client adds as little of its own as a Python client can), HTTP included.
For the page benchmarks (B4, B8), whose figure is a p50 of one request at a time."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

from .harness import percentile
from .servers import PASSWORD, sign_in


class Client:
    """One keep-alive connection to a server, signed in as `username`."""

    def __init__(self, url: str, username: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.token = sign_in(url, username, PASSWORD)
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def get(self, path: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            self.connection.request("GET", path, headers=headers)
            answer = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # The server closes a keep-alive connection idle for 5 s (while the other
            # servers were measured): open a new one, as any client would.
            self.connection.close()
            self.connection.request("GET", path, headers=headers)
            answer = self.connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
        return body

    def p50_ms(self, path: str, requests: int, warm: int = 5) -> float:
        """The median time of `requests` GETs of `path`, after `warm` untimed ones."""
        for _ in range(warm):
            self.get(path)
        took = []
        for _ in range(requests):
            started = time.perf_counter()
            self.get(path)
            took.append((time.perf_counter() - started) * 1000)
        return percentile(took, 0.5)

    def close(self) -> None:
        self.connection.close()
