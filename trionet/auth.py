"""Credentials: password hashing, session tokens, JWTs and the default session resolvers."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jwt
import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .interfaces import Handshake, Identity, SessionResolver
from .jwtkeys import KeySource, SecretKey
from .store import AccountStore

__all__ = [
    "HASH_QUEUE_LIMIT",
    "LocalLoginGuard",
    "LoginGuard",
    "LOGIN_FAILURES_PER_ADDRESS",
    "LOGIN_FAILURES_PER_USER",
    "LOGIN_FAILURES_PER_USER_AND_ADDRESS",
    "LOGIN_WINDOW",
    "ChainResolver",
    "CookieSessionResolver",
    "HashersBusy",
    "JwtResolver",
    "LoginThrottle",
    "bearer",
    "hash_password",
    "make_jwt",
    "same_secret",
    "hash_token",
    "new_token",
    "verify_password",
]

log = logging.getLogger("trionet.auth")

#: a user id as text: ASCII digits, no sign, no leading zero, at most 16 of them
_USER_ID = re.compile(r"\A[1-9][0-9]{0,15}\Z")
#: user ids the JWT resolver remembers as checked (then it starts again)
_KNOWN_MAX = 100_000

_hasher = PasswordHasher()
# A real hash to verify against when the username is unknown, so both failures cost the same.
_DUMMY_HASH = _hasher.hash("trionet-dummy-password")


def new_token() -> str:
    """A fresh random session token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


#: Callers that may queue for a password hasher (``TRIONET_PASSWORD_HASHERS``, all busy); one
#: more is refused at once with :class:`HashersBusy` (HTTP 503), so the queue holds at most 64
#: requests and, at 0.2 s a hash with 2 hashers, the last in line waits about 6 s.
HASH_QUEUE_LIMIT = 64


class HashersBusy(Exception):
    """:data:`HASH_QUEUE_LIMIT` callers already wait for a password hasher: try again later."""


def _admit(hashers: trio.CapacityLimiter) -> None:
    # no checkpoint between this check and the limiter's queue: the count is exact
    if hashers.statistics().tasks_waiting >= HASH_QUEUE_LIMIT:
        raise HashersBusy


async def hash_password(password: str, *, hashers: trio.CapacityLimiter) -> str:
    """Argon2id hash of ``password``, in a worker thread once one of ``hashers`` is free.

    ``hashers`` bounds the hashes (64 MiB each) computed at once: the server's is
    ``Services.hashers`` (``TRIONET_PASSWORD_HASHERS``). Raises :class:`HashersBusy` at once
    when :data:`HASH_QUEUE_LIMIT` callers already wait.
    """
    _admit(hashers)
    return await trio.to_thread.run_sync(_hasher.hash, password, limiter=hashers)


async def verify_password(
    password: str, stored: str | None, *, hashers: trio.CapacityLimiter
) -> bool:
    """True when ``password`` matches ``stored``; takes as long when ``stored`` is None.

    Runs under ``hashers`` like :func:`hash_password` (and raises :class:`HashersBusy` alike).
    """

    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    _admit(hashers)
    return await trio.to_thread.run_sync(check, limiter=hashers)


def bearer(handshake: Handshake) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    value = handshake.headers.get("Authorization") or handshake.headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


class CookieSessionResolver:
    """trionet's own sessions: the session cookie, or the same token as a Bearer header."""

    def __init__(self, store: AccountStore, cookie_name: str) -> None:
        self._store = store
        self._cookie = cookie_name

    async def resolve(self, handshake: Handshake) -> Identity | None:
        token = handshake.cookies.get(self._cookie)
        if not token:
            token = bearer(handshake)
            if token is None or token.count(".") == 2:  # a JWT is not ours
                return None
        if len(token) > 256:
            return None
        key = hash_token(token)
        found = await self._store.session_user(key)
        if found is None:
            return None
        return Identity(user_id=found[0], session_key=key, expires_at=found[1])


