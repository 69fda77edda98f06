"""Request bodies and query strings decoded into tfa_protocol's Structs, refused in words.

msgspec checks the shapes and constraints. Three promises of the API are not msgspec's:
JSON Schema counts 7.0 as an integer (strict msgspec refuses it, and lax mode would also take
"true" for a bool); a lone surrogate (JSON's \\ud800) is refused naming its field, where
msgspec's JSON decoder refuses the whole body; and query strings take only `true`/`false`
and plain digits. Hence the stdlib's json.loads, those three fixed here, then a strict
msgspec.convert whose error is put in words naming the field, never its value. A body that
msgspec's own decoder takes as it is (almost every one) skips all that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar

import msgspec
from msgspec import inspect

from tfa_server.errors import InvalidRequest

T = TypeVar("T", bound=msgspec.Struct)

_IN_WORDS = {
    inspect.StrType: "a string",
    inspect.BoolType: "true or false",
    inspect.IntType: "a whole number",
}
_AT = re.compile(r" - at `\$\.(?P<field>[A-Za-z0-9_]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[A-Za-z0-9_]+)`$")
_MULTIPLE = re.compile(r"^Expected `int` that's a multiple of (?P<step>\d+)")
_LIMIT = re.compile(r"^Expected `(?:str|int)`(?: of length)? (?P<op>[<>]=) (?P<bound>-?\d+)")


@cache
def _fields(kind: type[msgspec.Struct]) -> dict[str, inspect.Field]:
    info = inspect.type_info(kind)
    assert isinstance(info, inspect.StructType)
    return {field.name: field for field in info.fields}


@cache
def _decoder(kind: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(kind)


def _scalar(field: inspect.Field) -> tuple[inspect.Type, dict[str, Any]]:
    """The field's own type, past Meta and `| None`, and its `Meta(extra=...)`."""
    kind: inspect.Type = field.type
    extra: dict[str, Any] = {}
    while True:
        if isinstance(kind, inspect.Metadata):
            extra.update(kind.extra or {})
            kind = kind.type
        elif isinstance(kind, inspect.UnionType):
            kind = next(t for t in kind.types if not isinstance(t, inspect.NoneType))
        else:
            return kind, extra


def _readable(name: str) -> str:
    """An unknown name as sent, short, and safe to write back in UTF-8."""
    return name[:64].encode("utf-8", "backslashreplace").decode("utf-8")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _in_words(kind: type[msgspec.Struct], error: msgspec.ValidationError) -> str:
    text = str(error)
    missing = _MISSING.match(text)
    if missing:
        return f"'{missing['field']}' is required."
    at = _AT.search(text)
    if at is None or at["field"] not in _fields(kind):
        return "The request does not have the documented shape."
    name = at["field"]
    scalar, extra = _scalar(_fields(kind)[name])
    if not text.startswith("Expected `") or ", got `" in text:
        return f"'{name}' must be {_IN_WORDS.get(type(scalar), 'of the documented type')}."
    limit = _LIMIT.match(text)
    if isinstance(scalar, inspect.StrType):
        if limit and limit["op"] == "<=":
            return f"'{name}' is longer than {limit['bound']} characters."
        return str(extra.get("refusal", f"'{name}' does not have the documented form."))
    if limit:
        return f"'{name}' must be at {'most' if limit['op'] == '<=' else 'least'} {limit['bound']}."
    multiple = _MULTIPLE.match(text)
    if multiple:
        return f"'{name}' must be a multiple of {multiple['step']}."
    return f"'{name}' is out of range."


def _convert(data: dict[str, Any], kind: type[T]) -> T:
    fields = _fields(kind)
    unknown = sorted(name for name in data if name not in fields)
    if unknown:
        raise InvalidRequest(f"Unknown field '{_readable(unknown[0])}'.")
    for name, value in data.items():
        scalar, _ = _scalar(fields[name])
        # JSON Schema counts 7.0 as an integer, and the OpenAPI document promises that schema.
        if isinstance(scalar, inspect.IntType) and type(value) is float and value.is_integer():
            data[name] = int(value)
        elif isinstance(value, str) and not _encodable(value):
            # JSON's \ud800 escapes decode to lone surrogates, which no hash or store takes.
            raise InvalidRequest(f"'{name}' is not valid Unicode text.")
    try:
        return msgspec.convert(data, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(_in_words(kind, exc)) from None


def decode_body(raw: bytes, kind: type[T], *, optional: bool = False) -> T:
    """Malformed JSON, a non-object, unknown, missing or mistyped fields are all 400s.

    `optional`: no body at all reads as {}.
    """
    if optional and not raw.strip():
        raw = b"{}"
    try:
        decoded: T = _decoder(kind).decode(raw)
        return decoded
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass  # refused, or one of the cases above: the careful path decides, in words
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise InvalidRequest("The JSON body is nested too deeply.") from None
    except ValueError:
        # UnicodeDecodeError and over-long integers are ValueErrors too.
        raise InvalidRequest("The body is not valid UTF-8 JSON.") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return _convert(data, kind)


def decode_query(query: Mapping[str, str], kind: type[T] | None) -> T | None:
    """Query strings hold text: booleans are `true`/`false`, numbers plain digits; an empty
    value is no filter. A route without parameters (`kind` None) takes none."""
    fields = _fields(kind) if kind is not None else {}
    unknown = sorted(name for name in query if name not in fields)
    if unknown:
        raise InvalidRequest(f"Unknown query parameter '{_readable(unknown[0])}'.")
    if kind is None:
        return None
    data: dict[str, Any] = {}
    for name, raw in query.items():
        scalar, _ = _scalar(fields[name])
        if isinstance(scalar, inspect.BoolType):
            if raw not in ("true", "false"):
                raise InvalidRequest(f"'{name}' must be true or false.")
            data[name] = raw == "true"
        elif isinstance(scalar, inspect.IntType):
            digits = raw.removeprefix("-")
            if not (digits.isascii() and digits.isdigit()):
                raise InvalidRequest(f"'{name}' must be a whole number.")
            # Longer than any allowed value: out of range, without converting 5,000 digits.
            data[name] = int(raw) if len(digits) <= 30 else (-1 if raw != digits else 1) * 10**30
        elif raw:
            data[name] = raw
    return _convert(data, kind)
