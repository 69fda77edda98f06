"""`tfa` on the command line: one plain line and a non-zero exit for every mistake."""

from __future__ import annotations

import pytest

from tfa_tui import __version__
from tfa_tui.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"tfa {__version__}"


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--server" in out
    assert "--demo" in out
    assert "TFA_SERVER" in out
    assert "--insecure-http" in out
    assert "TFA_INSECURE_HTTP" in out


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ("ftp://example.org", "must start with http:// or https://"),
        ("http://", "no host name"),
        ("http://tfa.example.org", "sends your password unencrypted"),
    ],
)
def test_a_bad_server_address_is_one_line(
    server: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--server", server]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tfa: error: --server")
    assert reason in err


def test_an_unknown_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--bogus"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unrecognized arguments: --bogus" in err