class JwtResolver:
    """JWTs from ``Authorization: Bearer``: ``sub`` is the user id, ``exp`` enforced.

    ``keys`` says what may have signed them (:mod:`trionet.jwtkeys`: an HS256 secret, a
    public key, a JWKS URL, or several); a token is checked only with a key of its own
    algorithm. ``audience`` and ``issuer``, when given, are required claims. ``sub`` must be
    ASCII digits naming an id below 2**53. A user id seen for the first time gets a
    ``user<id>`` row; an id that belongs to an account with a password (registered or made by
    the CLI) is refused, so a JWT can never take over such an account.
    """

    def __init__(self, store: AccountStore, keys: str | Sequence[KeySource], *,
                 audience: str | None = None, issuer: str | None = None) -> None:
        self._store = store
        self._keys: tuple[KeySource, ...] = (
            (SecretKey(keys),) if isinstance(keys, str) else tuple(keys))
        self._audience = audience
        self._issuer = issuer
        self._known: set[int] = set()

    async def _claims(self, token: str) -> dict[str, Any] | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        alg = header.get("alg")
        if not isinstance(alg, str):
            return None
        required = ["sub", "exp"]
        if self._audience is not None:
            required.append("aud")
        if self._issuer is not None:
            required.append("iss")
        for source in self._keys:
            if alg not in source.algorithms:
                continue
            key = await source.key_for(header)
            if key is None:
                continue
            try:
                claims: dict[str, Any] = jwt.decode(
                    token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
                    options={"require": required})
            except jwt.PyJWTError:
                continue
            return claims
        return None

    def forget(self, user_id: int) -> None:
        """The account was deleted: the next token for it is checked afresh."""
        self._known.discard(user_id)

    async def resolve(self, handshake: Handshake) -> Identity | None:
        token = bearer(handshake)
        if token is None or token.count(".") != 2 or len(token) > 16_384:
            return None
        claims = await self._claims(token)
        if claims is None:
            return None
        sub = claims.get("sub")
        if not isinstance(sub, str) or _USER_ID.match(sub) is None or int(sub) >= 2**53:
            return None
        user_id = int(sub)
        if user_id not in self._known:
            # a JWT names a backend user: never one of trionet's own password accounts
            if not await self._store.ensure_backend_user(user_id):
                log.warning("refused a JWT for user %d: an account with a password", user_id)
                return None
            if len(self._known) >= _KNOWN_MAX:
                self._known.clear()
            self._known.add(user_id)
        return Identity(user_id=user_id, session_key=None, expires_at=float(claims["exp"]))


class ChainResolver:
    """Asks each resolver in turn; the first identity wins."""

    def __init__(self, resolvers: Sequence[SessionResolver]) -> None:
        self.resolvers = tuple(resolvers)

    async def resolve(self, handshake: Handshake) -> Identity | None:
        for resolver in self.resolvers:
            identity = await resolver.resolve(handshake)
            if identity is not None:
                return identity
        return None


def make_jwt(secret: str, user_id: int, ttl: float = 3600) -> str:
    """An HS256 token for ``user_id`` valid ``ttl`` seconds (for backends and tests)."""
    return jwt.encode({"sub": str(user_id), "exp": int(time.time() + ttl)}, secret, "HS256")


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(given.encode(), expected.encode())


#: Failed logins for one username from one client address within :data:`LOGIN_WINDOW`; past
#: it that username is refused (429) from that address only, so a stranger elsewhere cannot
#: lock the user out.
LOGIN_FAILURES_PER_USER_AND_ADDRESS = 10
#: Failed logins for one username from all addresses together within :data:`LOGIN_WINDOW`:
#: bounds guessing spread over many addresses (past it the username is refused everywhere).
LOGIN_FAILURES_PER_USER = 100
#: Failed logins from one client address for all usernames together within
#: :data:`LOGIN_WINDOW`: bounds password spraying (one password tried on many accounts).
LOGIN_FAILURES_PER_ADDRESS = 100
#: Seconds a failed login counts against its limits.
LOGIN_WINDOW = 600.0


