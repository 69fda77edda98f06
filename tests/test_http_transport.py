"""The HTTP transport over real sockets: framing, limits, errors, keep-alive and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tfa_server.http.forwarded import TrustedProxies, parse_networks
from tfa_server.http.messages import Handler, Request, Response
from tfa_server.http.server import HttpLimits, HttpServer

from .certificates import write_self_signed

LIMITS = HttpLimits(
    max_head_bytes=4096,
    max_body_bytes=1024,
    request_timeout=0.5,
    keepalive_timeout=0.3,
    max_connections=5,
    shutdown_grace=2.0,
)
GENERIC_400 = {"The request is not valid HTTP.", "The request target is invalid."}


async def echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("secret internals")
    if request.path == "/slow":
        await asyncio.sleep(float(request.query.get("s", "0.3")))
    return Response(
        200,
        {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": dict(request.headers),
            "body": request.body.decode(),
            "peer": request.peer,
            "request_id": request.request_id,
        },
        [("X-Echo", "yes")],
    )


Start = Callable[..., Awaitable[HttpServer]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    servers: list[HttpServer] = []

    async def _start(
        handler: Handler = echo, limits: HttpLimits = LIMITS, **kwargs: Any
    ) -> HttpServer:
        http_server = HttpServer(handler, limits, **kwargs)
        await http_server.start("127.0.0.1", 0)
        servers.append(http_server)
        return http_server

    yield _start
    for http_server in servers:
        await http_server.shutdown()


@pytest.fixture
async def http_server(start: Start) -> HttpServer:
    return await start()


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def connect(
    http_server: HttpServer, *, source: str = "127.0.0.1", tls: ssl.SSLContext | None = None
) -> AsyncIterator[Conn]:
    """A connection from ``source`` (any 127.x.y.z is a distinct loopback client on Linux)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", http_server.port, local_addr=(source, 0), ssl=tls
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_response(reader: asyncio.StreamReader, *, with_body: bool = True) -> Raw:
    async with asyncio.timeout(3):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in filter(None, lines):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0")) if with_body else 0
        return Raw(int(status_line.split(" ")[1]), headers, await reader.readexactly(length))


