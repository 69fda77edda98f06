"""The outside review's findings (issue 10), each with what was seen before its fix.

Tests that prove a fix carry `@pytest.mark.finding("Fnn")`; `make stress` records each marked
test's real outcome, and docs/reliability.md's "Review findings" group lists every finding with
its "before" below and the tests' observed result as "after".
"""

from __future__ import annotations

FINDINGS: dict[str, tuple[str, str]] = {
    "F01": (
        "The client renders server text literally, never as markup",
        "A sign-in attempt with the username `[/x]` made the app exit with MarkupError when an"
        " administrator opened Admin > Sign-in history; `[@click=...]` and `[link=...]` in"
        " usernames or clients became actions and links.",
    ),
    "F02": (
        "One set of hashing settings for every command; passwords rehashed",
        "`tfa-server user add` ignored the `--argon2-*` settings `serve` used: with non-default"
        " settings an unknown name took 298 ms and a real one 20 ms; passwords were never"
        " rehashed.",
    ),
    "F03": (
        "Failure counts decay the same way for known and unknown names",
        "A real account's failure count reset on a success while an unknown name's never did,"
        " so waiting revealed which names are active.",
    ),
    "F04": (
        "Nothing but the username before the second factor",
        "The answer to a correct password with `totp_required` carried the whole user view (last"
        " sign-in, address, client, admin flag, codes left, failed attempts).",
    ),
    "F05": (
        "Existing sessions follow a forced policy",
        "Forcing 2FA changed nothing for sessions that already existed: a user without 2FA,"
        " administrators included, kept a full session for up to 12 hours.",
    ),
    "F06": (
        "Connecting an authenticator needs the password on an old session",
        "Turning 2FA on needed no re-authentication: a stolen session token could connect the"
        " attacker's authenticator and collect the recovery codes.",
    ),
    "F07": (
        "Active sessions per user are capped",
        "A valid account could open unlimited sessions (600 in 23 s from one address).",
    ),
    "F08": (
        "A flood of refused attempts writes a bounded amount of history",
        "Every refused attempt was one history row: 2,000 unauthenticated requests in 3 s wrote"
        " 2,000 rows (3 MB).",
    ),
    "F09": (
        "Connections per address are limited, TLS handshakes included",
        "One address could hold all 512 connection slots with partial requests.",
    ),
    "F10": (
        "The real client address behind a trusted proxy",
        "Behind a TLS-terminating proxy every client shared the proxy's address: thirty failures"
        " by anyone locked everyone out for ten minutes.",
    ),
    "F11": (
        "No request bytes in the log, even at DEBUG",
        "At DEBUG the server logged h11's error text, which quotes the raw request line (query"
        " string included) and bad header lines verbatim.",
    ),
    "F12": (
        "The client uses HTTPS for every host but loopback",
        "`tfa --server tfa.example.org` became `http://tfa.example.org`: the password crossed the"
        " network in clear.",
    ),
    "F13": (
        "Recovery codes saved 0600 from the start, never through a symlink",
        "Replacing a saved recovery-codes file opened the target with O_TRUNC, following a"
        " symlink placed there.",
    ),
    "F14": (
        "The code that confirms the setup cannot sign in (RFC 6238 5.2)",
        "Storing `step - 1` after confirming the setup passed every test: the helpers moved the"
        " clock 30 s on, so no test signed in with the confirming code.",
    ),
    "F15": (
        "Only the Bearer scheme carries a token",
        "Accepting `Basic <token>` like `Bearer <token>` passed every test.",
    ),
    "F16": (
        "The TOTP compare-and-set holds across connections",
        "Weakening `last_step < ?` to `<=` passed every test: single use held only because of"
        " one database thread and an in-process lock.",
    ),
    "F17": (
        "The keyring holds only a remembered full session",
        "Storing the token without Remember me, or storing a challenge token, passed every"
        " client test.",
    ),
    "F18": (
        "Every figure of this document is observed",
        "The result column was the constant 'passed', schemathesis rows had a fixed outcome,"
        " 'found and fixed' counts came from hand-written strings, and a missing row went"
        " unnoticed.",
    ),
    "F19": (
        "Tests check what their names say",
        "The full-disk refusal test used the right password; the schemathesis stateful phase"
        " asserted only that one step ran; the empty-fields test never checked that no request"
        " was sent.",
    ),
    "F20": (
        "The client never outlives its terminal",
        "A dropped terminal left `tfa --demo` running forever with its temporary database, 4"
        " times in 24 tries (main thread blocked in Textual's output writer).",
    ),
}
