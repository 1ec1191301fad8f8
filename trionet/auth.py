"""Credentials: password hashing, session tokens, JWTs and the default session resolvers."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence

import jwt
import trio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from .interfaces import Handshake, Identity, SessionResolver
from .storage import Database, accounts

__all__ = [
    "ChainResolver",
    "CookieSessionResolver",
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

_hasher = PasswordHasher()
# A real hash to verify against when the username is unknown, so both failures cost the same.
_DUMMY_HASH = _hasher.hash("trionet-dummy-password")


def new_token() -> str:
    """A fresh random session token (32 random bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What is stored of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


async def hash_password(password: str) -> str:
    """Argon2id hash of ``password`` (computed in a worker thread)."""
    return await trio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, stored: str | None) -> bool:
    """True when ``password`` matches ``stored``; takes as long when ``stored`` is None."""

    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await trio.to_thread.run_sync(check)


def bearer(handshake: Handshake) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    value = handshake.headers.get("Authorization") or handshake.headers.get("authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


class CookieSessionResolver:
    """trionet's own sessions: the session cookie, or the same token as a Bearer header."""

    def __init__(self, db: Database, cookie_name: str) -> None:
        self._db = db
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
        found = await self._db.read(accounts.session_user, key)
        if found is None:
            return None
        return Identity(user_id=found[0], session_key=key, expires_at=found[1])


class JwtResolver:
    """HS256 JWTs from ``Authorization: Bearer``: ``sub`` is the user id, ``exp`` enforced.

    A user id seen for the first time gets a ``user<id>`` row.
    """

    def __init__(self, db: Database, secret: str) -> None:
        self._db = db
        self._secret = secret
        self._known: set[int] = set()

    async def resolve(self, handshake: Handshake) -> Identity | None:
        token = bearer(handshake)
        if token is None or token.count(".") != 2:
            return None
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.PyJWTError:
            return None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.isdigit() or not 0 < int(sub) < 2**53:
            return None
        user_id = int(sub)
        if user_id not in self._known:
            await self._db.write(accounts.ensure_user, user_id)
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


class LoginThrottle:
    """Counts failed logins per key (username, client address) over a sliding window.

    Memory stays proportional to the keys that failed within the window: keys whose failures
    have all expired are swept whenever the table doubles.
    """

    def __init__(
        self, limit: int = 10, window: float = 600.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._sweep_at = 1024

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
            if q is not None and len(q) >= self.limit:
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
            if len(q) > self.limit:  # older failures no longer change the answer
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
