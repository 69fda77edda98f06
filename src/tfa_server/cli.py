"""`tfa-server`: initialise, serve, and administer accounts and policy from the console."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from ipaddress import ip_address
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import msgspec

from tfa_protocol.types import AdminUser, Policy
from tfa_server import __version__, logs
from tfa_server.admin import Actor, Admin
from tfa_server.app import (
    Application,
    DatabaseMissing,
    MetricsListenerError,
    initialise,
    open_core,
    require_database,
)
from tfa_server.backup import BackupError, backup_sqlite
from tfa_server.config import (
    PasswordHashing,
    Retention,
    SessionRules,
    Settings,
    ThrottleRules,
    default_key_path,
)
from tfa_server.crypto import KeyFileError
from tfa_server.demo_accounts import DEMO_ACCOUNTS, seed_demo_accounts
from tfa_server.errors import ApiError
from tfa_server.http.forwarded import HEADERS, Network, TrustedProxies, parse_networks
from tfa_server.http.server import HttpLimits
from tfa_server.keys import rotate
from tfa_server.pam import PAM_MODULE
from tfa_server.passwords import password_problem
from tfa_server.storage import schema, transfer
from tfa_server.storage.database import DatabaseUnreachable, is_url, open_database, redacted
from tfa_server.storage.schema import SchemaTooNew
from tfa_server.tls import CertificateError, Certificates

T = TypeVar("T")
PROG = "tfa-server"
DEFAULT_PORT = 8421


class CliError(Exception):
    """A problem the person at the console can fix; shown as one line, exit 1."""


class UsageError(CliError):
    """Flags that cannot go together or are missing; one line, exit 2, as argparse's own."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One plain line instead of argparse's usage block.
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"TFA_{name}", default)


def _default_db() -> str:
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return str(data / "tfa" / "tfa.db")


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise CliError(f"TFA_{name} must be a whole number, not {raw!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 3600 seconds")
    return value


MAX_RETENTION_DAYS = 36_500


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days") from None
    if not 0 <= value <= MAX_RETENTION_DAYS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not between 0 (keep everything) and {MAX_RETENTION_DAYS} days"
        )
    return value


def _networks(text: str) -> tuple[Network, ...]:
    try:
        return parse_networks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _proxy_header(text: str) -> str:
    if text.lower() not in HEADERS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(HEADERS)}")
    return text.lower()


def _number_options(
    parser: argparse.ArgumentParser, numbers: Sequence[tuple[str, str, float, str]]
) -> None:
    for flag, env, default, text in numbers:
        parser.add_argument(
            flag,
            type=_positive,
            default=_env_int(env, int(default)),
            metavar="N",
            help=f"{text} (TFA_{env}; default %(default)s)",
        )


