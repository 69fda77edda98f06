"""Path templates to handlers; unknown paths are 404, known paths with other methods 405."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from tfa_server.errors import ApiError, NotFound

R = TypeVar("R")
_PARAM = re.compile(r"\{([a-z_]+)\}")


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"

    def __init__(self, allowed: Iterable[str]) -> None:
        allow = ", ".join(sorted(set(allowed)))
        super().__init__(f"This address accepts only: {allow}.", headers=[("Allow", allow)])


@dataclass(frozen=True, slots=True)
class Match(Generic[R]):
    route: R
    params: Mapping[str, str]


class Router(Generic[R]):
    def __init__(self, routes: Iterable[R], key: Callable[[R], tuple[str, str]]) -> None:
        self._table: list[tuple[re.Pattern[str], str, R]] = []
        for route in routes:
            method, template = key(route)
            pattern = (
                "^"
                + _PARAM.sub(
                    r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
                )
                + "$"
            )
            self._table.append((re.compile(pattern), method, route))

    def match(self, method: str, path: str) -> Match[R]:
        allowed: list[str] = []
        for pattern, route_method, route in self._table:
            found = pattern.match(path)
            if found is None:
                continue
            if route_method == method:
                return Match(route, found.groupdict())
            allowed.append(route_method)
        if allowed:
            raise MethodNotAllowed(allowed)
        raise NotFound("There is nothing at this address.")
