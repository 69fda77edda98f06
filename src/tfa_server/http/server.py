"""HTTP/1.1 transport: asyncio streams and h11, one request/response cycle at a time per connection.

Modelled on h11's example server, hypercorn's ``protocol/h11.py`` and uvicorn's ``h11_impl.py``,
but every limit is enforced here so the application only ever sees complete, bounded JSON
requests. Handling is sequential per connection, which is also the back-pressure: while a request
is being handled nothing more is read from that client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from ipaddress import IPv6Address, ip_address, ip_network
from urllib.parse import parse_qsl, unquote

import h11

from tfa_server.http.forwarded import TrustedProxies
from tfa_server.http.messages import Handler, Request, Response, error_response

_READ_SIZE = 65536
# After an error response the client may still be sending. Closing with unread input makes the
# kernel answer with RST, which can destroy the response before the client reads it, so (like
# Apache's lingering close) we half-close and discard input for a moment first.
_LINGER = 1.0
_CLOSE_TIMEOUT = 1.0  # a TLS close_notify or a full send buffer must not hold a connection open
_NO_BODY_STATUSES = frozenset({204, 304})
_FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})  # framing is ours
_PROTOCOL_ERRORS = {
    431: ("request_header_fields_too_large", "The request line and headers are too large."),
    501: ("not_implemented", "This transfer encoding is not supported."),
}
_UNKNOWN_LENGTH = "The body's length is unknown: Transfer-Encoding must end with chunked."
_HTTP_MAJOR = b"1."  # HTTP/1.x only; a later 1.x minor version is served as 1.1 (RFC 9112 2.6)
# h11's error texts quote the offending bytes (a request line with its query string, a header
# with its value), so the log gets one of these fixed descriptions instead, never the text.
_PROTOCOL_ERROR_KINDS = (
    "illegal request line",
    "no request line received",
    "illegal header line",
    "Illegal header name",
    "Illegal header value",
    "Illegal method characters",
    "Illegal target characters",
    "continuation line at start of headers",
    "Missing mandatory Host: header",
    "Found multiple Host: headers",
    "bad Content-Length",
    "conflicting Content-Length headers",
    "multiple Transfer-Encoding headers",
    "Only Transfer-Encoding: chunked is supported",
    "Receive buffer too long",
    "request head too large",
    "malformed chunk",
    "peer closed connection",
    "peer unexpectedly closed connection",
)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    max_head_bytes: int = 16 * 1024  # request line + headers; h11 max_incomplete_event_size
    max_body_bytes: int = 64 * 1024
    request_timeout: float = 10.0  # whole request (head + body) must arrive within this
    keepalive_timeout: float = 5.0  # idle keep-alive connections closed after this
    max_connections: int = 512  # beyond: 503 and close
    # A client holds one connection at a time and lets it go after keepalive_timeout, so 64 is
    # far more than a host or a NAT'd office needs, while one address can take only an eighth of
    # the slots. IPv6 clients count per /64, which one host can fill with addresses.
    max_connections_per_address: int = 64  # beyond: 503 and close
    shutdown_grace: float = 10.0  # how long shutdown waits for requests in flight


class _Reject(Exception):
    """Ends the exchange with an error response; the connection closes as input is unread."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status)
        self.response = error_response(status, code, message)


@dataclass(slots=True)
class _Exchange:
    """What the response headers and the access log need to know about one cycle."""

    peer: str
    request_id: str
    started: float
    method: str = "-"
    path: str = "-"  # still percent-encoded: safe to log, cannot forge log lines
    route: str | None = None  # the route's template, where the handler matched one
    status: int = 0
    duration_ms: float = 0.0


@dataclass(slots=True)
class _ConnState:
    idle: bool = True  # no request in flight: shutdown may cancel it without losing work


class _PausedProtocol(asyncio.StreamReaderProtocol):
    """Reads nothing until the connection is admitted: a TLS handshake must see every byte."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if isinstance(transport, asyncio.ReadTransport):
            transport.pause_reading()
        super().connection_made(transport)


def _address_key(peer: str) -> str:
    """What a client's connections count under: its address, or for IPv6 its /64."""
    try:
        address = ip_address(peer)
        if isinstance(address, IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ip_network(f"{address}/64", strict=False))
    except ValueError:
        pass
    return peer


def _protocol_error_kind(exc: h11.RemoteProtocolError) -> str:
    text = str(exc)
    return next((kind for kind in _PROTOCOL_ERROR_KINDS if text.startswith(kind)), "malformed")


def _final_transfer_coding(head: bytes) -> bytes:
    """The last coding named by the Transfer-Encoding header lines of a raw request head."""
    codings = [b""]
    for line in head.split(b"\r\n\r\n", 1)[0].split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"transfer-encoding":
            codings += value.split(b",")
    return codings[-1].strip().lower()


