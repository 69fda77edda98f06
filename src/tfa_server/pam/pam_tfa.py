"""pam_tfa: ask for the tfa code in sshd, sudo, su or login, through pam_python.

    auth required pam_python.so /path/to/pam_tfa.py url=https://tfa.example:8443 \\
        key_file=/etc/tfa/service.key

The host's system Python runs this file inside the PAM stack, so it uses the standard library
only. It asks tfa's verify API what to do for the user (`/api/v1/verify/start`), then asks the
person for a code (a recovery code is taken at the same prompt) and has tfa check it
(`/api/v1/verify`), so tfa's policy, throttling, single-use codes and history apply to this
door as to tfa itself. It never logs a code or the key; one syslog line (auth facility) says
what it decided.

Arguments (`name=value`): url (required), key_file (required: the service key alone, owned by
root, not readable by group or others), ca_file, timeout (seconds, 10), prompt
("Verification code: "), tries (3), failmode (secure: deny when tfa cannot be reached, the
default; safe: allow and say so), unknown_user (deny or allow; deny), skip_users and
skip_groups (comma lists never asked: break-glass accounts).
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import ipaddress
import json
import os
import pwd
import socket
import ssl
import stat
import syslog
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

VERSION = "1"
KEY_PREFIX = "tfasvc_"
# Answers are a few hundred bytes; a server that sends more is not the tfa server.
_MAX_ANSWER = 64 * 1024
_ARGUMENTS = (
    "url",
    "key_file",
    "ca_file",
    "timeout",
    "prompt",
    "tries",
    "failmode",
    "unknown_user",
    "skip_users",
    "skip_groups",
)
_BOOLEAN_CHOICES = {"failmode": ("secure", "safe"), "unknown_user": ("deny", "allow")}


class ConfigError(Exception):
    """A wrong module argument or key file: the administrator's to fix, so always a denial."""


class Unreachable(Exception):
    """tfa did not answer usefully (network, TLS, timeout, 5xx): failmode decides."""


class Config:
    """The module's arguments. (No dataclasses here: pam_python may load this file without
    entering it in sys.modules, which dataclasses need.)"""

    def __init__(
        self,
        url: str,
        key_file: str,
        ca_file: str | None = None,
        timeout: float = 10.0,
        prompt: str = "Verification code: ",
        tries: int = 3,
        failmode: str = "secure",
        unknown_user: str = "deny",
        skip_users: frozenset[str] = frozenset(),
        skip_groups: frozenset[str] = frozenset(),
    ) -> None:
        self.url = url
        self.key_file = key_file
        self.ca_file = ca_file
        self.timeout = timeout
        self.prompt = prompt
        self.tries = tries
        self.failmode = failmode
        self.unknown_user = unknown_user
        self.skip_users = skip_users
        self.skip_groups = skip_groups

    @classmethod
    def parse(cls, argv: list[str]) -> Config:
        values: dict[str, str] = {}
        for argument in argv:
            name, equals, value = argument.partition("=")
            if not equals or name not in _ARGUMENTS:
                raise ConfigError(f"unknown argument {_argument_name(name)}")
            values[name] = value
        for required in ("url", "key_file"):
            if not values.get(required):
                raise ConfigError(f"{required}= is required")
        url = values["url"].rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError("url= must be an https:// URL")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ConfigError("url= may use plain http only to this machine (loopback)")
        for name, choices in _BOOLEAN_CHOICES.items():
            if values.get(name, choices[0]) not in choices:
                raise ConfigError(f"{name}= must be {' or '.join(choices)}")
        try:
            timeout = float(values.get("timeout", "10"))
            tries = int(values.get("tries", "3"))
        except ValueError:
            raise ConfigError("timeout= and tries= must be numbers") from None
        if not (0 < timeout <= 300 and 1 <= tries <= 10):
            raise ConfigError("timeout= is 0 to 300 seconds and tries= 1 to 10")
        return cls(
            url=url,
            key_file=values["key_file"],
            ca_file=values.get("ca_file") or None,
            timeout=timeout,
            prompt=values.get("prompt", "Verification code: "),
            tries=tries,
            failmode=values.get("failmode", "secure"),
            unknown_user=values.get("unknown_user", "deny"),
            skip_users=_names(values.get("skip_users", "")),
            skip_groups=_names(values.get("skip_groups", "")),
        )


