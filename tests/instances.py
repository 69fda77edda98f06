"""Several `tfa-server serve` processes on one PostgreSQL database, as behind a load balancer:
each in a working directory of its own with its own copy of the key file, on its own port."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tfa_server.admin import Actor, Admin
from tfa_server.app import initialise, open_core
from tfa_server.config import Settings

from . import postgres
from .conftest import FAST_HASHING, PASSWORD

TLS = ssl.create_default_context()
FAST = ["--argon2-memory-kib", "1024", "--argon2-time-cost", "1"]
SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")


class Instance:
    """One server process; its output goes to `log` in its folder."""

    def __init__(
        self, folder: Path, url: str, key: Path, *extra: str, production: bool = False
    ) -> None:
        """`url` may be a SQLite path too; `production` keeps the default Argon2 costs."""
        folder.mkdir(parents=True)
        self.folder = folder
        self.key = folder / "tfa.key"
        shutil.copy2(key, self.key)  # every host holds the same key
        self.log = folder / "server.log"
        env = {name: value for name, value in os.environ.items() if not name.startswith("TFA_")}
        env.update(HOME=str(folder), TFA_DB=url, TFA_KEY_FILE=str(self.key))
        self.env = env
        hashing = [] if production else FAST
        self.args = ["--host", "127.0.0.1", "--port", "0", *hashing, *extra]
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tfa_server",
                "serve",
                *self.args,
                cwd=self.folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        async with asyncio.timeout(30):
            while not (found := SERVING.search(self.output())):
                assert self.process.returncode is None, f"exited early:\n{self.output()}"
                await asyncio.sleep(0.02)
        self.port = int(found.group(1))

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                await self.process.wait()

    def client(self) -> httpx.AsyncClient:
        """Plain HTTP; one TLS context for all (httpx builds one per client otherwise, 50 ms
        each), and room for 50 requests at once."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            timeout=20.0,
            headers={"User-Agent": "tfa-tests/1.0"},
            verify=TLS,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )


@dataclass
class Pair:
    a: Instance
    b: Instance
    url: str
    settings: Settings
    root: str = ""  # an administrator's session, for tests that need one

    async def add_user(self, name: str, *, admin: bool = False) -> None:
        """Through the storage directly, as `tfa-server user add` would."""
        core = open_core(self.settings)
        try:
            await Admin(core).create_user(Actor("test", None), name, PASSWORD, admin)
        finally:
            core.passwords.close()
            core.db.close()


@asynccontextmanager
async def two_instances(folder: Path, *extra: str) -> AsyncIterator[Pair]:
    """A fresh database and two servers on it, stopped and dropped afterwards."""
    with postgres.server().database() as url:
        settings = Settings(
            db_path=None, db_url=url, key_path=folder / "origin.key", passwords=FAST_HASHING
        )
        initialise(settings)
        async with AsyncExitStack() as stack:
            instances = []
            for name in ("a", "b"):
                instance = Instance(folder / name, url, settings.key_path, *extra)
                stack.push_async_callback(instance.stop)
                instances.append(instance)
            await asyncio.gather(*(instance.start() for instance in instances))
            yield Pair(instances[0], instances[1], url, settings)
