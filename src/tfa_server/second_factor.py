"""Checking a TOTP or recovery code and spending it, inside the caller's transaction."""

from __future__ import annotations

import logging
from enum import Enum
from typing import Literal

from cryptography.exceptions import InvalidTag

from tfa_server import recovery, totp
from tfa_server.core import Core
from tfa_server.errors import ServerKeyReplaced
from tfa_server.storage import second_factor as rows
from tfa_server.storage import server_key
from tfa_server.storage.database import Connection
from tfa_server.storage.second_factor import CodeUse

Method = Literal["totp", "recovery_code"]

log = logging.getLogger("tfa_server")


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
    try:
        secret = core.keys.decrypt_secret(blob, user_id)
    except InvalidTag:
        require_current_key(conn, core)  # a rotation since this process started
        raise
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
    current = require_current_key(conn, core)
    generations = rows.recovery_generations(conn, user_id)
    retired = {
        generation: core.keys.unseal_retired(sealed, generation)
        for generation, sealed in server_key.retired(conn, min(generations, default=current))
    }
    digests = [
        core.keys.recovery_code_digest(
            normalized, user_id, [retired[older] for older in range(made, current)]
        )
        for made in generations
    ]
    use = rows.use_recovery_code(conn, user_id, digests, core.now())
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
    generation = require_current_key(conn, core)
    codes = recovery.generate(core.settings.recovery_code_count)
    digests = [
        core.keys.recovery_code_digest(recovery.normalize(code) or "", user_id) for code in codes
    ]
    rows.replace_recovery_codes(conn, user_id, digests, core.now(), generation)
    return codes


def require_current_key(conn: Connection, core: Core) -> int:
    """The key generation, when this process's key is still the database's; before sealing a
    secret or checking a recovery code, in the same transaction as that work."""
    state = server_key.state(conn)
    if state.fingerprint != core.keys.fingerprint:
        log.error(
            "the server key was replaced (generation %d): restart this server with the new"
            " key file",
            state.generation,
        )
        raise ServerKeyReplaced
    return state.generation
