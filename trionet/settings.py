"""Server configuration: one frozen :class:`Settings`, read from ``TRIONET_*`` variables.

Every field has a default that runs a single-process server on an embedded SQLite file.
:meth:`Settings.from_env` raises :class:`SettingsError` naming the variable on a bad value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["ENV", "Settings", "SettingsError"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_T = TypeVar("_T")


class SettingsError(ValueError):
    """A configuration variable holds a value trionet cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, kw_only=True)
class Settings:
    """All of trionet's configuration. Build it with :meth:`from_env` or by keyword."""

    database: str = "./trionet.db"
    host: str = "127.0.0.1"
    port: int = 8000
    #: Allowed ``Origin`` values for ``/ws`` and state-changing HTTP calls. Empty: the
    #: server's own origin only. ``("*",)``: any origin.
    allowed_origins: tuple[str, ...] = ()
    #: origins whose pages may call the HTTP API with credentials (CORS); empty: none
    cors_origins: tuple[str, ...] = ()
    cookie_name: str = "trionet_session"
    session_ttl: int = 14 * 24 * 3600
    cookie_secure: bool = False
    #: ``POST /api/auth/register``; None: on, unless JWT auth is configured (JWT subjects are
    #: the backend's user ids, and self-registered accounts would take ids from the same space)
    open_registration: bool | None = None
    send_queue: int = 256
    max_message_bytes: int = 64 * 1024
    max_content_chars: int = 16_000
    rate_limit: float = 50.0
    api_key: str | None = None
    jwt_secret: str | None = None
    #: a PEM public key file JWTs are verified with (RS256, ES256 or EdDSA, by its kind)
    jwt_public_key: str | None = None
    #: the backend's JSON Web Key Set (``https://...``), by each token's ``kid``
    jwks_url: str | None = None
    #: when set, every JWT must carry this ``aud``
    jwt_audience: str | None = None
    #: when set, every JWT must carry this ``iss``
    jwt_issuer: str | None = None
    log_level: str = "INFO"
    ping_interval: float = 20.0
    shutdown_timeout: float = 10.0
    commit_timeout: float = 1.0
    tcp_user_timeout: float = 30.0
    replay_limit: int = 1000
    retry_buffer: int = 10_000
    presence_limit: int = 1000
    worker_id: int = 0
    #: reverse proxies in front whose X-Forwarded-For/-Proto/-Host are trusted (0: none)
    proxy_hops: int = 0
    db_synchronous: str = "NORMAL"
    #: account registrations per minute per client address (0: no limit)
    register_rate: float = 10.0
    #: invites, and group creations, per minute per user (0: no limit)
    invite_rate: float = 30.0
    #: open WebSockets per user (0: no limit)
    max_connections_per_user: int = 20
    #: HTTP requests and WebSockets in progress per client address (0: no limit)
    max_connections_per_address: int = 0
    #: most bytes of stored content replayed on resume (0: no limit beyond replay_limit)
    replay_bytes: int = 4 * 1024 * 1024
    #: most notifications kept per user (the oldest read ones go first; 0: keep all)
    notification_inbox: int = 1000
    #: days messages and notifications are kept (older ones are deleted); 0: for ever
    retention_days: float = 0.0
    #: where webhook events are POSTed (``https://...``); None: no webhooks
    webhook_url: str | None = None
    #: the key webhook requests are signed with (HMAC-SHA256)
    webhook_secret: str | None = None
    #: seconds a client may take to send a request body
    body_timeout: float = 10.0
    #: password hashes (argon2, 64 MiB each) computed at once; more callers wait their turn
    password_hashers: int = 2
    #: the Redis backplane (``redis://host:port/db``); None: one process, no backplane
    redis_url: str | None = None
    #: prefix of every Redis key and channel, so deployments (and test runs) can share a Redis
    redis_prefix: str = "trionet"
    #: seconds a node's lease in Redis lives unrenewed: a dead node's users go offline (and
    #: its worker number is free again) within this and a fifth of it
    redis_lease: float = 15.0

    def __post_init__(self) -> None:
        if self.open_registration and self.jwt_enabled:
            raise SettingsError(
                "TRIONET_OPEN_REGISTRATION",
                "cannot be true while JWT auth is on (TRIONET_JWT_SECRET, TRIONET_JWT_PUBLIC_KEY"
                " or TRIONET_JWKS_URL): JWT subjects are your backend's user ids, and"
                " self-registered accounts would take ids from the same space (an account"
                " takeover); leave it unset or false",
            )

        if bool(self.webhook_url) != bool(self.webhook_secret):
            raise SettingsError(
                "TRIONET_WEBHOOK_SECRET" if self.webhook_url else "TRIONET_WEBHOOK_URL",
                "webhooks need both TRIONET_WEBHOOK_URL and TRIONET_WEBHOOK_SECRET (every"
                " request is signed)")

    @property
    def jwt_enabled(self) -> bool:
        """Whether JWTs are accepted (by any key source)."""
        return bool(self.jwt_secret or self.jwt_public_key or self.jwks_url)

    @property
    def registration_open(self) -> bool:
        """Whether ``POST /api/auth/register`` creates accounts."""
        if self.open_registration is None:
            return not self.jwt_enabled
        return self.open_registration

    @property
    def read_timeout(self) -> float:
        """Seconds without any inbound byte (pongs included) before a peer counts as dead."""
        return self.ping_interval * 2 + 5

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every ``TRIONET_*`` variable; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (variable, parse, _doc) in ENV.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                shown = "" if name in _SECRETS else f" (got {raw!r})"  # never echo a secret
                raise SettingsError(variable, f"{exc}{shown}") from None
        return cls(**values)


