"""The verify API's latency next to a person's sign-in (issue 13), over real sockets.

Run: .venv/bin/python bench/verify_latency.py [CALLS]. A real server on 127.0.0.1 with the
production Argon2 settings and a clock that the script moves on 30 s before each call, so every
call brings a fresh, right code. Prints the median and 90th percentile of CALLS calls of
POST /api/v1/verify (the service's code check) and of CALLS // 5 whole sign-ins as the
terminal client does them (password, then code).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyotp

from tfa_server.admin import Actor, Admin
from tfa_server.app import Application, initialise, open_core
from tfa_server.config import Settings, default_key_path

PASSWORD = "correct horse battery"  # noqa: S105 a benchmark account's


class SteppingClock:
    def __init__(self) -> None:
        self.value = time.time()

    def now(self) -> float:
        return self.value


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(value * 1000 for value in seconds)
    p90 = ms[int(len(ms) * 0.9) - 1]
    return f"{name:32s} n={len(ms):4d}  median {statistics.median(ms):7.2f} ms  p90 {p90:7.2f} ms"


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "tfa.db"
        settings = Settings(db, default_key_path(db))  # production Argon2id settings
        initialise(settings)
        clock = SteppingClock()
        app = Application(open_core(settings, clock))
        await app.start("127.0.0.1", 0)
        try:
            admin = Admin(app.core)
            await admin.create_user(Actor("bench", None), "alice", PASSWORD, False)
            key = (await admin.add_service(Actor("bench", None), "sshd", "")).key
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as http:
                login = {"username": "alice", "password": PASSWORD}
                token = (await http.post("/api/v1/login", json=login)).json()["token"]
                auth = {"Authorization": f"Bearer {token}"}
                secret = (await http.post("/api/v1/me/totp/setup", headers=auth)).json()["secret"]
                totp = pyotp.TOTP(secret)
                confirm = {"code": totp.at(clock.now())}
                await http.post("/api/v1/me/totp/confirm", headers=auth, json=confirm)
                service = {"Authorization": f"Bearer {key}"}
                verify: list[float] = []
                for _ in range(calls):
                    clock.value += 30
                    body = {"username": "alice", "code": totp.at(clock.now())}
                    started = time.perf_counter()
                    answer = await http.post("/api/v1/verify", headers=service, json=body)
                    verify.append(time.perf_counter() - started)
                    assert answer.status_code == 200, answer.text
                sign_ins: list[float] = []
                for _ in range(max(1, calls // 5)):
                    clock.value += 30
                    started = time.perf_counter()
                    first = (await http.post("/api/v1/login", json=login)).json()
                    second = await http.post(
                        "/api/v1/login/totp",
                        headers={"Authorization": f"Bearer {first['token']}"},
                        json={"code": totp.at(clock.now())},
                    )
                    sign_ins.append(time.perf_counter() - started)
                    assert second.status_code == 200, second.text
        finally:
            await app.stop()
    print(summary("POST /api/v1/verify", verify))
    print(summary("sign-in (password + code)", sign_ins))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
