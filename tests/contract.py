"""Checks every response the tests receive against the server's own OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource


class ContractViolation(AssertionError):
    pass


class Contract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **document}
        )
        self._registry: Registry[Any] = Registry().with_resource("urn:tfa", resource)
        self._paths = [
            (re.compile("^" + re.sub(r"\{[a-z_]+\}", "[^/]+", path) + "$"), path)
            for path in document["paths"]
        ]
        self.checked = 0

    def operation(self, method: str, path: str) -> dict[str, Any] | None:
        for pattern, template in self._paths:
            if pattern.match(path):
                return self.document["paths"][template].get(method.lower())  # type: ignore[no-any-return]
        return None

    def check(self, response: httpx.Response) -> None:
        request = response.request
        operation = self.operation(request.method, request.url.path)
        if operation is None:
            return  # unknown paths are 404s, checked by their own tests
        responses = operation["responses"]
        spec = responses.get(str(response.status_code)) or responses.get("default")
        if spec is None:
            raise ContractViolation(
                f"{request.method} {request.url.path} answered {response.status_code},"
                " which its operation does not document"
            )
        content = spec.get("content")
        if content is None:
            if response.content:
                raise ContractViolation(f"{request.method} {request.url.path}: unexpected body")
            return
        if not response.headers.get("content-type", "").startswith("application/json"):
            raise ContractViolation(f"{request.method} {request.url.path}: not JSON")
        schema = content["application/json"]["schema"]
        validator = Draft202012Validator(
            {"$ref": "urn:tfa" + _fragment(schema)} if "$ref" in schema else schema,
            registry=self._registry,
            # Without a format checker `date-time` would be an annotation only.
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        errors = sorted(validator.iter_errors(response.json()), key=lambda error: error.path)
        if errors:
            raise ContractViolation(
                f"{request.method} {request.url.path} {response.status_code}: {errors[0].message}"
            )
        self.checked += 1


def _fragment(schema: dict[str, Any]) -> str:
    return str(schema["$ref"])


__all__ = ["Contract", "ContractViolation"]
