"""contrib/tfa-server.service: systemd accepts it as written, and it keeps the hardening an
operator expects of a network service that holds 2FA secrets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .harness import ENV, SYSTEMD_ANALYZE, requires

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "tfa-server.service"
INSTALLED = "/opt/tfa/bin/tfa-server"  # where the README installs it
TFA_SERVER = Path(sys.executable).parent / "tfa-server"  # this environment's


def verify(unit: Path, extra: str = "") -> tuple[int, str]:
    """`systemd-analyze verify` on the unit with the command where this checkout has it."""
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(TFA_SERVER)) + extra)
    done = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", str(unit)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """As installed: the command where the README puts it (here, this checkout's), nothing
    unknown, misspelt or refused; verify reads every directive."""
    requires("systemd")
    assert INSTALLED in UNIT.read_text()
    status, output = verify(tmp_path / "tfa-server.service")
    assert status == 0, output
    assert "tfa-server.service" not in output, output  # no warning about it at all


def test_a_misspelt_directive_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: verify names a key it does not know."""
    requires("systemd")
    _, output = verify(tmp_path / "tfa-server.service", "ProtectSystm=strict\n")
    assert "ProtectSystm" in output


def test_the_unit_is_hardened() -> None:
    found = settings()
    expected = {
        "User": ["tfa"],
        "StateDirectory": ["tfa"],
        "StateDirectoryMode": ["0700"],
        "UMask": ["0077"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictSUIDSGID": ["yes"],
        "SystemCallArchitectures": ["native"],
        "KillSignal": ["SIGTERM"],
    }
    for key, value in expected.items():
        assert found.get(key) == value, (key, found.get(key))
    assert "@system-service" in found["SystemCallFilter"]
    assert found["ExecStart"] == [f"{INSTALLED} serve"]
    # Its own data only, in the state directory systemd makes for it.
    assert "TFA_DB=/var/lib/tfa/tfa.db" in found["Environment"]
    assert "TFA_HOST=127.0.0.1" in found["Environment"]
