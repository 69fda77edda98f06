"""Request and response values passed between the transport and the application."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from tfa_protocol.types import Error

JsonObject = dict[str, Any]
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed HTTP request; header names are lower-case, the body is fully read."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    peer: str
    request_id: str

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")[:256]


@dataclass(slots=True)
class Response:
    status: int
    body: msgspec.Struct | JsonObject | bytes | None = None  # bytes: sent as they are
    headers: list[tuple[str, str]] = field(default_factory=list)
    route: str | None = None  # the matched route's template, for the access log

    def encoded_body(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        try:
            return _encoder.encode(self.body)
        except UnicodeEncodeError:
            # A lone surrogate (JSON's "\ud800", echoed from a request) has no UTF-8 form;
            # ASCII-escaped JSON still says the same thing.
            return json.dumps(msgspec.to_builtins(self.body), separators=(",", ":")).encode()


def error_response(
    status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    """The one error shape of the API: `{"error": code, "message": text for a person}`."""
    return Response(status, Error(code, message), list(headers or []))


Handler = Callable[[Request], Awaitable[Response]]
