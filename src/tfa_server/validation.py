"""Request bodies and query strings: strict shapes that also describe themselves to OpenAPI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tfa_server.errors import InvalidRequest

_JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer"}
_IN_WORDS: dict[type, str] = {str: "a string", bool: "true or false", int: "a whole number"}


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: type
    required: bool = True
    max_length: int = 1024
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""
    min_length: int = 0
    pattern: str | None = None  # documented only; the handler explains a mismatch in words

    def check(self, value: Any) -> Any:
        # JSON Schema counts 7.0 as an integer, and the OpenAPI document promises that schema.
        if self.kind is int and type(value) is float and value.is_integer():
            value = int(value)
        # bool is a subclass of int in Python; JSON keeps them apart, so must we.
        if type(value) is not self.kind:
            raise InvalidRequest(f"'{self.name}' must be {_IN_WORDS[self.kind]}.")
        if isinstance(value, str) and not _encodable(value):
            # JSON's \ud800 escapes decode to lone surrogates, which no hash or store takes.
            raise InvalidRequest(f"'{self.name}' is not valid Unicode text.")
        if isinstance(value, str) and len(value) > self.max_length:
            raise InvalidRequest(f"'{self.name}' is longer than {self.max_length} characters.")
        if isinstance(value, int) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise InvalidRequest(f"'{self.name}' must be at least {self.minimum}.")
            if self.maximum is not None and value > self.maximum:
                raise InvalidRequest(f"'{self.name}' must be at most {self.maximum}.")
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.kind]}
        if self.kind is str:
            schema["maxLength"] = self.max_length
            if self.min_length:
                schema["minLength"] = self.min_length
            if self.pattern:
                schema["pattern"] = self.pattern
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, slots=True)
class Body:
    fields: tuple[Field, ...]
    optional: bool = False  # no body at all reads as {}

    def parse(self, raw: bytes) -> dict[str, Any]:
        """Malformed JSON, a non-object, unknown, missing or mistyped fields are all 400s."""
        if self.optional and not raw.strip():
            raw = b"{}"
        try:
            data = json.loads(raw.decode("utf-8"))
        except RecursionError:
            raise InvalidRequest("The JSON body is nested too deeply.") from None
        except ValueError:
            # UnicodeDecodeError and over-long integers are ValueErrors too.
            raise InvalidRequest("The body is not valid UTF-8 JSON.") from None
        if not isinstance(data, dict):
            raise InvalidRequest("The body must be a JSON object.")
        known = {field.name for field in self.fields}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidRequest(f"Unknown field '{unknown[0][:64]}'.")
        parsed: dict[str, Any] = {}
        for field in self.fields:
            if field.name in data:
                parsed[field.name] = field.check(data[field.name])
            elif field.required:
                raise InvalidRequest(f"'{field.name}' is required.")
        return parsed

    def json_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [field.name for field in self.fields if field.required],
            "properties": {field.name: field.json_schema() for field in self.fields},
        }


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    kind: type
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def parse(self, query: Mapping[str, str]) -> Any:
        raw = query.get(self.name)
        if raw is None or (raw == "" and self.kind is str):  # an empty filter filters nothing
            return None
        if self.kind is bool:
            if raw in ("true", "false"):
                return raw == "true"
            raise InvalidRequest(f"'{self.name}' must be true or false.")
        if self.kind is int:
            if not (raw.isascii() and raw.isdigit()):
                raise InvalidRequest(f"'{self.name}' must be a whole number.")
            # Longer than any allowed value: out of range, without converting 5,000 digits.
            value = int(raw) if len(raw) <= 30 else 10**30
            return Field(self.name, int, minimum=self.minimum, maximum=self.maximum).check(value)
        return Field(self.name, str, max_length=256).check(raw)

    def openapi(self) -> dict[str, Any]:
        schema = Field(
            self.name, self.kind, minimum=self.minimum, maximum=self.maximum
        ).json_schema()
        if self.kind is str:
            schema["maxLength"] = 256
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "schema": schema,
            "description": self.description,
        }


def parse_query(params: tuple[QueryParam, ...], query: Mapping[str, str]) -> dict[str, Any]:
    unknown = sorted(set(query) - {param.name for param in params})
    if unknown:
        raise InvalidRequest(f"Unknown query parameter '{unknown[0][:64]}'.")
    return {param.name: param.parse(query) for param in params}