async def assert_closed(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(3):
        assert await reader.read() == b""


def get(target: str = "/echo", extra: str = "", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode()


def post(target: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return get(target, head, "POST") + body


async def assert_healthy(http_server: HttpServer) -> None:
    """A fresh connection is still served normally."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_server.port}") as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["path"] == "/healthz"


async def assert_error(reader: asyncio.StreamReader, status: int, code: str) -> Raw:
    """An error response in the API's JSON shape, after which the server closes."""
    response = await read_response(reader)
    assert response.status == status
    assert response.json()["error"] == code
    assert response.headers["content-type"] == "application/json"
    assert response.headers["connection"] == "close"
    await assert_closed(reader)
    return response


# Keep-alive, pipelining, HTTP/1.0


async def test_keep_alive_serves_several_requests_on_one_connection(
    http_server: HttpServer,
) -> None:
    assert http_server.host == "127.0.0.1"
    assert http_server.port > 0
    async with connect(http_server) as (reader, writer):
        for n in range(3):
            writer.write(get(f"/echo?n={n}"))
            response = await read_response(reader)
            assert response.status == 200
            assert response.json()["query"] == {"n": str(n)}
            assert "connection" not in response.headers


async def test_hundred_pipelined_requests_come_back_in_order(http_server: HttpServer) -> None:
    requests = [
        post(f"/echo?n={n}", json.dumps({"n": n}).encode()) if n % 2 else get(f"/echo?n={n}")
        for n in range(100)
    ]
    async with connect(http_server) as (reader, writer):
        writer.write(b"".join(requests))
        for n in range(100):
            response = await read_response(reader)
            assert response.status == 200
            assert response.json()["query"] == {"n": str(n)}
            assert response.json()["body"] == (json.dumps({"n": n}) if n % 2 else "")


async def test_http10_request_is_answered_then_closed(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(b"GET /echo HTTP/1.0\r\n\r\n")
        response = await read_response(reader)
        assert response.status == 200
        assert response.json()["path"] == "/echo"
        assert response.headers["connection"] == "close"
        await assert_closed(reader)


async def test_head_request_gets_headers_without_body(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", method="HEAD") + get("/echo?after=head"))
        head = await read_response(reader, with_body=False)
        assert head.status == 200
        assert int(head.headers["content-length"]) > 0
        after = await read_response(reader)  # nothing stray was sent for the HEAD
        assert after.json()["query"] == {"after": "head"}


async def test_no_content_response_has_no_body_framing(start: Start) -> None:
    async def no_content(request: Request) -> Response:
        return Response(204, {"ignored": True}) if request.path == "/empty" else Response(200, {})

    http_server = await start(no_content)
    async with connect(http_server) as (reader, writer):
        writer.write(get("/empty") + get("/next"))
        empty = await read_response(reader)
        assert empty.status == 204
        assert "content-length" not in empty.headers
        assert "content-type" not in empty.headers
        assert empty.headers["cache-control"] == "no-store"
        assert (await read_response(reader)).status == 200


async def test_expect_100_continue_is_honoured(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(
            get(
                "/echo",
                "Expect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 2\r\n",
                "POST",
            )
        )
        interim = await read_response(reader, with_body=False)
        assert interim.status == 100
        writer.write(b"{}")
        response = await read_response(reader)
        assert response.status == 200
        assert response.json()["body"] == "{}"


# Request head: size and syntax


@pytest.mark.parametrize("complete", [True, False], ids=["complete-head", "incomplete-head"])
async def test_oversized_head_gets_431_and_close(http_server: HttpServer, complete: bool) -> None:
    big = get("/echo", f"X-Big: {'a' * 5000}\r\n")
    async with connect(http_server) as (reader, writer):
        writer.write(big if complete else big[:-4])
        await assert_error(reader, 431, "request_header_fields_too_large")
    await assert_healthy(http_server)


async def test_head_just_under_the_limit_is_served(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", f"X-Big: {'a' * 3500}\r\n"))
        assert (await read_response(reader)).status == 200


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Nul: a\x00b\r\n\r\n",
        b"G\xc3\x89T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /%ff%fe HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /a%00b HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET echo HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    ],
    ids=[
        "garbage",
        "binary",
        "bad-header",
        "nul-in-header",
        "non-ascii-method",
        "non-ascii-target",
        "bad-percent-utf8",
        "percent-nul",
        "not-origin-form",
        "no-host",
        "negative-length",
        "conflicting-lengths",
    ],
)
async def test_malformed_request_gets_400_and_close(http_server: HttpServer, raw: bytes) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(raw)
        response = await assert_error(reader, 400, "invalid_request")
    assert response.json()["message"] in GENERIC_400  # never the parser's exception text
    assert b"h11" not in response.body
    await assert_healthy(http_server)


async def test_unsupported_transfer_coding_before_chunked_gets_501(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", "Transfer-Encoding: gzip, chunked\r\n", "POST"))
        await assert_error(reader, 501, "not_implemented")


@pytest.mark.parametrize(
    "codings",
    ["gzip", "Ib", "chunked, gzip", "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip"],
)
async def test_body_without_chunked_last_gets_400_and_close(
    http_server: HttpServer, codings: str
) -> None:
    """RFC 9112 6.3: when chunked is not the final coding the body's length cannot be known, and
    the server MUST answer 400 and close (found by schemathesis sending `Transfer-Encoding: Ib`)."""
    header = codings if codings.startswith("Transfer") else f"Transfer-Encoding: {codings}"
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", f"{header}\r\nContent-Length: 2\r\n", "POST") + b"{}")
        response = await assert_error(reader, 400, "invalid_request")
        assert "Transfer-Encoding" in response.json()["message"]
    await assert_healthy(http_server)


# Request body: size and media type


async def test_huge_content_length_gets_413_without_the_body_being_read(
    http_server: HttpServer,
) -> None:
    head = get("/echo", "Content-Type: application/json\r\nContent-Length: 10485760\r\n", "POST")
    async with connect(http_server) as (reader, writer):
        started = time.monotonic()
        writer.write(head)  # only the head: a server waiting for the body would time out (408)
        await assert_error(reader, 413, "payload_too_large")
        assert time.monotonic() - started < LIMITS.request_timeout
    await assert_healthy(http_server)


async def test_chunked_body_over_the_limit_gets_413(http_server: HttpServer) -> None:
    chunk = b"258\r\n" + b"a" * 0x258 + b"\r\n"
    head = get("/echo", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "POST")
    async with connect(http_server) as (reader, writer):
        writer.write(head + chunk * 2)  # 1200 bytes > 1024, and the message never ends
        await assert_error(reader, 413, "payload_too_large")
    await assert_healthy(http_server)


async def test_chunked_body_within_the_limit_is_accepted(http_server: HttpServer) -> None:
    head = get("/echo", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", "POST")
    async with connect(http_server) as (reader, writer):
        writer.write(head + b'4\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n')
        response = await read_response(reader)
        assert response.status == 200
        assert response.json()["body"] == '{"a": 1}'


async def test_body_at_the_limit_is_accepted(http_server: HttpServer) -> None:
    body = json.dumps("x" * 1022).encode()
    assert len(body) == LIMITS.max_body_bytes
    async with connect(http_server) as (reader, writer):
        writer.write(post("/echo", body))
        assert (await read_response(reader)).json()["body"] == body.decode()


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonp", "", "form; json"])
async def test_body_that_is_not_json_gets_415(http_server: HttpServer, content_type: str) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(post("/echo", b"{}", content_type))
        await assert_error(reader, 415, "unsupported_media_type")
    await assert_healthy(http_server)


async def test_body_without_content_type_gets_415(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", "Content-Length: 2\r\n", "POST") + b"{}")
        await assert_error(reader, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type", ["application/json", "Application/JSON; charset=utf-8", " application/json ;x"]
)
async def test_json_media_type_ignores_case_and_parameters(
    http_server: HttpServer, content_type: str
) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(post("/echo", b"{}", content_type))
        assert (await read_response(reader)).json()["body"] == "{}"


async def test_empty_body_needs_no_content_type(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get("/echo", "Content-Length: 0\r\n", "POST") + get("/echo", method="DELETE"))
        assert (await read_response(reader)).json()["method"] == "POST"
        assert (await read_response(reader)).json()["method"] == "DELETE"


# Timeouts


async def test_slowloris_head_gets_408_after_the_whole_request_timeout(
    http_server: HttpServer,
) -> None:
    async def drip(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /echo HTTP/1.1\r\nHost: test\r\n")
        with contextlib.suppress(OSError):
            for n in range(40):  # each byte well inside keepalive_timeout
                await asyncio.sleep(0.1)
                writer.write(f"X-{n}: y\r\n".encode())

    async with connect(http_server) as (reader, writer):
        started = time.monotonic()
        dripping = asyncio.create_task(drip(writer))
        try:
            await assert_error(reader, 408, "request_timeout")
        finally:
            dripping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dripping
        assert LIMITS.request_timeout <= time.monotonic() - started < 1.5


async def test_body_that_never_completes_gets_408(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(post("/echo", b'{"a": 1}')[:-3])
        await assert_error(reader, 408, "request_timeout")


async def test_idle_keep_alive_connection_is_closed_silently(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, writer):
        writer.write(get())
        assert (await read_response(reader)).status == 200
        idle_since = time.monotonic()
        await assert_closed(reader)  # no bytes at all, not even an error response
        assert LIMITS.keepalive_timeout <= time.monotonic() - idle_since < 1.5


async def test_connection_that_never_sends_is_closed_silently(http_server: HttpServer) -> None:
    async with connect(http_server) as (reader, _):
        await assert_closed(reader)


# Connection limit


async def test_connections_beyond_the_limit_get_503(start: Start) -> None:
    http_server = await start(limits=HttpLimits(max_connections=5, keepalive_timeout=5))
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connect(http_server)) for _ in range(5)]
        for reader, writer in held:  # a served request proves the server counted it
            writer.write(get())
            assert (await read_response(reader)).status == 200
        async with connect(http_server) as (reader, writer):
            await assert_error(reader, 503, "service_unavailable")
        async with connect(http_server) as (reader, writer):  # the rejected one was not counted
            await assert_error(reader, 503, "service_unavailable")

        held[0][1].close()
        for _ in range(50):  # the server notices the close asynchronously
            async with connect(http_server) as (reader, writer):
                writer.write(get())
                if (await read_response(reader)).status == 200:
                    break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("a freed connection slot was never reused")


PER_ADDRESS = HttpLimits(
    max_connections=10, max_connections_per_address=3, request_timeout=5, keepalive_timeout=5
)


async def assert_served(
    http_server: HttpServer, *, source: str, tls: ssl.SSLContext | None = None, tries: int = 1
) -> None:
    """A new connection from ``source`` gets 200, within ``tries`` attempts 20 ms apart (the
    server notices a client's close asynchronously)."""
    for _ in range(tries):
        async with connect(http_server, source=source, tls=tls) as (reader, writer):
            writer.write(get())
            response = await read_response(reader)
        if response.status == 200:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"{source} got {response.status}, not 200")


async def assert_refused(
    http_server: HttpServer, *, source: str, tls: ssl.SSLContext | None = None
) -> None:
    async with connect(http_server, source=source, tls=tls) as (reader, writer):
        writer.write(get())  # a complete request: without a limit it would be served
        await assert_error(reader, 503, "service_unavailable")


@pytest.mark.finding("F09")
async def test_one_address_cannot_take_more_than_its_share_of_connections(start: Start) -> None:
    http_server = await start(limits=PER_ADDRESS)
    async with contextlib.AsyncExitStack() as stack:
        held = [await stack.enter_async_context(connect(http_server)) for _ in range(3)]
        for _, writer in held:  # partial requests: a slowloris keeps its slots this way
            writer.write(b"GET /echo HTTP/1.1\r\nHost: t\r\n")
        await assert_refused(http_server, source="127.0.0.1")
        await assert_served(http_server, source="127.0.0.2")  # other addresses are untouched
        await assert_refused(http_server, source="127.0.0.1")  # refusals hold no slot
        held[0][1].close()
        await assert_served(http_server, source="127.0.0.1", tries=50)


@pytest.mark.finding("F09")
async def test_refusals_are_bounded_too(start: Start) -> None:
    """Each 503 holds a socket while the server lingers; past max_connections of them at once
    a refused connection is just closed, so refusing cannot exhaust the server either."""
    limits = HttpLimits(max_connections=2, max_connections_per_address=1, keepalive_timeout=5)
    http_server = await start(limits=limits)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(connect(http_server))  # the address's one slot
        for _ in range(limits.max_connections):  # refused, and kept open: the server lingers
            reader, _ = await stack.enter_async_context(connect(http_server))
            assert (await read_response(reader)).status == 503
        reader, _ = await stack.enter_async_context(connect(http_server))
        with contextlib.suppress(ConnectionResetError):
            await assert_closed(reader)  # no bytes at all
        await assert_served(http_server, source="127.0.0.2")


# Handler failures


async def test_handler_exception_gives_500_with_request_id_and_keeps_serving(
    http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="tfa_server.http.error")
    async with connect(http_server) as (reader, writer):
        writer.write(get("/boom"))
        failed = await read_response(reader)
        request_id = failed.headers["x-request-id"]
        assert failed.status == 500
        assert failed.json() == {
            "error": "internal_error",
            "message": f"Internal server error (request id {request_id}).",
        }
        assert b"secret internals" not in failed.body
        writer.write(get())  # the same connection still works
        assert (await read_response(reader)).status == 200
    [record] = caplog.records
    assert request_id in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    await assert_healthy(http_server)


async def test_invalid_handler_header_gives_500(start: Start) -> None:
    async def bad_header(request: Request) -> Response:
        if request.path == "/bad":
            return Response(200, {}, [("X-Split", "a\r\nInjected: yes")])
        return Response(200, {"ok": True})

    http_server = await start(bad_header, error_log=logging.getLogger("test.quiet"))
    async with connect(http_server) as (reader, writer):
        writer.write(get("/bad") + get("/good"))
        failed = await read_response(reader)
        assert failed.status == 500
        assert "injected" not in failed.headers
        assert (await read_response(reader)).json() == {"ok": True}


# What the application and the client see


async def test_request_fields_are_parsed_for_the_handler(http_server: HttpServer) -> None:
    target = "/a%20b/c%C3%A9?x=1&x=2&empty=&y=%C3%A9&plus=a+b"
    async with connect(http_server) as (reader, writer):
        writer.write(get(target, "X-Custom-Name: Value\r\n")[:-2] + b"X-Latin: caf\xe9\r\n\r\n")
        response = await read_response(reader)
    seen = response.json()
    assert seen["method"] == "GET"
    assert seen["path"] == "/a b/cé"
    assert seen["query"] == {"x": "2", "empty": "", "y": "é", "plus": "a b"}
    assert seen["headers"]["x-custom-name"] == "Value"
    assert seen["headers"]["x-latin"] == "café"
    assert seen["peer"] == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{16}", seen["request_id"])
    assert seen["request_id"] == response.headers["x-request-id"]


async def test_every_response_carries_the_standard_headers(http_server: HttpServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_server.port}") as client:
        first, second = await client.get("/echo"), await client.get("/echo")
    headers = first.headers
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(first.content)
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["server"] == "tfa"
    assert headers["x-echo"] == "yes"  # the handler's own header
    date = parsedate_to_datetime(headers["date"])
    assert abs((dt.datetime.now(dt.UTC) - date).total_seconds()) < 5
    assert headers["x-request-id"] != second.headers["x-request-id"]


async def test_access_log_has_one_line_per_request_without_query(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    http_server = await start(access_log=logging.getLogger("test.access"))
    caplog.set_level(logging.INFO, logger="test.access")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_server.port}") as client:
        await client.get("/echo?token=secret")
        await client.post("/echo", content=b"{}", headers={"Content-Type": "text/plain"})
    lines = [record.getMessage() for record in caplog.records if record.name == "test.access"]
    assert len(lines) == 2
    assert re.fullmatch(r"127\.0\.0\.1 GET /echo 200 \d+\.\d", lines[0])
    assert re.fullmatch(r"127\.0\.0\.1 POST /echo 415 \d+\.\d", lines[1])
    assert "secret" not in "".join(lines)


async def test_clients_vanishing_mid_request_or_response_leave_nothing_behind(
    http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    baseline = len(asyncio.all_tasks())
    for raw in (
        b"GET /echo HTTP/1.1\r\nHost",  # mid-head
        post("/echo", b'{"a": 1}')[:-2],  # mid-body
        get("/slow?s=0.1"),  # the response will find the socket gone
    ):
        async with connect(http_server) as (_, writer):
            writer.write(raw)
            await asyncio.sleep(0.02)
    for _ in range(100):
        if len(asyncio.all_tasks()) == baseline:
            break
        await asyncio.sleep(0.02)
    assert len(asyncio.all_tasks()) == baseline
    assert not caplog.records
    await assert_healthy(http_server)


# Shutdown


async def test_shutdown_lets_the_request_in_flight_finish(start: Start) -> None:
    started = asyncio.Event()

    async def slow(request: Request) -> Response:
        started.set()
        await asyncio.sleep(0.3)
        return Response(200, {"done": True})

    http_server = await start(slow, limits=HttpLimits(keepalive_timeout=5, shutdown_grace=2))
    port = http_server.port
    async with (
        connect(http_server) as (idle_reader, idle_writer),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        idle_writer.write(get())
        assert (await read_response(idle_reader)).status == 200
        started.clear()
        in_flight = asyncio.create_task(client.get("/work"))
        await started.wait()
        began = time.monotonic()
        await http_server.shutdown()
        response = await in_flight
        assert response.status_code == 200
        assert response.json() == {"done": True}
        assert response.headers["connection"] == "close"
        assert time.monotonic() - began < 1.5
        await assert_closed(idle_reader)  # the idle keep-alive connection was not kept waiting
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    await asyncio.wait_for(http_server.serve_forever(), 0.1)
    await http_server.shutdown()  # idempotent


async def test_shutdown_cancels_requests_beyond_the_grace_period(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")
    cancelled = asyncio.Event()

    async def stuck(request: Request) -> Response:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return Response(200)

    http_server = await start(stuck, limits=HttpLimits(shutdown_grace=0.2))
    async with connect(http_server) as (reader, writer):
        writer.write(get())
        await asyncio.sleep(0.05)
        began = time.monotonic()
        await http_server.shutdown()
        assert time.monotonic() - began < 1.5
        assert cancelled.is_set()
        with contextlib.suppress(ConnectionResetError):
            await assert_closed(reader)
    await asyncio.sleep(0)
    assert not [record for record in caplog.records if record.name == "asyncio"]


# TLS


def tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway self-signed certificate for 127.0.0.1: (server context, client context)."""
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    write_self_signed(cert_file, key_file)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_file, key_file)
    return server_context, ssl.create_default_context(cadata=cert_file.read_text())


async def test_tls_when_an_ssl_context_is_given(start: Start, tmp_path: Path) -> None:
    server_context, client_context = tls_contexts(tmp_path)
    http_server = await start(ssl_context=server_context)
    base_url = f"https://127.0.0.1:{http_server.port}"
    async with httpx.AsyncClient(base_url=base_url, verify=client_context) as client:
        first, second = await client.get("/echo?n=1"), await client.post("/echo", json={"a": 1})
    assert first.json()["query"] == {"n": "1"}
    assert second.json()["body"] == '{"a":1}'


def client_hello(client_context: ssl.SSLContext) -> bytes:
    """The first flight of a real TLS client: a ClientHello for 127.0.0.1."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def half_handshakes(
    stack: contextlib.AsyncExitStack, http_server: HttpServer, hello: bytes, count: int
) -> list[Conn]:
    """TCP connections from 127.0.0.1 that send half a ClientHello and never finish it."""
    conns = [await stack.enter_async_context(connect(http_server)) for _ in range(count)]
    for _, writer in conns:
        writer.write(hello[: len(hello) // 2])
    return conns


@pytest.mark.finding("F09")
async def test_unfinished_tls_handshakes_count_against_the_address_limit(
    start: Start, tmp_path: Path
) -> None:
    server_context, client_context = tls_contexts(tmp_path)
    http_server = await start(limits=PER_ADDRESS, ssl_context=server_context)
    hello = client_hello(client_context)
    async with contextlib.AsyncExitStack() as stack:
        held = await half_handshakes(stack, http_server, hello, 3)
        await assert_refused(http_server, source="127.0.0.1", tls=client_context)
        await assert_served(http_server, source="127.0.0.2", tls=client_context)
        held[0][1].close()
        await assert_served(http_server, source="127.0.0.1", tls=client_context, tries=50)


@pytest.mark.finding("F09")
async def test_unfinished_tls_handshakes_count_against_the_cap_until_the_request_timeout(
    start: Start, tmp_path: Path
) -> None:
    server_context, client_context = tls_contexts(tmp_path)
    limits = HttpLimits(max_connections=3, request_timeout=1.0, keepalive_timeout=5)
    http_server = await start(limits=limits, ssl_context=server_context)
    hello = client_hello(client_context)
    async with contextlib.AsyncExitStack() as stack:
        held = await half_handshakes(stack, http_server, hello, 3)
        sent = time.monotonic()
        await assert_refused(http_server, source="127.0.0.2", tls=client_context)
        for reader, _ in held:  # the request timeout bounds the handshake
            with contextlib.suppress(ConnectionResetError):
                await assert_closed(reader)
        assert time.monotonic() - sent < limits.request_timeout + 1.5
        await assert_served(http_server, source="127.0.0.2", tls=client_context, tries=50)


# Behind a reverse proxy


@pytest.mark.finding("F10")
async def test_a_trusted_proxy_forwards_its_clients_addresses_and_has_no_address_limit(
    start: Start,
) -> None:
    """The proxy's connections carry many clients: only the global cap applies to them."""
    proxies = TrustedProxies(parse_networks("127.0.0.1"))
    http_server = await start(limits=PER_ADDRESS, proxies=proxies)
    async with contextlib.AsyncExitStack() as stack:
        for n in range(PER_ADDRESS.max_connections_per_address + 2):
            reader, writer = await stack.enter_async_context(connect(http_server))
            writer.write(get(extra=f"X-Forwarded-For: 198.51.100.66, 203.0.113.{n}\r\n"))
            assert (await read_response(reader)).json()["peer"] == f"203.0.113.{n}"
        async with connect(http_server, source="127.0.0.2") as (reader, writer):
            writer.write(get(extra="X-Forwarded-For: 203.0.113.99\r\n"))  # not a trusted peer
            assert (await read_response(reader)).json()["peer"] == "127.0.0.2"
