"""Baselines (b) and (c) of B3: GET /api/v1/me as someone who picked a framework would write
it on tfa's own code, served by uvicorn. The same session check and the same answer on the
same database; Starlette routes, uvicorn parses (h11 on asyncio for (b), httptools on uvloop
for (c)) and logs each request as it does by default.

    TFA_DB=... TFA_KEY_FILE=... python -m bench.baselines.starlette_me h11|httptools
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tfa_server import views
from tfa_server.app import open_core
from tfa_server.config import Settings
from tfa_server.core import Origin
from tfa_server.errors import ApiError
from tfa_server.sessions import resolve
from tfa_server.storage.database import is_url

target = os.environ["TFA_DB"]
settings = Settings(
    db_path=None if is_url(target) else Path(target),
    db_url=target if is_url(target) else None,
    key_path=Path(os.environ["TFA_KEY_FILE"]),
)
core = open_core(settings)


async def me(request: Request) -> Response:
    client = request.client.host if request.client else "-"
    origin = Origin(client, request.headers.get("user-agent", ""))
    try:
        caller = await resolve(core, request.headers.get("authorization"), origin, least="full")
        answer = views.me_of(caller.user, caller.session, caller.policy)
    except ApiError as error:
        return JSONResponse({"error": error.code, "message": str(error)}, error.status)
    return Response(msgspec.json.encode(answer), media_type="application/json")


app = Starlette(routes=[Route("/api/v1/me", me)])

if __name__ == "__main__":
    parser = sys.argv[1] if len(sys.argv) > 1 else "h11"
    loop = "asyncio" if parser == "h11" else "uvloop"
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=parser, loop=loop)
    server = uvicorn.Server(config)
    server.run()