def _argument_name(name: str) -> str:
    """An unknown argument's name for the log, unless it could be a secret: the key pasted
    onto the PAM line itself must not land in syslog."""
    if name.startswith(KEY_PREFIX) or not (name.isidentifier() and len(name) <= 20):
        return "(not name=value; not shown)"
    return repr(name)


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip() for name in text.split(",") if name.strip())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_key(path: str) -> str:
    """The service key, from a file only root can read: anyone who reads it can check codes.
    The file itself, never through a link; O_NONBLOCK so that a named pipe cannot hold the
    sign-in (it is then refused as not a regular file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ConfigError(f"cannot open key_file {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"key_file {path} is not a regular file")
        if info.st_uid != 0 or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"key_file {path} must be owned by root and not readable by group or others"
                " (chown root: ...; chmod 600 ...)"
            )
        with os.fdopen(fd, "r", encoding="ascii", errors="replace") as handle:
            fd = -1
            key = handle.read(256).strip()
    except OSError as exc:
        raise ConfigError(f"cannot read key_file {path}: {exc.strerror}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if not key.startswith(KEY_PREFIX):
        raise ConfigError(f"key_file {path} does not hold a tfa service key")
    return key


def is_skipped(user: str, config: Config) -> bool:
    """Break-glass accounts, by name or by group (primary or supplementary)."""
    if user in config.skip_users:
        return True
    if not config.skip_groups:
        return False
    try:
        primary = grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
    except KeyError:
        primary = None
    for group in config.skip_groups:
        try:
            members = grp.getgrnam(group).gr_mem
        except KeyError:
            continue
        if group == primary or user in members:
            return True
    return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the key elsewhere: it is an error, never followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Answer:
    def __init__(self, status: int, body: dict[str, Any], retry_after: str | None = None) -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after

    @property
    def error(self) -> str:
        return str(self.body.get("error", ""))

    @property
    def message(self) -> str:
        return _printable(str(self.body.get("message", "")))


def _printable(text: str) -> str:
    """The server's words as plain text on someone's terminal: no control characters."""
    return "".join(ch if ch.isprintable() or ch == "\n" else "?" for ch in text)[:500]


class Client:
    def __init__(self, config: Config, key: str, agent: str) -> None:
        self.config = config
        self._key = key
        self._agent = agent
        # No ProxyHandler from the environment: the calling program's (sudo keeps the user's)
        # http_proxy would send the key through someone's proxy, or let them make tfa
        # unreachable on purpose to get failmode=safe.
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.ProxyHandler({}),
            _NoRedirects(),
        ]
        # Loading the CA store costs ~50 ms: only for TLS. (urlsplit gives the scheme in
        # lower case, as Config.parse checked it: HTTPS:// is https:// and gets ca_file.)
        if urllib.parse.urlsplit(config.url).scheme == "https":
            try:
                context = ssl.create_default_context(cafile=config.ca_file)
            except OSError as exc:  # ssl.SSLError too: a file that holds no certificate
                reason = _reason(exc)
                raise ConfigError(f"cannot use ca_file {config.ca_file}: {reason}") from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return f"Client({self.config.url!r})"

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        request = urllib.request.Request(  # noqa: S310 the scheme is checked in Config.parse
            self.config.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self._key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": self._agent,
            },
        )
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                return Answer(response.status, _json(response.read(_MAX_ANSWER)))
        except urllib.error.HTTPError as exc:
            status, retry = exc.code, exc.headers.get("Retry-After")
            try:
                raw = exc.read(_MAX_ANSWER)
            except (OSError, http.client.HTTPException):
                raw = b""
            finally:
                exc.close()
        # HTTPException: something else than HTTP answered (BadStatusLine, IncompleteRead).
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise Unreachable(_reason(exc)) from None
        body = _json(raw)
        if status >= 500 or "error" not in body:
            raise Unreachable(f"HTTP {status}")
        return Answer(status, body, retry)


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(exc: BaseException) -> str:
    """What went wrong, for syslog: an exception's type name, or urllib's reason text."""
    reason = getattr(exc, "reason", exc)
    return type(reason).__name__ if not isinstance(reason, str) else _printable(reason)


def log(service: str, user: str, rhost: str, outcome: str) -> None:
    syslog.openlog("pam_tfa", syslog.LOG_PID, syslog.LOG_AUTH)
    syslog.syslog(
        syslog.LOG_INFO,
        f"{_printable(service)}: user={_printable(user)!r} rhost={_printable(rhost) or '-'}"
        f" {_printable(outcome)}",
    )


class Conversation:
    """What the person sees: prompts with echo off, information and errors."""

    def __init__(self, pamh: Any) -> None:
        self.pamh = pamh

    def ask(self, prompt: str) -> str | None:
        try:
            answer = self.pamh.conversation(
                self.pamh.Message(self.pamh.PAM_PROMPT_ECHO_OFF, prompt)
            )
        except self.pamh.exception:
            return None  # the person hung up or the program cannot ask
        return None if answer.resp is None else str(answer.resp)

    def say(self, text: str, *, error: bool = False) -> None:
        if not text:
            return
        style = self.pamh.PAM_ERROR_MSG if error else self.pamh.PAM_TEXT_INFO
        with contextlib.suppress(self.pamh.exception):  # nobody to tell: nothing lost
            self.pamh.conversation(self.pamh.Message(style, text))


def _remote_ip(pamh: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(pamh.rhost or ""))
    except ValueError:
        return None  # a host name (sshd's UseDNS) or nothing: tfa then counts the service's


def authenticate(pamh: Any, argv: list[str]) -> int:
    service = str(getattr(pamh, "service", None) or "pam")
    rhost = str(pamh.rhost or "")
    try:
        user = str(pamh.get_user(None) or "")
    except pamh.exception:
        log(service, "", rhost, "denied: the program gave no user name")
        return int(pamh.PAM_USER_UNKNOWN)
    talk = Conversation(pamh)

    def decide(result: int, outcome: str) -> int:
        log(service, user, rhost, outcome)
        return result

    try:
        config = Config.parse(argv)
        if is_skipped(user, config):
            return decide(pamh.PAM_SUCCESS, "allowed: skipped (skip_users/skip_groups)")
        key = read_key(config.key_file)
        agent = f"pam_tfa/{VERSION} ({service}; {socket.gethostname()})"
        client = Client(config, key, agent)
    except ConfigError as exc:
        talk.say("Two-factor authentication is not configured properly here.", error=True)
        return decide(pamh.PAM_AUTHINFO_UNAVAIL, f"denied: configuration: {exc}")
    remote = _remote_ip(pamh)
    who: dict[str, Any] = {"username": user} | ({"remote_ip": remote} if remote else {})
    try:
        return _converse(pamh, config, client, talk, who, decide)
    except Unreachable as exc:
        if config.failmode == "safe":
            talk.say("The two-factor service cannot be reached; signing in without a code.")
            return decide(pamh.PAM_SUCCESS, f"allowed: tfa unreachable ({exc}), failmode=safe")
        talk.say("The two-factor service cannot be reached; try again later.", error=True)
        return decide(pamh.PAM_AUTHINFO_UNAVAIL, f"denied: tfa unreachable ({exc})")


def _converse(
    pamh: Any,
    config: Config,
    client: Client,
    talk: Conversation,
    who: dict[str, Any],
    decide: Callable[[int, str], int],
) -> int:
    start = client.post("/api/v1/verify/start", who)
    if start.status == 404 and start.error == "unknown_user":
        if config.unknown_user == "allow":
            return decide(pamh.PAM_SUCCESS, "allowed: no tfa account (unknown_user=allow)")
        talk.say("There is no two-factor account for this user here.", error=True)
        return decide(pamh.PAM_USER_UNKNOWN, "denied: no tfa account")
    if start.status != 200:
        talk.say("Two-factor authentication is not configured properly here.", error=True)
        return decide(pamh.PAM_AUTHINFO_UNAVAIL, f"denied: verify/start said {start.error}")
    following = start.body.get("next")
    message = _printable(str(start.body.get("message", "")))
    if following == "allow":
        talk.say(message)
        return decide(pamh.PAM_SUCCESS, "allowed: no 2FA required")
    if following != "code":
        talk.say(message or "Two-factor authentication is required.", error=True)
        return decide(pamh.PAM_AUTH_ERR, f"denied: {start.body.get('reason', 'refused')}")
    for _ in range(config.tries):
        code = talk.ask(config.prompt)
        if code is None:
            return decide(pamh.PAM_CONV_ERR, "denied: no answer")
        if not code.strip():
            talk.say("No code entered.", error=True)
            continue
        answer = client.post("/api/v1/verify", who | {"code": code.strip()})
        if answer.status == 200:
            method = str(answer.body.get("method", "totp"))
            if method == "recovery_code":
                talk.say(_recovery_code_accepted(answer.body.get("recovery_codes_left")))
            return decide(pamh.PAM_SUCCESS, f"allowed: {method}")
        if answer.error in ("invalid_code", "code_reused"):
            talk.say(answer.message, error=True)
            continue
        if answer.error == "too_many_attempts":
            # The server's message already says how long to wait.
            talk.say(answer.message or "Too many failed attempts.", error=True)
            wait = answer.retry_after or ""
            after = f" (retry after {wait} s)" if wait.isdigit() else ""
            return decide(pamh.PAM_MAXTRIES, f"denied: too_many_attempts{after}")
        talk.say(answer.message or "Signing in is refused.", error=True)
        return decide(pamh.PAM_AUTH_ERR, f"denied: {answer.error or answer.status}")
    return decide(pamh.PAM_MAXTRIES, f"denied: {config.tries} tries used")


def _recovery_code_accepted(left: object) -> str:
    if not isinstance(left, int) or isinstance(left, bool):
        return "Recovery code accepted."
    if left == 0:
        return "Recovery code accepted; no recovery codes left."
    return f"Recovery code accepted; {left} recovery code{'s' if left != 1 else ''} left."


def pam_sm_authenticate(pamh: Any, flags: int, argv: list[str]) -> int:
    return authenticate(pamh, list(argv[1:]))  # argv[0] is this file's path


def pam_sm_setcred(pamh: Any, flags: int, argv: list[str]) -> int:
    return int(pamh.PAM_SUCCESS)


def pam_sm_acct_mgmt(pamh: Any, flags: int, argv: list[str]) -> int:
    return int(pamh.PAM_IGNORE)


def pam_sm_open_session(pamh: Any, flags: int, argv: list[str]) -> int:
    return int(pamh.PAM_IGNORE)


def pam_sm_close_session(pamh: Any, flags: int, argv: list[str]) -> int:
    return int(pamh.PAM_IGNORE)


def pam_sm_chauthtok(pamh: Any, flags: int, argv: list[str]) -> int:
    return int(pamh.PAM_IGNORE)