def _storage_options(parser: argparse.ArgumentParser) -> None:
    """Where the data lives, and the hashing settings: every command that opens the database
    takes them, so a password hashed on the console costs what `serve` expects."""
    parser.add_argument(
        "--db",
        default=_env("DB", _default_db()),
        metavar="PATH_OR_URL",
        help="a SQLite file, or a postgresql://user@host/name URL shared by several instances"
        " (TFA_DB; default %(default)s)",
    )
    parser.add_argument(
        "--key-file",
        default=_env("KEY_FILE"),
        help="server key file (TFA_KEY_FILE; default: the database path + '.key'; with a"
        " PostgreSQL URL it must be given, the same file on every instance)",
    )
    p_rules = PasswordHashing()
    _number_options(
        parser,
        (
            ("--argon2-memory-kib", "ARGON2_MEMORY_KIB", p_rules.memory_kib, "Argon2id memory"),
            ("--argon2-time-cost", "ARGON2_TIME_COST", p_rules.time_cost, "Argon2id passes"),
            ("--argon2-parallelism", "ARGON2_PARALLELISM", p_rules.parallelism, "Argon2id lanes"),
        ),
    )


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="The tfa account server and its administration.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    init = commands.add_parser("init", help="create the database and the key file")
    _storage_options(init)

    migrate = commands.add_parser(
        "migrate", help="bring the database's schema to this version (serve does it too)"
    )
    _storage_options(migrate)

    copy = commands.add_parser(
        "copy",
        help="copy a whole installation into a new, empty database (SQLite <-> PostgreSQL)",
        description="Copy accounts, 2FA secrets, recovery codes, sessions, services, policy,"
        " history and audit log from one database into another that holds nothing yet. Stop"
        " the servers first. The secrets stay sealed: keep using the same key file.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="PATH_OR_URL")
    copy.add_argument("--to", dest="target", required=True, metavar="PATH_OR_URL")

    backup = commands.add_parser(
        "backup", help="copy a SQLite database while serve runs (the key file separately)"
    )
    _storage_options(backup)
    backup.add_argument("destination", metavar="DEST", help="the new file (must not exist)")

    rotate = commands.add_parser(
        "rotate-key",
        help="replace the server key, re-encrypting every 2FA secret (stop every server first)",
        description="Make a new server key and re-key the database under it in one"
        " transaction: every TOTP secret is encrypted again, and recovery codes keep working."
        " The old key file is kept as KEY.retired-N, needed only to restore a backup taken"
        " before now. Stop every server using the database first, and give the new key file"
        " to each before starting it. Interrupted, run it again.",
    )
    _storage_options(rotate)

    serve = commands.add_parser("serve", help="run the HTTP server")
    _storage_options(serve)
    serve.add_argument(
        "--host", default=_env("HOST", "127.0.0.1"), help="TFA_HOST (default %(default)s)"
    )
    serve.add_argument(
        "--port",
        type=int,
        default=_env_int("PORT", DEFAULT_PORT),
        help="TFA_PORT (default %(default)s)",
    )
    serve.add_argument(
        "--issuer",
        default=_env("ISSUER", "tfa"),
        help="name shown in authenticator apps (TFA_ISSUER)",
    )
    serve.add_argument(
        "--public-url",
        default=_env("PUBLIC_URL", ""),
        help="the URL people reach this server at, for the messages that tell them how to set"
        " up 2FA (TFA_PUBLIC_URL; default: from --host and --port)",
    )
    serve.add_argument(
        "--tls-cert", default=_env("TLS_CERT"), help="PEM certificate (TFA_TLS_CERT)"
    )
    serve.add_argument("--tls-key", default=_env("TLS_KEY"), help="PEM private key (TFA_TLS_KEY)")
    serve.add_argument(
        "--insecure-http",
        action="store_true",
        default=_env("INSECURE_HTTP", "") in ("1", "true", "yes"),
        help="allow plain HTTP on a non-loopback address (TFA_INSECURE_HTTP=1)",
    )
    s_rules, t_rules = SessionRules(), ThrottleRules()
    numbers = (
        ("--session-lifetime", "SESSION_LIFETIME", s_rules.absolute_lifetime, "seconds"),
        ("--idle-timeout", "IDLE_TIMEOUT", s_rules.idle_timeout, "seconds"),
        ("--challenge-lifetime", "CHALLENGE_LIFETIME", s_rules.challenge_lifetime, "seconds"),
        ("--lock-after", "LOCK_AFTER", t_rules.account_free_failures, "failures in a row"),
        ("--lock-seconds", "LOCK_SECONDS", t_rules.account_base_lock, "first lock, doubling"),
        ("--lock-max-seconds", "LOCK_MAX_SECONDS", t_rules.account_max_lock, "longest lock"),
        ("--challenge-attempts", "CHALLENGE_ATTEMPTS", t_rules.challenge_attempts, "per password"),
        ("--ip-max-failures", "IP_MAX_FAILURES", t_rules.ip_max_failures, "per address, 10 min"),
        ("--max-sessions", "MAX_SESSIONS", s_rules.max_per_user, "active sessions per user"),
    )
    _number_options(serve, numbers)
    _number_options(
        serve,
        (
            (
                "--max-connections-per-address",
                "MAX_CONNECTIONS_PER_ADDRESS",
                HttpLimits().max_connections_per_address,
                "open connections per client address",
            ),
        ),
    )
    serve.add_argument(
        "--trusted-proxy",
        type=_networks,
        default=_env("TRUSTED_PROXY", ""),
        metavar="ADDR[,ADDR...]",
        help="reverse proxies (addresses or networks) whose forwarding header names the client"
        " (TFA_TRUSTED_PROXY; default: none)",
    )
    serve.add_argument(
        "--proxy-header",
        type=_proxy_header,
        default=_env("PROXY_HEADER", HEADERS[0]),
        metavar="HEADER",
        help="the header the trusted proxies write: x-forwarded-for or forwarded"
        " (TFA_PROXY_HEADER; default %(default)s)",
    )
    serve.add_argument(
        "--metrics-port",
        type=_port,
        default=_env("METRICS_PORT"),
        metavar="PORT",
        help="serve Prometheus metrics at /metrics on this port, a listener of its own"
        " (TFA_METRICS_PORT; default: off)",
    )
    serve.add_argument(
        "--metrics-host",
        default=_env("METRICS_HOST", "127.0.0.1"),
        help="the metrics listener's address (TFA_METRICS_HOST; default %(default)s)",
    )
    kept = Retention()
    serve.add_argument(
        "--history-retention-days",
        type=_days,
        default=_env("HISTORY_RETENTION_DAYS", str(kept.history_days)),
        metavar="DAYS",
        help="delete sign-in history older than this, in the background; 0 keeps it all"
        " (TFA_HISTORY_RETENTION_DAYS; default %(default)s)",
    )
    serve.add_argument(
        "--audit-retention-days",
        type=_days,
        default=_env("AUDIT_RETENTION_DAYS", str(kept.audit_days)),
        metavar="DAYS",
        help="delete audit log entries older than this; 0 keeps them all"
        " (TFA_AUDIT_RETENTION_DAYS; default %(default)s)",
    )
    serve.add_argument(
        "--shutdown-delay",
        type=_seconds,
        default=_env("SHUTDOWN_DELAY", "0"),
        metavar="SECONDS",
        help="on SIGTERM, answer /readyz with 503 for this long before closing, so a load"
        " balancer stops sending requests first (TFA_SHUTDOWN_DELAY; default 0)",
    )
    serve.add_argument(
        "--log-format",
        default=_env("LOG_FORMAT", "text"),
        choices=["text", "json"],
        help="text lines, or one JSON object per line for a log collector (TFA_LOG_FORMAT;"
        " default %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        default=_env("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="TFA_LOG_LEVEL",
    )

    demo = commands.add_parser("demo", help="serve a throw-away database with the demo accounts")
    demo.add_argument(
        "--port",
        type=int,
        default=_env_int("PORT", DEFAULT_PORT),
        help="TFA_PORT (default %(default)s; 0 picks a free one)",
    )

    user = commands.add_parser("user", help="manage accounts")
    user_commands = user.add_subparsers(dest="user_command", required=True, parser_class=Parser)
    add = user_commands.add_parser("add", help="create an account")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="make it an administrator")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    _storage_options(add)
    listing = user_commands.add_parser("list", help="list accounts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _storage_options(listing)
    passwd = user_commands.add_parser("passwd", help="set a user's password and end their sessions")
    passwd.add_argument("name")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    passwd.add_argument(
        "--temporary",
        action="store_true",
        help="make them choose a new one at their next sign-in, before anything else",
    )
    _storage_options(passwd)
    for name, text in (
        ("reset-2fa", "remove a user's 2FA and end their sessions"),
        ("unlock", "clear a user's throttling"),
        ("disable", "stop a user signing in, and end their sessions at once"),
        ("enable", "let a disabled user sign in again"),
    ):
        sub = user_commands.add_parser(name, help=text)
        sub.add_argument("name")
        _storage_options(sub)
    delete = user_commands.add_parser(
        "delete",
        help="delete an account (its sign-in history stays)",
    )
    delete.add_argument("name")
    delete.add_argument(
        "--yes",
        action="store_true",
        help="do not ask to type the name (needed when standard input is not a terminal)",
    )
    _storage_options(delete)
    rights = user_commands.add_parser("admin", help="grant or remove administrator rights")
    rights.add_argument("name")
    rights.add_argument(
        "rights", choices=["on", "off"], help="on grants the rights, off removes them"
    )
    _storage_options(rights)

    policy = commands.add_parser("policy", help="show or change the 2FA policy")
    policy_commands = policy.add_subparsers(
        dest="policy_command", required=True, parser_class=Parser
    )
    show = policy_commands.add_parser("show", help="show the policy")
    show.add_argument("--json", action="store_true", help="print JSON")
    _storage_options(show)
    change = policy_commands.add_parser(
        "set", help="change the policy; a setting left out keeps its value"
    )
    change.add_argument(
        "--force-2fa", choices=["on", "off"], default=None, help="(default: unchanged)"
    )
    change.add_argument(
        "--grace-days",
        type=int,
        default=None,
        help="days users have to set up 2FA (default: unchanged)",
    )
    _storage_options(change)

    service = commands.add_parser(
        "service", help="manage relying services (sshd, sudo, ...) and their keys"
    )
    service_commands = service.add_subparsers(
        dest="service_command", required=True, parser_class=Parser
    )
    register = service_commands.add_parser(
        "add", help="register a service; prints its key (shown only now) on standard output"
    )
    register.add_argument("name")
    register.add_argument("--description", default="", help="what it guards (free text)")
    _storage_options(register)
    services = service_commands.add_parser("list", help="list services")
    services.add_argument("--json", action="store_true", help="print JSON")
    _storage_options(services)
    revoke = service_commands.add_parser("revoke", help="revoke a service's key, at once")
    revoke.add_argument("name")
    _storage_options(revoke)

    pam = commands.add_parser("pam", help="the PAM module for sshd, sudo, su and login")
    pam_commands = pam.add_subparsers(dest="pam_command", required=True, parser_class=Parser)
    pam_commands.add_parser("path", help="print the module file's absolute path")
    example = pam_commands.add_parser(
        "example", help="print a PAM line and the sshd_config lines to start from"
    )
    example.add_argument("--url", required=True, help="this server's URL, as hosts reach it")
    example.add_argument(
        "--key-file",
        default="/etc/tfa/service.key",
        help="where the service key will be (default %(default)s)",
    )
    return parser


def _database(text: str) -> Path | str:
    """A postgresql:// URL as it is, or a SQLite file's path; any other URL is a mistake
    (a path named 'mysql:' would be created silently otherwise)."""
    if is_url(text):
        return text
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise CliError(
            f"unsupported database URL scheme {scheme!r}: give a SQLite file's path or a"
            " postgresql:// URL"
        )
    return Path(text).expanduser()


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    db = _database(args.db)
    hashing = PasswordHashing(
        args.argon2_memory_kib, args.argon2_time_cost, args.argon2_parallelism
    )
    if isinstance(db, str):
        if not args.key_file:
            raise CliError(
                "with a PostgreSQL database, give the key file (--key-file or TFA_KEY_FILE):"
                " every instance must read the same one"
            )
        key = Path(args.key_file).expanduser()
        return Settings(db_path=None, db_url=db, key_path=key, passwords=hashing, **overrides)
    key = Path(args.key_file).expanduser() if args.key_file else default_key_path(db)
    return Settings(db_path=db, key_path=key, passwords=hashing, **overrides)


def _init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        created = initialise(settings)
    except OSError as exc:
        raise CliError(
            f"cannot create {exc.filename or settings.database_name}: {exc.strerror}"
        ) from None
    state = "initialised" if created else "already initialised"
    print(f"{state}: database {settings.database_name}, key {settings.key_path}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    require_database(settings.db_path)
    database = open_database(settings.database)
    try:
        database.open_sync(migrate=False)
        before = database.run_sync(schema.version)
        after = database.run_sync(schema.migrate)
    finally:
        database.close()
    name = settings.database_name
    if before == after:
        print(f"database {name} is at schema version {after}; nothing to do")
    else:
        print(f"database {name}: schema version {before} -> {after}")
    return 0


def _backup(args: argparse.Namespace) -> int:
    if isinstance(_database(args.db), str):
        raise CliError(
            "backup copies a SQLite database; for PostgreSQL use pg_dump (README, Operations)"
        )
    settings = _settings(args)
    assert settings.db_path is not None
    require_database(settings.db_path)
    try:
        done = backup_sqlite(settings.db_path, Path(args.destination).expanduser())
    except BackupError as exc:
        raise CliError(str(exc)) from None
    except (OSError, sqlite3.Error) as exc:
        raise CliError(f"backup failed: {exc}") from None
    print(
        f"backed up {settings.db_path} to {done.path}: {done.size:,} bytes, {done.accounts}"
        f" account{'' if done.accounts == 1 else 's'}, mode 0600"
    )
    print(
        f"the key file {settings.key_path} is not in the copy: back it up separately (the copy"
        " is useless without it, and the two together open every account's 2FA)"
    )
    return 0


def _rotate_key(args: argparse.Namespace) -> int:
    settings = _settings(args)
    require_database(settings.db_path)
    done = rotate(settings, time.time(), f"cli:{getpass.getuser()}")
    if done.counts is None:
        print(
            f"finished an interrupted rotation: {settings.key_path} is the key of generation"
            f" {done.generation}"
        )
    else:
        counts = done.counts
        print(
            f"rotated the server key of {settings.database_name} to generation"
            f" {done.generation}: {counts['totp_secrets']} 2FA secret(s) and"
            f" {counts['pending_setups']} unfinished setup(s) re-encrypted,"
            f" {counts['recovery_codes']} recovery code(s) re-keyed"
        )
    print(
        f"the new key is {settings.key_path}; the old one is now {done.retired_file}, needed"
        " only to restore a backup taken before this rotation: destroy it (shred -u) when no"
        " such backup is kept. Back up the new key file; give it to every server before"
        " starting it."
    )
    return 0


def _copy(args: argparse.Namespace) -> int:
    source, target = _database(args.source), _database(args.target)
    if source == target:
        raise CliError("--from and --to name the same database")
    if isinstance(source, Path):
        require_database(source)
    if isinstance(target, Path):
        if target.exists() and target.stat().st_size > 0:
            raise CliError(f"{target} exists; copy only into a new database")
        target.parent.mkdir(parents=True, exist_ok=True)
    databases = []
    try:
        for where in (source, target):
            database = open_database(where)
            databases.append(database)
            database.open_sync(migrate=where is target)  # the source is only read
        version = databases[0].run_sync(schema.version)
        if version != schema.LATEST:
            raise CliError(
                f"{_shown(source)} is at schema version {version}, this is version"
                f" {schema.LATEST}: run '{PROG} migrate --db ...' on it first"
            )
        if isinstance(target, Path):
            os.chmod(target, 0o600)
        before, after = transfer.copy(databases[0], databases[1], _shown(target))
    except transfer.CopyRefused as exc:
        raise CliError(str(exc)) from None
    finally:
        for database in databases:
            database.close()
    differences = before.differences(after)
    if differences:
        raise CliError("the copy does not match: " + "; ".join(differences))
    shown = ", ".join(f"{after.rows[table]} {table}" for table in transfer.TABLES)
    print(f"copied {_shown(source)} to {_shown(target)}: {shown}")
    print(
        f"{PROG}: the 2FA secrets are still sealed with the source's key file: give the same"
        " --key-file to every server that uses the copy",
        file=sys.stderr,
    )
    return 0


def _shown(database: Path | str) -> str:
    return redacted(database) if isinstance(database, str) else str(database)


def _run_admin(args: argparse.Namespace, work: Callable[[Admin, Actor], Awaitable[T]]) -> T:
    core = open_core(_settings(args))
    actor = Actor(f"cli:{getpass.getuser()}", None)

    async def _go() -> T:
        return await work(Admin(core), actor)

    try:
        return asyncio.run(_go())
    finally:
        core.passwords.close()
        core.db.close()


PASSWORD_TRIES = 3


def _read_new_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input")
        return password
    if not sys.stdin.isatty():
        raise CliError("standard input is not a terminal: use --password-stdin")
    # A typo on a prompt that echoes nothing is easy: ask again, as passwd(1) does.
    for _ in range(PASSWORD_TRIES):
        password = getpass.getpass("Password: ")
        problem = password_problem(password)
        if problem is None and getpass.getpass("Repeat password: ") == password:
            return password
        print(problem or "The passwords do not match. Try again.", file=sys.stderr, flush=True)
    raise CliError(f"no password set after {PASSWORD_TRIES} tries")


def _login_text(info: dict[str, Any] | None) -> str:
    return f"{info['at']} from {info['ip']}" if info else "never"


def _state_text(item: dict[str, Any]) -> str:
    """Whether the account can sign in as usual; a disabled one cannot at all."""
    if item["disabled_at"]:
        return "disabled"
    return "new password" if item["password_change_required"] else "-"


def _existing_user(args: argparse.Namespace) -> AdminUser:
    """The named account as it is now: a command that asks something first (a password, a
    confirmation) refuses an unknown name before asking."""
    return _run_admin(args, lambda admin, actor: admin.get_user(args.name))


def _confirm_delete(name: str) -> None:
    if not sys.stdin.isatty():
        raise CliError(f"standard input is not a terminal: pass --yes to delete {name}")
    print(
        f"Delete {name}? Their 2FA, recovery codes and sessions go; their sign-in history"
        " stays for administrators. Type the name to confirm: ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    # The exact name, as GitHub asks before deleting a repository: "y" is typed by habit.
    if sys.stdin.readline().rstrip("\r\n") != name:
        raise CliError("not deleted")


def _user_lifecycle(args: argparse.Namespace) -> None:
    """passwd, disable, enable, delete, admin: the rules (the last administrator, ...) are
    Admin's, the same as over HTTP, audited as `cli:<login>`."""
    command = args.user_command
    if command == "passwd":
        name = _existing_user(args).username
        password = _read_new_password(args.password_stdin)
        _run_admin(
            args,
            lambda admin, actor: admin.reset_password(actor, name, password, args.temporary),
        )
        if args.temporary:
            print(
                f"temporary password set for {name}; their sessions are ended and they must"
                " choose a new one at their next sign-in"
            )
        else:
            print(f"password set for {name}; their sessions are ended")
    elif command == "disable":
        user = _run_admin(args, lambda admin, actor: admin.disable(actor, args.name))
        print(f"{user.username} disabled; their sessions are ended")
    elif command == "enable":
        user = _run_admin(args, lambda admin, actor: admin.enable(actor, args.name))
        print(f"{user.username} enabled")
    elif command == "delete":
        name = _existing_user(args).username
        if not args.yes:
            _run_admin(args, lambda admin, actor: admin.may_delete(actor, name))
            _confirm_delete(name)
        _run_admin(args, lambda admin, actor: admin.delete(actor, name))
        print(f"{name} deleted; their sign-in history stays for administrators")
    elif command == "admin":
        grant = args.rights == "on"
        before = _existing_user(args)
        user = _run_admin(args, lambda admin, actor: admin.set_admin(actor, before.username, grant))
        if before.is_admin == grant:
            being = "already is" if grant else "is not"
            print(f"{user.username} {being} an administrator; nothing changed")
        else:
            now = "is now" if grant else "is no longer"
            print(f"{user.username} {now} an administrator")


def _user(args: argparse.Namespace) -> int:
    command = args.user_command
    if command == "add":
        require_database(_settings(args).db_path)
        password = _read_new_password(args.password_stdin)
        created = _run_admin(
            args, lambda admin, actor: admin.create_user(actor, args.name, password, args.admin)
        )
        role = "administrator" if created.is_admin else "user"
        print(f"created {role} {created.username}")
    elif command == "list":
        # As the API writes them: times in RFC 3339, the same for people and for scripts.
        listed = msgspec.to_builtins(_run_admin(args, lambda admin, actor: admin.list_users()))
        if args.json:
            print(json.dumps(listed["items"], indent=2))
            return 0
        print(
            f"{'USERNAME':<24} {'ADMIN':<5} {'2FA':<3} {'STATE':<12} {'LOCKED UNTIL':<20}"
            " LAST SIGN-IN"
        )
        for item in listed["items"]:
            print(
                f"{item['username']:<24} {'yes' if item['is_admin'] else 'no':<5}"
                f" {'on' if item['totp_enabled'] else 'off':<3} {_state_text(item):<12}"
                f" {item['locked_until'] or '-':<20} {_login_text(item['last_login'])}"
            )
    elif command == "reset-2fa":
        _run_admin(args, lambda admin, actor: admin.reset_2fa(actor, args.name))
        print(f"2FA removed for {args.name.lower()}; their sessions are ended")
    elif command == "unlock":
        _run_admin(args, lambda admin, actor: admin.unlock(actor, args.name))
        print(f"{args.name.lower()} unlocked")
    else:
        _user_lifecycle(args)
    return 0


def _policy(args: argparse.Namespace) -> int:
    if args.policy_command == "set":
        if args.force_2fa is None and args.grace_days is None:
            raise UsageError(
                "policy set needs --force-2fa, --grace-days or both"
                f" (see '{PROG} policy set --help')"
            )

        async def _set(admin: Admin, actor: Actor) -> Policy:
            current = await admin.get_policy()
            force = current.force_2fa if args.force_2fa is None else args.force_2fa == "on"
            grace = current.grace_period_days if args.grace_days is None else args.grace_days
            return await admin.set_policy(actor, force, grace)

        current = msgspec.to_builtins(_run_admin(args, _set))
    else:
        current = msgspec.to_builtins(_run_admin(args, lambda admin, actor: admin.get_policy()))
        if args.json:
            print(json.dumps(current, indent=2))
            return 0
    print(f"force 2FA: {'on' if current['force_2fa'] else 'off'}")
    print(f"grace period: {current['grace_period_days']} days")
    if current["forced_since"]:
        print(f"forced since: {current['forced_since']}")
    return 0


def _service(args: argparse.Namespace) -> int:
    command = args.service_command
    if command == "add":
        require_database(_settings(args).db_path)
        added = _run_admin(
            args, lambda admin, actor: admin.add_service(actor, args.name, args.description)
        )
        # The key alone on standard output, so `> key-file` captures exactly it.
        print(added.key)
        print(
            f"{PROG}: service {added.name} registered. Its key is shown only now: store it"
            " where the service reads it (a file owned by root, mode 0600). See"
            f" '{PROG} pam example --help' for sshd and sudo.",
            file=sys.stderr,
        )
    elif command == "list":
        listed = msgspec.to_builtins(_run_admin(args, lambda admin, actor: admin.list_services()))
        if args.json:
            print(json.dumps(listed["items"], indent=2))
            return 0
        print(f"{'NAME':<24} {'CREATED':<20} {'LAST USED':<20} DESCRIPTION")
        for item in listed["items"]:
            print(
                f"{item['name']:<24} {item['created_at']:<20}"
                f" {item['last_used_at'] or 'never':<20} {item['description']}"
            )
    else:
        _run_admin(args, lambda admin, actor: admin.revoke_service(actor, args.name))
        print(f"service {args.name.lower()} revoked; its key no longer works")
    return 0


def _pam(args: argparse.Namespace) -> int:
    if args.pam_command == "path":
        print(PAM_MODULE)
        return 0
    module = f"pam_python.so {PAM_MODULE} url={args.url} key_file={args.key_file}"
    print(
        f"""# 1. Register the service on the tfa server and store its key on this host, readable
#    by root only (from the start: umask 077), e.g. when both are one machine:
#      (umask 077; mkdir -p {Path(args.key_file).parent}; \\
#       {PROG} service add sshd-$(hostname) > {args.key_file})
# 2. Install the PAM module's host: apt-get install libpam-python
# 3. /etc/pam.d/sshd: ask for the code after the public key (put this line where
#    '@include common-auth' was, to ask for a code instead of the Unix password)
auth required {module}
# 4. /etc/ssh/sshd_config, then reload sshd:
UsePAM yes
KbdInteractiveAuthentication yes
AuthenticationMethods publickey,keyboard-interactive
# For sudo, add the same auth line to /etc/pam.d/sudo, after '@include common-auth', with
# tries=1 (sudo asks three times itself) and the key of a service of its own.
# An argument with spaces goes in brackets: [prompt=tfa code for sudo: ]"""
    )
    return 0


def _public_url(scheme: str, host: str, port: int) -> str:
    """A guess for --public-url: this host's name when it listens on every address."""
    if port == 0:
        return ""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 comparing, not binding
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _tls(args: argparse.Namespace) -> Certificates | None:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise CliError("--tls-cert and --tls-key go together")
    if args.tls_cert:
        try:
            return Certificates(Path(args.tls_cert), Path(args.tls_key))
        except CertificateError as exc:
            raise CliError(str(exc)) from None
    if not _is_loopback(args.host) and not args.insecure_http:
        raise CliError(
            f"refusing plain HTTP on {args.host}: give --tls-cert and --tls-key,"
            " or --insecure-http if a TLS proxy sits in front"
        )
    return None


def _configure_logging(level: str, log_format: logs.LogFormat = "text") -> None:
    logs.configure(level, sys.stderr, log_format)


async def _serve(
    app: Application,
    host: str,
    port: int,
    banner: Callable[[int], None],
    certificates: Certificates | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, certificates)
    await app.start(host, port)
    banner(app.port)
    await stop.wait()
    logging.getLogger("tfa_server").info("shutting down")
    await app.stop()


def _reload(certificates: Certificates | None) -> None:
    """SIGHUP: the TLS certificate and key again from their files (renewed); a broken pair is
    refused and the one in use stays."""
    log = logging.getLogger("tfa_server")
    if certificates is None:
        log.info("SIGHUP: serving without TLS, no certificate to reload")
        return
    try:
        certificates.reload()
    except CertificateError as exc:
        log.error("SIGHUP: kept the certificate in use; the new one is refused: %s", exc)
        return
    log.info("SIGHUP: reloaded the TLS certificate and key from %s", certificates.cert)


def _serve_command(args: argparse.Namespace) -> int:
    certificates = _tls(args)
    ssl_context = certificates.context if certificates else None
    scheme = "https" if ssl_context else "http"
    shown = f"[{args.host}]" if ":" in args.host else args.host
    settings = _settings(
        args,
        issuer=args.issuer,
        public_url=args.public_url or _public_url(scheme, args.host, args.port),
        sessions=replace(
            SessionRules(),
            absolute_lifetime=float(args.session_lifetime),
            idle_timeout=float(args.idle_timeout),
            challenge_lifetime=float(args.challenge_lifetime),
            max_per_user=args.max_sessions,
        ),
        throttle=replace(
            ThrottleRules(),
            account_free_failures=args.lock_after,
            account_base_lock=float(args.lock_seconds),
            account_max_lock=float(args.lock_max_seconds),
            challenge_attempts=args.challenge_attempts,
            ip_max_failures=args.ip_max_failures,
        ),
        retention=Retention(args.history_retention_days, args.audit_retention_days),
    )
    _configure_logging(args.log_level, args.log_format)
    app = Application(
        open_core(settings),
        ssl_context=ssl_context,
        limits=HttpLimits(max_connections_per_address=args.max_connections_per_address),
        proxies=TrustedProxies(args.trusted_proxy, args.proxy_header),
        shutdown_delay=args.shutdown_delay,
        metrics_at=None if args.metrics_port is None else (args.metrics_host, args.metrics_port),
    )

    def banner(port: int) -> None:
        logging.getLogger("tfa_server").info("serving on %s://%s:%d", scheme, shown, port)
        if app.metrics_http is not None:
            host = f"[{args.metrics_host}]" if ":" in args.metrics_host else args.metrics_host
            logging.getLogger("tfa_server").info(
                "metrics on http://%s:%d/metrics", host, app.metrics_port
            )

    try:
        asyncio.run(_serve(app, args.host, args.port, banner, certificates))
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def _demo_banner(url: str, secrets: dict[str, str]) -> str:
    """The demo's accounts and how to start with curl. The passwords and the TOTP keys are
    printed on purpose: they open a throw-away database, removed on exit."""
    width = max(len(f"{account.username} / {account.password}") for account in DEMO_ACCOUNTS)
    lines = [f"tfa demo server on {url} (throw-away database, removed on exit)", "  accounts:"]
    for account in DEMO_ACCOUNTS:
        state = "2FA on" if account.with_2fa else "no 2FA"
        if account.username in secrets:
            state += f", codes: oathtool --totp -b {secrets[account.username]}"
        role = "administrator, " if account.is_admin else ""
        pair = f"{account.username} / {account.password}"
        lines.append(f"    {pair:<{width}}  {role}{state}")
    admin = next(account for account in DEMO_ACCOUNTS if account.is_admin)
    login = f'{{"username":"{admin.username}","password":"{admin.password}"}}'
    lines += [
        f"  try: curl -s {url}/healthz",
        f"       curl -s -H 'Content-Type: application/json' -d '{login}' {url}/api/v1/login",
        f"  API description: {url}/api/v1/openapi.json",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)


def _demo(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="tfa-demo-") as folder:
        db = Path(folder) / "demo.db"
        settings = Settings(db_path=db, key_path=default_key_path(db))
        initialise(settings)
        core = open_core(settings)
        app = Application(core)

        async def _run() -> None:
            secrets = await seed_demo_accounts(core)

            def banner(port: int) -> None:
                print(_demo_banner(f"http://127.0.0.1:{port}", secrets), flush=True)

            await _serve(app, "127.0.0.1", args.port, banner)

        _configure_logging("WARNING")
        try:
            asyncio.run(_run())
        except OSError as exc:
            raise CliError(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handlers: dict[str, Callable[[argparse.Namespace], int]] = {
            "init": _init,
            "migrate": _migrate,
            "copy": _copy,
            "backup": _backup,
            "rotate-key": _rotate_key,
            "serve": _serve_command,
            "demo": _demo,
            "user": _user,
            "policy": _policy,
            "service": _service,
            "pam": _pam,
        }
        return handlers[args.command](args)
    except (
        CliError,
        DatabaseMissing,
        DatabaseUnreachable,
        KeyFileError,
        MetricsListenerError,
        SchemaTooNew,
    ) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except ApiError as exc:
        print(f"{PROG}: error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