class LoginThrottle:
    """Counts failed logins per key over a sliding window of ``window`` seconds.

    A key is ``kind:value``; its limit is ``limits[kind]``, or ``limit`` for a kind not in
    ``limits``. :meth:`for_logins` builds the login policy, over :meth:`login_keys`.

    Memory stays proportional to the keys that failed within the window (each holding at most
    its limit of timestamps): keys whose failures have all expired are swept whenever the
    table doubles.
    """

    def __init__(
        self,
        limit: int = 10,
        window: float = 600.0,
        *,
        limits: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window = window
        self.limits = dict(limits or {})
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._sweep_at = 1024

    @classmethod
    def for_logins(cls, *, clock: Callable[[], float] = time.monotonic) -> LoginThrottle:
        """The login policy: :data:`LOGIN_FAILURES_PER_USER_AND_ADDRESS`,
        :data:`LOGIN_FAILURES_PER_USER` and :data:`LOGIN_FAILURES_PER_ADDRESS` over
        :data:`LOGIN_WINDOW`, for the keys of :meth:`login_keys`."""
        return cls(LOGIN_FAILURES_PER_USER_AND_ADDRESS, LOGIN_WINDOW,
                   limits={"user": LOGIN_FAILURES_PER_USER, "addr": LOGIN_FAILURES_PER_ADDRESS},
                   clock=clock)

    @staticmethod
    def login_keys(username: str, address: str | None) -> list[str]:
        """The keys of one login attempt: (username, address), username, address.

        Usernames are case insensitive. The pair's address is length-prefixed, so no choice
        of username and address can spell another pair's key.
        """
        name, addr = username.lower(), address or ""
        return [f"pair:{len(addr)}:{addr}:{name}", f"user:{name}", f"addr:{addr}"]

    def limit_of(self, key: str) -> int:
        """The failures ``key`` may have within the window."""
        return self.limits.get(key.partition(":")[0], self.limit)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is not None:
            while q and q[0] <= now - self.window:
                q.popleft()
        return q

    def retry_after(self, keys: Sequence[str]) -> int | None:
        """Seconds to wait when any key is over the limit, else None."""
        now = self._clock()
        waits = []
        for key in keys:
            q = self._recent(key, now)
            if q is not None and len(q) >= self.limit_of(key):
                waits.append(int(q[0] + self.window - now) + 1)
        return max(waits) if waits else None

    def failed(self, keys: Sequence[str]) -> float:
        """Record one failed attempt for each key; returns its time (see :meth:`forgive`).

        Record an attempt as failed *before* checking the password and :meth:`forgive` it on
        success: concurrent attempts then cannot all pass :meth:`retry_after` together.
        """
        now = self._clock()
        for key in keys:
            q = self._recent(key, now)
            if q is None:
                q = self._failures[key] = deque()
            q.append(now)
            if len(q) > self.limit_of(key):  # older failures no longer change the answer
                q.popleft()
        if len(self._failures) > self._sweep_at:
            cutoff = now - self.window
            for key in [k for k, q in self._failures.items() if not q or q[-1] <= cutoff]:
                del self._failures[key]
            self._sweep_at = max(1024, 2 * len(self._failures))
        return now

    def forgive(self, keys: Sequence[str], at: float) -> None:
        """Take back the failure recorded at ``at`` for each key."""
        for key in keys:
            q = self._failures.get(key)
            if q is not None:
                try:
                    q.remove(at)
                except ValueError:
                    pass

    def succeeded(self, keys: Sequence[str]) -> None:
        """Forget the failures of each key."""
        for key in keys:
            self._failures.pop(key, None)


class LoginGuard(Protocol):
    """The login throttle as the login handler uses it: this process's own
    (:class:`LocalLoginGuard`), or one that every node of a deployment shares (Redis)."""

    async def begin(self, keys: Sequence[str]) -> tuple[int | None, str]:
        """Seconds to wait when any key is over its limit (and nothing is recorded), else
        None and the attempt, recorded as failed until :meth:`forgive` takes it back."""
        ...

    async def forgive(self, keys: Sequence[str], attempt: str) -> None:
        """Take back the failure recorded as ``attempt`` for each key."""
        ...

    async def succeeded(self, keys: Sequence[str]) -> None:
        """Forget the failures of each key."""
        ...


class LocalLoginGuard:
    """A :class:`LoginGuard` over this process's :class:`LoginThrottle`."""

    def __init__(self, throttle: LoginThrottle) -> None:
        self.throttle = throttle

    async def begin(self, keys: Sequence[str]) -> tuple[int | None, str]:
        wait = self.throttle.retry_after(keys)
        if wait is not None:
            return wait, ""
        return None, repr(self.throttle.failed(keys))

    async def forgive(self, keys: Sequence[str], attempt: str) -> None:
        self.throttle.forgive(keys, float(attempt))

    async def succeeded(self, keys: Sequence[str]) -> None:
        self.throttle.succeeded(keys)