class _HttpDate:
    """The Date header's value, formatted once a second rather than once a response."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._text = second, formatdate(second, usegmt=True)
        return self._text


async def _read_by(reader: asyncio.StreamReader, deadline: float) -> bytes:
    """What the client sends next, or TimeoutError once the loop's clock passes `deadline`."""
    async with asyncio.timeout_at(deadline):
        return await reader.read(_READ_SIZE)


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


class HttpServer:
    """Serves ``handler`` over HTTP/1.1 (optionally TLS) with the limits of ``HttpLimits``."""

    def __init__(
        self,
        handler: Handler,
        limits: HttpLimits = HttpLimits(),
        *,
        ssl_context: ssl.SSLContext | None = None,
        proxies: TrustedProxies | None = None,
        access_log: logging.Logger | None = None,
        error_log: logging.Logger | None = None,
    ) -> None:
        self._handler = handler
        self._limits = limits
        self._ssl_context = ssl_context
        self._proxies = proxies or TrustedProxies()  # none: every peer is the client
        self._access_log = access_log or logging.getLogger("tfa_server.http.access")
        self._error_log = error_log or logging.getLogger("tfa_server.http.error")
        self._server: asyncio.Server | None = None
        self._sockname: tuple[str, int] | None = None
        self._tasks: dict[asyncio.Task[None], _ConnState] = {}
        # Connections from accept to close (TLS handshake and linger included), in all and per
        # address (key); refusals still being answered are counted apart.
        self._active = 0
        self._per_address: dict[str, int] = {}
        self._refusing = 0
        self._draining = False
        self._closed = asyncio.Event()
        self._date = _HttpDate()

    async def start(self, host: str, port: int) -> None:
        # Plain TCP here, TLS once the connection is counted (_on_connect): a handshake that
        # never finishes must hold one of its client's slots, not an invisible extra one.
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _PausedProtocol(asyncio.StreamReader(loop=loop), self._on_connect, loop=loop),
            host,
            port,
        )
        name = self._server.sockets[0].getsockname()
        self._sockname = (str(name[0]), int(name[1]))

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    @property
    def port(self) -> int:
        if self._sockname is None:
            raise RuntimeError("server not started")
        return self._sockname[1]

    @property
    def host(self) -> str:
        if self._sockname is None:
            raise RuntimeError("server not started")
        return self._sockname[0]

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def shutdown(self) -> None:
        """Drain: in-flight requests get ``shutdown_grace`` to finish, idle connections go now."""
        if self._draining:
            await self._closed.wait()
            return
        self._draining = True
        try:
            if self._server is not None:
                self._server.close()
            for task, state in list(self._tasks.items()):
                if state.idle:
                    task.cancel()
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=self._limits.shutdown_grace)
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:  # cancelled connections abort their transports, so this is quick
                await asyncio.wait(list(self._tasks), timeout=_CLOSE_TIMEOUT)
            if self._server is not None:
                # 3.12+ wait_closed() waits for every transport to detach, 3.11 returns at once;
                # bounded either way so a stuck transport cannot hang shutdown.
                try:
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await self._server.wait_closed()
                except TimeoutError:
                    self._error_log.warning("listener did not close within %ss", _CLOSE_TIMEOUT)
        finally:
            self._closed.set()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else str(peername or "")
        # A trusted proxy carries many clients: only the global cap applies to it.
        key = None if self._proxies.trusts(peer) else _address_key(peer)
        busy = self._busy(key)
        refused = busy is not None
        # Accepted just before the listener closed; or one refusal too many: each holds a socket
        # for its 503 and the linger, so they are bounded too, and past the bound there is only
        # the close.
        if self._draining or (refused and self._refusing >= self._limits.max_connections):
            writer.transport.abort()
            return
        state = _ConnState()
        self._tasks[task] = state
        self._count(key, refused, 1)  # from accept to close, TLS handshake and linger included
        is_open = True  # False once the transport is gone without a polite close to make
        try:
            if self._ssl_context is not None:
                is_open = False  # a failed or cancelled start_tls closes the transport itself
                # The handshake is part of the request as far as slow clients are concerned.
                await writer.start_tls(
                    self._ssl_context, ssl_handshake_timeout=self._limits.request_timeout
                )
                is_open = True
            else:
                transport = writer.transport
                assert isinstance(transport, asyncio.ReadTransport)
                transport.resume_reading()
            if busy is not None:
                await self._respond(h11.Connection(h11.SERVER), writer, self._exchange(peer), busy)
            else:
                await self._serve(reader, writer, state, peer)
        except asyncio.CancelledError:
            # Only shutdown() cancels us. A callback task that ends cancelled makes 3.11's
            # StreamReaderProtocol log an error (its done-callback calls task.exception()), so
            # end normally.
            pass
        except (OSError, EOFError):  # the client went away (or a write timed out): nothing to do
            pass
        except Exception:
            self._error_log.exception("connection from %s failed", peer)
        finally:
            state.idle = True
            if is_open:
                with contextlib.suppress(asyncio.CancelledError):
                    await self._close(reader, writer, linger=not task.cancelling())
            self._count(key, refused, -1)
            del self._tasks[task]

    def _busy(self, key: str | None) -> Response | None:
        """The 503 for a new connection beyond a limit, or None when it may be served."""
        limits = self._limits
        if self._active >= limits.max_connections:
            return error_response(503, "service_unavailable", "The server is too busy.")
        if key is not None and self._per_address.get(key, 0) >= limits.max_connections_per_address:
            return error_response(
                503, "service_unavailable", "Too many connections from your address."
            )
        return None

    def _count(self, key: str | None, refused: bool, step: int) -> None:
        if refused:
            self._refusing += step
            return
        self._active += step
        if key is not None:
            left = self._per_address.get(key, 0) + step
            if left:
                self._per_address[key] = left
            else:
                del self._per_address[key]

    async def _close(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, linger: bool
    ) -> None:
        try:
            if linger and not reader.at_eof():
                if writer.can_write_eof():  # TLS cannot half-close
                    writer.write_eof()
                async with asyncio.timeout(_LINGER):
                    while await reader.read(_READ_SIZE):
                        pass
            writer.close()
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.wait_closed()
        except (OSError, EOFError):  # includes TimeoutError: don't wait for a polite close
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            raise

    def _exchange(self, peer: str) -> _Exchange:
        return _Exchange(peer, secrets.token_hex(8), asyncio.get_running_loop().time())

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        state: _ConnState,
        peer: str,
    ) -> None:
        limits = self._limits
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
        while not self._draining:
            buffered, eof = conn.trailing_data
            if not buffered:  # pipelined requests skip the idle wait
                if eof:
                    return
                state.idle = True
                try:
                    async with asyncio.timeout(limits.keepalive_timeout):
                        data = await reader.read(_READ_SIZE)
                except TimeoutError:
                    return  # idle keep-alive: close silently, as uvicorn and hypercorn do
                finally:
                    state.idle = False
                if not data:
                    return
                conn.receive_data(data)
            ex = self._exchange(peer)
            try:
                request = await self._read_request(conn, reader, writer, ex)
            except _Reject as exc:
                await self._respond(conn, writer, ex, exc.response)
                return
            except h11.RemoteProtocolError as exc:
                # uvicorn: RemoteProtocolError gets h11's suggested status and close. The
                # exception text quotes request bytes: neither the response nor the log gets it.
                status = exc.error_status_hint
                code, message = _PROTOCOL_ERRORS.get(
                    status, ("invalid_request", "The request is not valid HTTP.")
                )
                kind = _protocol_error_kind(exc)
                self._error_log.debug("bad request from %s: %d %s", ex.peer, status, kind)
                await self._respond(conn, writer, ex, error_response(status, code, message))
                return
            except TimeoutError:
                timeout = error_response(408, "request_timeout", "The request took too long.")
                await self._respond(conn, writer, ex, timeout)
                return
            if request is None:
                return
            try:
                response = await self._handler(request)
                ex.route = response.route
                head, body = self._encode(response, ex, close=self._draining)
            except Exception:
                self._error_log.exception("handler failed (request id %s)", ex.request_id)
                failure = error_response(
                    500, "internal_error", f"Internal server error (request id {ex.request_id})."
                )
                head, body = self._encode(failure, ex, close=self._draining)
            await self._write(conn, writer, ex, head, body)
            if conn.our_state is not h11.DONE:  # MUST_CLOSE: HTTP/1.0 or Connection: close
                return
            conn.start_next_cycle()

    async def _read_request(
        self,
        conn: h11.Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        ex: _Exchange,
    ) -> Request | None:
        """The next request with its whole body, or None when the client has gone. One
        deadline for head and body together: slowloris gains nothing per read. A request that
        came whole in one read (nearly all) waits for nothing and needs no timer."""
        limits = self._limits
        deadline = ex.started + limits.request_timeout
        head = bytearray(conn.trailing_data[0])  # bounded: h11 refuses an incomplete head > 16 KiB
        try:
            while (event := conn.next_event()) is h11.NEED_DATA:
                data = await _read_by(reader, deadline)
                head += data
                conn.receive_data(data)
        except h11.RemoteProtocolError as exc:
            # h11 answers 501 to every Transfer-Encoding but a lone "chunked". RFC 9112 6.3: when
            # chunked is not the final coding the body's length is unknowable: 400 and close.
            if exc.error_status_hint == 501 and _final_transfer_coding(bytes(head)) != b"chunked":
                raise _Reject(400, "invalid_request", _UNKNOWN_LENGTH) from exc
            raise
        if not isinstance(event, h11.Request):
            return None  # ConnectionClosed
        # h11 only bounds an *incomplete* head; a single read can hold a complete oversized one.
        if len(head) - len(conn.trailing_data[0]) > limits.max_head_bytes:
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        headers: dict[str, str] = {}
        for raw_name, raw_value in event.headers:  # h11 lower-cases names
            name, value = raw_name.decode("ascii"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        # Per request: a proxy's connection carries one client's request, then another's.
        ex.peer = self._proxies.client(ex.peer, headers)
        ex.method = event.method.decode("ascii")
        if not event.http_version.startswith(_HTTP_MAJOR):  # h11 takes any digit.digit
            raise _Reject(
                505, "http_version_not_supported", "Only HTTP/1.0 and HTTP/1.1 are supported."
            )
        raw_path, _, raw_query = event.target.decode("ascii").partition("?")
        ex.path = raw_path
        try:
            path = unquote(raw_path, errors="strict")
            query = dict(parse_qsl(raw_query, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            path = ""
        if not path.startswith("/") or "\x00" in path:
            raise _Reject(400, "invalid_request", "The request target is invalid.")

        # h11 has validated the framing headers and lets chunked win over Content-Length; but a
        # request with both is how requests are smuggled past a proxy that picks the other one,
        # so refuse it (RFC 9112 6.3 allows that, and demands a close at least).
        if "transfer-encoding" in headers and "content-length" in headers:
            raise _Reject(
                400, "invalid_request", "Send Content-Length or Transfer-Encoding, not both."
            )
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = 0 if chunked else int(headers.get("content-length", "0"))
        too_large = f"The request body exceeds {limits.max_body_bytes} bytes."
        if length > limits.max_body_bytes:  # decided on the header alone: the body is never read
            raise _Reject(413, "payload_too_large", too_large)
        content_type = _media_type(headers.get("content-type", ""))
        if (chunked or length) and content_type != "application/json":
            raise _Reject(415, "unsupported_media_type", "Request bodies must be JSON.")
        if conn.they_are_waiting_for_100_continue:
            writer.write(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            async with asyncio.timeout_at(deadline):
                await writer.drain()
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await _read_by(reader, deadline))
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limits.max_body_bytes:
                    raise _Reject(413, "payload_too_large", too_large)
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return None
        return Request(ex.method, path, query, headers, bytes(body), ex.peer, ex.request_id)

    def _encode(
        self, response: Response, ex: _Exchange, *, close: bool
    ) -> tuple[h11.Response, bytes]:
        """h11 validates the head here, so a handler's bad header becomes a 500, not a crash."""
        status = response.status
        body = b"" if status in _NO_BODY_STATUSES else response.encoded_body()
        extra = [(name.lower(), value) for name, value in response.headers]
        overridden = {name for name, _ in extra}
        defaults = [
            ("server", "tfa"),
            ("date", self._date.now()),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("x-request-id", ex.request_id),
        ]
        if body:
            defaults.append(("content-type", "application/json"))
        headers = [header for header in defaults if header[0] not in overridden]
        headers += [header for header in extra if header[0] not in _FRAMING_HEADERS]
        if status not in _NO_BODY_STATUSES:
            headers.append(("content-length", str(len(body))))
        if close:
            headers.append(("connection", "close"))
        try:
            reason = HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        return h11.Response(status_code=status, headers=headers, reason=reason), body

    async def _respond(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, ex: _Exchange, response: Response
    ) -> None:
        """Sends a transport error response; the caller closes the connection afterwards."""
        head, body = self._encode(response, ex, close=True)
        await self._write(conn, writer, ex, head, body)

    async def _write(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        ex: _Exchange,
        head: h11.Response,
        body: bytes,
    ) -> None:
        try:
            data = conn.send(head)
            if body and ex.method != "HEAD":  # h11 frames HEAD responses as empty
                data += conn.send(h11.Data(data=body))
            data += conn.send(h11.EndOfMessage())
            writer.write(data)
            if writer.transport.get_write_buffer_size():  # not all sent at once: wait for room
                async with asyncio.timeout(self._limits.request_timeout):  # one that never reads
                    await writer.drain()
        finally:
            elapsed_ms = (asyncio.get_running_loop().time() - ex.started) * 1000
            ex.status, ex.duration_ms = head.status_code, round(elapsed_ms, 2)
            self._access_log.info(
                "%s %s %s %d %.1f",
                ex.peer,
                ex.method,
                ex.path,
                head.status_code,
                elapsed_ms,
                extra={"request": ex},  # its fields, for the JSON lines (logs.JsonFormatter)
            )