def _int(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _float(minimum: float, *, exclusive: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value) or value < minimum or (exclusive and value == minimum):
            raise ValueError(f"must be {'>' if exclusive else '>='} {minimum:g}")
        return value

    return parse


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _text(raw: str) -> str:
    return raw


def _redis_url(raw: str) -> str:
    if not raw.lower().startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be redis://host:port/db (or rediss://, unix://)")
    return raw


_PREFIX = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def _redis_prefix(raw: str) -> str:
    if not _PREFIX.match(raw):
        raise ValueError("must be 1-64 letters, digits and _.:- only")
    return raw


def _database(raw: str) -> str:
    lowered = raw.lower()
    if "://" in raw and not lowered.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ValueError("must be a file path, sqlite:///path or postgresql://user@host:port/db")
    return raw


_ORIGIN = re.compile(r"^https?://[^/?#@\s:]+(:[0-9]{1,5})?$", re.IGNORECASE)
_COOKIE_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")  # an RFC 6265 token


def _origins(raw: str) -> tuple[str, ...]:
    # Browsers send the scheme and host in lower case, so compare in lower case.
    origins = tuple(o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not _ORIGIN.match(origin):
            raise ValueError(f"origin {origin!r} must look like http(s)://host[:port] or *")
    return origins


def _cors_origins(raw: str) -> tuple[str, ...]:
    origins = _origins(raw)
    if "*" in origins:
        raise ValueError("must list origins: `*` cannot go with credentials")
    return origins


def _cookie_name(raw: str) -> str:
    if not _COOKIE_NAME.match(raw):
        raise ValueError("must be letters, digits and !#$%&'*+-.^_`|~ only")
    return raw


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        upper = raw.upper()
        if upper not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return upper

    return parse


def _secret(raw: str) -> str:
    if len(raw) < 16:
        raise ValueError("must be at least 16 characters")
    return raw


def _jwt_secret(raw: str) -> str:
    if len(raw.encode()) < 32:  # RFC 7518 3.2: an HS256 key has at least 256 bits
        raise ValueError("must be at least 32 bytes (HS256 needs a 256-bit key)")
    return raw


def _public_key_file(raw: str) -> str:
    from pathlib import Path

    from .core.jwtalgs import parse_public_key

    try:
        data = Path(raw).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {raw}: {exc.strerror}") from None
    parse_public_key(data, raw)  # raises ValueError naming what is wrong with it
    return raw


def _http_url(raw: str) -> str:
    if not raw.lower().startswith(("https://", "http://")):
        raise ValueError("must be an https:// (or http://) URL")
    return raw


def _claim(raw: str) -> str:
    if len(raw) > 256:
        raise ValueError("must be at most 256 characters")
    return raw


#: field name -> (variable, parser, description). The README's table mirrors this.
ENV: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "database": (
        "TRIONET_DATABASE",
        _database,
        "a SQLite file (a path or `sqlite:///path`) or `postgresql://user@host:port/db`"
        " (needs `trionet[postgres]`)",
    ),
    "host": ("TRIONET_HOST", _text, "address `trionet serve` binds"),
    "port": ("TRIONET_PORT", _int(0, 65535), "port `trionet serve` binds (0: any free port)"),
    "allowed_origins": (
        "TRIONET_ALLOWED_ORIGINS",
        _origins,
        "comma-separated allowed Origins; empty: the server's own origin; `*`: any",
    ),
    "cors_origins": (
        "TRIONET_CORS_ORIGINS",
        _cors_origins,
        "comma-separated origins whose pages may call the HTTP API with credentials (CORS);"
        " empty: no CORS headers",
    ),
    "cookie_name": ("TRIONET_COOKIE_NAME", _cookie_name, "session cookie name"),
    "session_ttl": ("TRIONET_SESSION_TTL", _int(60), "session lifetime, seconds"),
    "cookie_secure": ("TRIONET_COOKIE_SECURE", _bool, "set `Secure` on the session cookie"),
    "open_registration": (
        "TRIONET_OPEN_REGISTRATION",
        _bool,
        "allow `POST /api/auth/register` (false: only the CLI and server API create users);"
        " unset: true, or false when JWT auth is on (`TRIONET_JWT_SECRET`,"
        " `TRIONET_JWT_PUBLIC_KEY` or `TRIONET_JWKS_URL`; true with it is refused)",
    ),
    "send_queue": ("TRIONET_SEND_QUEUE", _int(1), "frames queued per connection (slow consumer)"),
    "max_message_bytes": (
        "TRIONET_MAX_MESSAGE_BYTES",
        _int(256),
        "largest inbound WebSocket message, bytes (larger: close 1009)",
    ),
    "max_content_chars": (
        "TRIONET_MAX_CONTENT_CHARS",
        _int(1),
        "longest message `content`, characters (longer: error `too_large`)",
    ),
    "rate_limit": (
        "TRIONET_RATE_LIMIT",
        _float(0),
        "frames per second per connection, bursts of twice that; 0: off",
    ),
    "api_key": ("TRIONET_API_KEY", _secret, "server API key; unset: server API disabled"),
    "jwt_secret": (
        "TRIONET_JWT_SECRET",
        _jwt_secret,
        "HS256 JWT secret, 32 bytes or more; unset: JWT auth disabled",
    ),
    "jwt_public_key": (
        "TRIONET_JWT_PUBLIC_KEY",
        _public_key_file,
        "PEM file of the public key JWTs are signed for: RSA (RS256), EC P-256 (ES256) or"
        " Ed25519 (EdDSA)",
    ),
    "jwks_url": (
        "TRIONET_JWKS_URL",
        _http_url,
        "the backend's JSON Web Key Set URL: keys by `kid`, refetched for an unknown one (at"
        " most every 30 s)",
    ),
    "jwt_audience": (
        "TRIONET_JWT_AUDIENCE", _claim, "when set, every JWT must carry this `aud`"),
    "jwt_issuer": ("TRIONET_JWT_ISSUER", _claim, "when set, every JWT must carry this `iss`"),
    "log_level": ("TRIONET_LOG_LEVEL", _choice(*_LOG_LEVELS), "log level"),
    "ping_interval": (
        "TRIONET_PING_INTERVAL",
        _float(0, exclusive=True),
        "seconds between WebSocket pings; a peer silent for 2x this + 5 s is dropped",
    ),
    "shutdown_timeout": (
        "TRIONET_SHUTDOWN_TIMEOUT",
        _float(0, exclusive=True),
        "seconds a graceful shutdown may take",
    ),
    "commit_timeout": (
        "TRIONET_COMMIT_TIMEOUT",
        _float(0, exclusive=True),
        "seconds a commit may hold delivery back before messages go out `persisted: false`",
    ),
    "tcp_user_timeout": (
        "TRIONET_TCP_USER_TIMEOUT",
        _float(0),
        "seconds unacknowledged socket writes may stall before the kernel aborts; 0: off",
    ),
    "replay_limit": ("TRIONET_REPLAY_LIMIT", _int(1), "most frames replayed on resume"),
    "retry_buffer": (
        "TRIONET_RETRY_BUFFER",
        _int(1),
        "messages held for retry while the database fails (full: error `unavailable`)",
    ),
    "presence_limit": (
        "TRIONET_PRESENCE_LIMIT",
        _int(0),
        "most users told of one user's presence change",
    ),
    "worker_id": ("TRIONET_WORKER_ID", _int(0, 63), "this process's number in message ids"),
    "proxy_hops": (
        "TRIONET_PROXY_HOPS",
        _int(0, 10),
        "reverse proxies in front whose X-Forwarded-For/-Proto/-Host are trusted (0: none)",
    ),
    "db_synchronous": (
        "TRIONET_DB_SYNCHRONOUS",
        _choice("NORMAL", "FULL"),
        "SQLite `synchronous`: NORMAL survives a process crash, FULL also a power cut",
    ),
    "register_rate": (
        "TRIONET_REGISTER_RATE",
        _float(0),
        "registrations per minute per client address (past it: 429); 0: off",
    ),
    "invite_rate": (
        "TRIONET_INVITE_RATE",
        _float(0),
        "invites, and group creations, per minute per user (past it: 429); 0: off",
    ),
    "max_connections_per_user": (
        "TRIONET_MAX_CONNECTIONS_PER_USER",
        _int(0),
        "open WebSockets per user (past it the handshake gets 429); 0: off",
    ),
    "max_connections_per_address": (
        "TRIONET_MAX_CONNECTIONS_PER_ADDRESS",
        _int(0),
        "HTTP requests and WebSockets in progress per client address (past it: 429); 0: off",
    ),
    "replay_bytes": (
        "TRIONET_REPLAY_BYTES",
        _int(0),
        "most bytes of stored content replayed on resume (past it: `sync_gap`); 0: off",
    ),
    "notification_inbox": (
        "TRIONET_NOTIFICATION_INBOX",
        _int(0),
        "most notifications kept per user, oldest read ones pruned first; 0: keep all",
    ),
    "webhook_url": (
        "TRIONET_WEBHOOK_URL",
        _http_url,
        "where webhook events (offline messages and notifications, presence) are POSTed;"
        " unset: no webhooks",
    ),
    "webhook_secret": (
        "TRIONET_WEBHOOK_SECRET",
        _secret,
        "HMAC-SHA256 key webhook requests are signed with, 16 characters or more",
    ),
    "retention_days": (
        "TRIONET_RETENTION_DAYS",
        _float(0),
        "days messages and notifications are kept (older ones are deleted, in small batches);"
        " 0: keep them for ever",
    ),
    "body_timeout": (
        "TRIONET_BODY_TIMEOUT",
        _float(0, exclusive=True),
        "seconds a client may take to send a request body (slower: 408)",
    ),
    "password_hashers": (
        "TRIONET_PASSWORD_HASHERS",
        _int(1, 64),
        "password hashes computed at once (64 MiB each); more callers wait their turn",
    ),
    "redis_url": (
        "TRIONET_REDIS_URL",
        _redis_url,
        "the Redis backplane, redis://host:port/db: several processes act as one; unset: one",
    ),
    "redis_prefix": (
        "TRIONET_REDIS_PREFIX",
        _redis_prefix,
        "prefix of every Redis key and channel (deployments sharing one Redis differ here)",
    ),
    "redis_lease": (
        "TRIONET_REDIS_LEASE",
        _float(2),
        "seconds a node's Redis lease lives unrenewed; a dead node's users go offline within"
        " 1.2x this",
    ),
}

_SECRETS = frozenset({"api_key", "jwt_secret", "webhook_secret"})

assert set(ENV) == {f.name for f in dataclasses.fields(Settings)}, "every setting has a variable"
