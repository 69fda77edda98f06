"""Checking a TOTP or recovery code and spending it, inside the caller's transaction."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from tfa_server import recovery, totp
from tfa_server.core import Core
from tfa_server.storage import second_factor as rows
from tfa_server.storage.database import Connection
from tfa_server.storage.second_factor import CodeUse

Method = Literal["totp", "recovery_code"]


class Verdict(Enum):
    ACCEPTED = "accepted"
    WRONG = "bad_code"
    REUSED = "code_reused"


def check_totp(conn: Connection, core: Core, user_id: int, code: str) -> Verdict:
    """Accept a code once: its step must be newer than the last accepted (RFC 6238 5.2)."""
    found = rows.active_secret(conn, user_id)
    if found is None:
        return Verdict.WRONG
    blob, last_step = found
    secret = core.keys.decrypt_secret(blob, user_id)
    step = totp.matching_step(secret, code, core.now(), core.settings.totp)
    if step is None:
        return Verdict.WRONG
    if step <= last_step or not rows.advance_step(conn, user_id, step):
        return Verdict.REUSED
    return Verdict.ACCEPTED


def check_recovery_code(conn: Connection, core: Core, user_id: int, code: str) -> Verdict:
    normalized = recovery.normalize(code)
    if normalized is None:
        return Verdict.WRONG
    digest = core.keys.recovery_code_digest(normalized, user_id)
    use = rows.use_recovery_code(conn, user_id, digest, core.now())
    return {
        CodeUse.SPENT: Verdict.ACCEPTED,
        CodeUse.ALREADY_USED: Verdict.REUSED,
        CodeUse.UNKNOWN: Verdict.WRONG,
    }[use]


def check(conn: Connection, core: Core, user_id: int, code: str, method: Method) -> Verdict:
    if method == "totp":
        return check_totp(conn, core, user_id, code)
    return check_recovery_code(conn, core, user_id, code)


def method_of(code: str, core: Core) -> Method:
    """Re-authentication takes either kind in one field: six digits are a TOTP code."""
    return "totp" if totp.normalize_code(code, core.settings.totp) is not None else "recovery_code"


def new_recovery_codes(conn: Connection, core: Core, user_id: int) -> list[str]:
    """Replace the user's set: the old codes stop working in the same transaction."""
    codes = recovery.generate(core.settings.recovery_code_count)
    digests = [
        core.keys.recovery_code_digest(recovery.normalize(code) or "", user_id) for code in codes
    ]
    rows.replace_recovery_codes(conn, user_id, digests, core.now())
    return codes
