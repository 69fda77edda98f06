"""Baseline (a) of B3: the least an asyncio + h11 server can do per request. Every request,
whatever its path, gets the same small JSON body; keep-alive; no logging, no routing.

    python -m bench.baselines.h11_minimal   # prints "serving on http://127.0.0.1:PORT"
"""

from __future__ import annotations

import asyncio

import h11

BODY = b'{"username":"bench","is_admin":false,"totp_enabled":false}'
HEADERS = [
    ("content-type", "application/json"),
    ("content-length", str(len(BODY))),
]


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                continue  # the answer goes out once the whole request has come
            if isinstance(event, h11.EndOfMessage):
                writer.write(conn.send(h11.Response(status_code=200, headers=HEADERS)))
                writer.write(conn.send(h11.Data(data=BODY)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
                continue
            if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return
    except (h11.RemoteProtocolError, ConnectionError):
        return
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"serving on http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
