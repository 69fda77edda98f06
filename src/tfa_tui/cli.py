"""`tfa`: the terminal client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tfa_tui import __version__
from tfa_tui.api.client import (
    DEFAULT_SERVER,
    TfaClient,
    normalise_server_url,
    server_problem,
)
from tfa_tui.exit_guard import ExitGuard

PROG = "tfa"


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{PROG} --help')\n")


def build_parser() -> Parser:
    parser = Parser(
        prog=PROG,
        description="Two-factor authentication in your terminal: sign in, connect an"
        " authenticator app, keep recovery codes and read your login history.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--server",
        default=os.environ.get("TFA_SERVER", DEFAULT_SERVER),
        help="server URL (TFA_SERVER; default %(default)s)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="run a throw-away server with demo accounts in this process",
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        default=os.environ.get("TFA_INSECURE_HTTP", "") in ("1", "true", "yes"),
        help="allow a plain http:// server on another machine: your password crosses the"
        " network unencrypted (TFA_INSECURE_HTTP=1)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = normalise_server_url(args.server)
    problem = server_problem(server, insecure_http=args.insecure_http)
    if problem is not None:
        # An address with a password in it is not repeated: it would land in a scroll-back.
        shown = "" if "@" in args.server else f" {args.server!r}"
        print(f"{PROG}: error: --server{shown}: {problem}", file=sys.stderr)
        return 2
    if args.demo:
        return run_demo()
    from tfa_tui.app import TfaApp

    with ExitGuard() as guard:
        TfaApp(TfaClient(server, insecure_http=args.insecure_http)).run()
    return guard.finish()


def run_demo() -> int:
    """The app against a throw-away server whose database goes away however the app ends."""
    from tfa_tui.demo import DemoServer

    with ExitGuard() as guard:  # before the database exists, so a hang-up cannot strand it
        demo = DemoServer()
        guard.add_clean_up(demo.discard)
        try:
            demo.begin()  # the server starts while the UI loads
            from tfa_tui.app import TfaApp

            url = demo.wait(give_up=guard.ending)
            if url is not None:
                TfaApp(TfaClient(url), demo=demo.accounts).run()
        finally:
            demo.stop()
    return guard.finish()
