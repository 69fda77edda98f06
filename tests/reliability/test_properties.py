"""Hypothesis on the inputs people type: TOTP codes and recovery codes, and request bodies.

tests/test_units.py holds the examples and the first properties; these go wider and record
how many inputs were tried for docs/reliability.md.
"""

from __future__ import annotations

import json
from typing import Annotated

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import Meta

from tfa_protocol.types import Request
from tfa_server import recovery, totp
from tfa_server.config import TotpRules
from tfa_server.errors import InvalidRequest
from tfa_server.validation import decode_body

from .figures import Figures, scaled

GROUP = "Outside tools"
RULES = TotpRules()
SECRET = "JBSWY3DPEHPK3PXP" * 2
EXAMPLES = scaled(150, 20_000)
tried: dict[str, int] = {}


def counted(name: str) -> None:
    tried[name] = tried.get(name, 0) + 1


@settings(max_examples=EXAMPLES, deadline=None)
@given(digits=st.text(alphabet="0123456789", min_size=6, max_size=6), data=st.data())
def test_six_digits_with_spaces_anywhere_are_the_code(digits: str, data: st.DataObject) -> None:
    counted("totp")
    entered = "".join(data.draw(st.sampled_from(["", " "])) + digit for digit in digits)
    assert totp.normalize_code(entered, RULES) == digits


@settings(max_examples=EXAMPLES, deadline=None)
@given(entered=st.text(max_size=20))
def test_anything_else_typed_as_a_code_is_refused_without_error(entered: str) -> None:
    counted("totp")
    cleaned = entered.replace(" ", "")
    expected = cleaned if len(cleaned) == 6 and cleaned.isascii() and cleaned.isdigit() else None
    assert totp.normalize_code(entered, RULES) == expected
    step = totp.matching_step(SECRET, entered, 1_795_867_200.0, RULES)
    assert step is None or expected is not None


@settings(max_examples=EXAMPLES, deadline=None)
@given(entered=st.text(max_size=40))
def test_any_text_as_a_recovery_code_is_a_canonical_code_or_nothing(entered: str) -> None:
    counted("recovery")
    result = recovery.normalize(entered)
    if result is not None:
        assert len(result) == recovery.CODE_LENGTH
        assert set(result) <= set(recovery.ALPHABET)
        assert recovery.normalize(recovery.format_code(result)) == result


class Sample(Request):
    code: Annotated[str, Meta(max_length=64)]
    count: Annotated[int, Meta(ge=0, le=10)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    value=json_values
    | st.fixed_dictionaries({"code": json_values, "count": json_values})
    | st.fixed_dictionaries(
        {"code": st.text(max_size=80), "count": st.integers(-5, 15)},
        optional={"extra": json_values},
    )
)
def test_any_json_body_is_accepted_exactly_when_it_fits(value: object) -> None:
    counted("bodies")
    raw = json.dumps(value).encode()
    fits = (
        isinstance(value, dict)
        and set(value) == {"code", "count"}
        and isinstance(value["code"], str)
        and len(value["code"]) <= 64
        and type(value["count"]) in (int, float)
        and float(value["count"]).is_integer()
        and 0 <= value["count"] <= 10
    )
    try:
        parsed = msgspec.structs.asdict(decode_body(raw, Sample))
    except InvalidRequest:
        assert not fits
    else:
        assert fits
        assert parsed == {"code": value["code"], "count": int(value["count"])}  # type: ignore[index]


def test_record_what_was_tried(figures: Figures) -> None:
    """Runs last in this file: one row for the table."""
    total = sum(tried.values())
    assert total >= 4 * EXAMPLES * 0.5  # the properties above really ran
    figures.record(
        GROUP,
        "hypothesis: TOTP and recovery-code input normalisation, request-body validation"
        f" (inputs: {', '.join(f'{name} {count:,}' for name, count in sorted(tried.items()))})",
        total,
        "every input normalised to the canonical code or refused; bodies accepted exactly"
        " when they fit the schema, never an unexpected exception",
    )
