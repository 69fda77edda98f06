"""`tfa`: the terminal client."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from tfa_tui import __version__
from tfa_tui.api.client import DEFAULT_SERVER, TfaClient, normalise_server_url, url_problem

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = normalise_server_url(args.server)
    problem = url_problem(server)
    if problem is not None:
        print(f"{PROG}: error: --server {args.server!r}: {problem}", file=sys.stderr)
        return 2
    if args.demo:
        from tfa_tui.demo import DemoServer

        demo = DemoServer()
        demo.begin()  # the server starts while the UI loads
        try:
            from tfa_tui.app import TfaApp

            TfaApp(TfaClient(demo.wait()), demo=demo.accounts).run()
        finally:
            demo.stop()
        return 0
    from tfa_tui.app import TfaApp

    TfaApp(TfaClient(server)).run()
    return 0
