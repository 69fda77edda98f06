"""The load generator: wrk (Debian's package), written in C, so it is not what limits a
Python server; a Lua script sets the method, headers and body and prints what wrk saw."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_REPORT = """
done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "seconds": %f, "non_2xx": %d, "socket_errors": %d,'
    .. ' "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


class WrkMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def _lua(method: str, headers: dict[str, str], body: bytes | None, extra: str | None) -> str:
    lines = [f'wrk.method = "{method}"']
    for name, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if body is not None:
        lines.append(f"wrk.body = {json.dumps(body.decode())}")
    if extra is not None:
        lines.append(extra)
    return "\n".join(lines) + "\n" + _REPORT


def lua_string(text: str) -> str:
    """A Lua string literal (JSON's escapes are Lua's for what we send)."""
    return json.dumps(text)


def wrk(
    url: str,
    *,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    lua: str | None = None,
) -> Load:
    """Keep-alive load on one URL for `seconds`; fails when a request was refused or lost, so
    a figure never counts error answers as throughput. `lua` is more of wrk's script after
    method, headers and body are set: e.g. a `request()` that varies each request (it may
    use `wrk.format(method, path, headers, body)`; nil arguments take the values above),
    and `setup(thread)` / `init(args)` to give each of wrk's threads its own share."""
    tool = shutil.which("wrk")
    if tool is None:
        raise WrkMissing("wrk is not installed (Debian package wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua(method, headers or {}, body, lua))
    try:
        done = subprocess.run(  # noqa: S603 the wrk found on PATH
            [
                tool,
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        Path(script.name).unlink()
    line = next(line for line in done.stdout.splitlines() if line.startswith("WRK-JSON "))
    load = Load(**json.loads(line.removeprefix("WRK-JSON ")))
    if load.non_2xx or load.socket_errors or not load.requests:
        raise RuntimeError(f"wrk on {url}: {load}\n{done.stdout}")
    return load
