"""RFC 6238 rules: which time-step a code belongs to, so the caller can refuse reuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import pyotp

from tfa_server.config import TotpRules

_DIGESTS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


def new_secret(rules: TotpRules) -> str:
    """Base32 without padding, as authenticator apps expect in `otpauth://` URIs."""
    return base64.b32encode(secrets.token_bytes(rules.secret_bytes)).decode().rstrip("=")


def _totp(secret: str, rules: TotpRules) -> pyotp.TOTP:
    digest = getattr(hashlib, _DIGESTS[rules.algorithm])
    return pyotp.TOTP(secret, digits=rules.digits, digest=digest, interval=rules.period)


def provisioning_uri(secret: str, account: str, issuer: str, rules: TotpRules) -> str:
    return _totp(secret, rules).provisioning_uri(name=account, issuer_name=issuer)


def code_at(secret: str, step: int, rules: TotpRules) -> str:
    return _totp(secret, rules).at(step * rules.period)


def current_step(now: float, rules: TotpRules) -> int:
    return int(now // rules.period)


def normalize_code(code: str, rules: TotpRules) -> str | None:
    """Digits only, spaces allowed (apps show `123 456`); anything else is not a code."""
    cleaned = code.replace(" ", "")
    if len(cleaned) != rules.digits or not cleaned.isascii() or not cleaned.isdigit():
        return None
    return cleaned


def matching_step(secret: str, code: str, now: float, rules: TotpRules) -> int | None:
    """The time-step within the window whose code equals `code`, or None.

    Every step in the window is compared, in constant time, so the timing tells nothing
    about which step matched. The caller must still reject steps <= the last accepted one
    (RFC 6238 section 5.2).
    """
    normalized = normalize_code(code, rules)
    if normalized is None:
        return None
    now_step = current_step(now, rules)
    found: int | None = None
    for step in range(max(0, now_step - rules.window), now_step + rules.window + 1):
        if hmac.compare_digest(code_at(secret, step, rules), normalized) and found is None:
            found = step
    return found
