"""Numbers to alert on, in Prometheus's text format, on a listener of their own.

Counted where the API answers (`Api.handle`), from the route and the answer, so every outcome
is counted once and in the words the API already uses: a sign-in step's reason is its
answer's status or error code. Labels are bounded: route templates (never raw paths), status
codes, error codes, and the names of registered services. Nothing here ever holds a name,
address, code or token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from tfa_server.http.messages import Request, Response, error_response

# The sign-in steps, by the route's operation id.
SIGN_IN_STEPS = {"login": "password", "loginTotp": "totp", "loginRecovery": "recovery_code"}
VERIFY_ROUTES = ("verifyStart", "verify")
UNMATCHED = "unmatched"  # any path that is no route: one label, however many are tried
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """One registry per server (tests run many in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The process's memory, CPU and open files, Python's version and collections.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        r.register(GC_COLLECTOR)
        self.requests = Counter(
            "tfa_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "tfa_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sign_in_steps = Counter(
            "tfa_sign_in_steps",
            "Sign-in steps by outcome; reason: the answer's status or error code",
            ["step", "outcome", "reason"],
            registry=r,
        )
        self.verify_calls = Counter(
            "tfa_verify_calls",
            "Relying services' verify calls by service and outcome (allow, ask, or the reason)",
            ["service", "outcome"],
            registry=r,
        )
        self.throttled = Counter(
            "tfa_throttled",
            "Attempts refused by a throttle (429: an account, a name or an address locked out)",
            ["route"],
            registry=r,
        )
        self.database_errors = Counter(
            "tfa_database_errors",
            "Requests and background jobs the database failed (answered 503 or logged)",
            registry=r,
        )
        self.open_connections = Gauge(
            "tfa_http_open_connections", "Client connections open now", registry=r
        )
        self.active_sessions = Gauge(
            "tfa_active_sessions",
            "Signed-in sessions not ended, expired or idle, as of the scrape",
            registry=r,
        )

    def observe(
        self,
        request: Request,
        route: str | None,
        name: str | None,
        response: Response,
        seconds: float,
        service: str | None,
    ) -> None:
        """One answered request: `route` its template and `name` its name, None if no route
        matched; `service` the relying service that called."""
        label = route or UNMATCHED
        status = response.status
        self.requests.labels(request.method, label, str(status)).inc()
        self.latency.labels(label).observe(seconds)
        if status == 429:
            self.throttled.labels(label).inc()
        if status == 503 and _code(response) == "service_unavailable":
            self.database_errors.inc()
        if name in SIGN_IN_STEPS:
            outcome = "success" if status == 200 else "failure"
            self.sign_in_steps.labels(SIGN_IN_STEPS[name], outcome, _reason(response)).inc()
        elif name in VERIFY_ROUTES and service is not None:
            self.verify_calls.labels(service, _verify_outcome(response)).inc()

    async def scrape(
        self, request: Request, active_sessions: Callable[[], Awaitable[int]]
    ) -> Response:
        """GET /metrics on the metrics listener; anything else is a 404 there."""
        if request.path != "/metrics":
            return error_response(404, "not_found", "Only /metrics is served here.")
        if request.method not in ("GET", "HEAD"):
            return error_response(405, "method_not_allowed", "Use GET.", [("Allow", "GET")])
        try:
            self.active_sessions.set(await active_sessions())
        except Exception:  # the rest is still worth reading; the count says the database failed
            self.database_errors.inc()
        body = generate_latest(self.registry)
        return Response(200, body, [("Content-Type", CONTENT_TYPE_LATEST)])


def _code(response: Response) -> str | None:
    return getattr(response.body, "error", None)


def _tag(body: object) -> str | None:
    """A tagged answer's tag (a sign-in's status, verify/start's next step)."""
    config = getattr(type(body), "__struct_config__", None)
    tag = getattr(config, "tag", None)
    return tag if isinstance(tag, str) else None


def _reason(response: Response) -> str:
    """A success's status (authenticated, totp_required, ...), or the error code."""
    return _tag(response.body) or _code(response) or str(response.status)


def _verify_outcome(response: Response) -> str:
    """allow (verify, or verify/start letting through), code (asking for one), the reason of
    a deny, or the error code."""
    body = response.body
    if response.status != 200:
        return _code(response) or str(response.status)
    reason = getattr(body, "reason", None)
    if isinstance(reason, str):
        return reason
    return _tag(body) or str(getattr(body, "result", "allow"))
