"""The keys a JWT may be signed with: an HS256 secret, a public key, or a JWKS URL.

Each source says which algorithms it verifies, and a token is only ever checked with the
algorithm its key is for: a public key never serves as an HMAC secret (the classic algorithm
confusion), and an HS256 secret never verifies an RS256 token.

- :class:`SecretKey`: ``TRIONET_JWT_SECRET``, HS256.
- :class:`PublicKey`: ``TRIONET_JWT_PUBLIC_KEY``, a PEM file: RSA (RS256), EC P-256 (ES256)
  or Ed25519 (EdDSA).
- :class:`JwksKeys`: ``TRIONET_JWKS_URL``, the backend's JSON Web Key Set, fetched when a
  token names a key id (``kid``) it does not hold yet, at most once every
  :data:`JWKS_REFETCH_SECONDS` (so tokens with made-up ids cannot make trionet hammer the
  backend), with a timeout, at most :data:`JWKS_MAX_BYTES` and :data:`JWKS_MAX_KEYS` keys.
  Keys that left the set are dropped at the next fetch, so a rotation needs no restart; the
  set is also fetched again once it is :data:`JWKS_MAX_AGE` old, so a key the backend removed
  stops verifying within that even when no token names a new key.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import jwt
import trio

from .core.jwtalgs import parse_public_key, public_key_algorithm

__all__ = ["JWKS_MAX_AGE", "JWKS_MAX_BYTES", "JWKS_MAX_KEYS", "JWKS_REFETCH_SECONDS", "JwksKeys",
           "KeySource", "PublicKey", "SecretKey", "public_key_algorithm"]

log = logging.getLogger("trionet.auth")

#: the least time between two fetches of the key set
JWKS_REFETCH_SECONDS = 30.0
#: the oldest a fetched key set is used before it is fetched again (a key the backend
#: removed stops verifying within this)
JWKS_MAX_AGE = 600.0
#: the largest key set read (bytes)
JWKS_MAX_BYTES = 1_000_000
#: the most keys kept from a key set
JWKS_MAX_KEYS = 64
#: seconds a key set fetch may take
JWKS_TIMEOUT = 5.0


class KeySource(Protocol):
    """Where the key for a token comes from."""

    #: the algorithms this source verifies
    algorithms: frozenset[str]

    async def key_for(self, header: Mapping[str, Any]) -> Any | None:
        """The key to verify a token with this (unverified) header, or None."""
        ...


class SecretKey:
    """An HS256 shared secret."""

    algorithms = frozenset({"HS256"})

    def __init__(self, secret: str) -> None:
        self._secret = secret

    async def key_for(self, header: Mapping[str, Any]) -> Any | None:
        return self._secret


def load_public_key(path: str) -> tuple[Any, str]:
    """A PEM public key from a file, and its algorithm; ValueError naming what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    return parse_public_key(data, path)


class PublicKey:
    """A public key from a PEM file (RS256, ES256 or EdDSA, by the key's kind)."""

    def __init__(self, path: str) -> None:
        self._key, algorithm = load_public_key(path)
        self.algorithms = frozenset({algorithm})

    async def key_for(self, header: Mapping[str, Any]) -> Any | None:
        return self._key


class JwksKeys:
    """The signing keys of a JSON Web Key Set at ``url``, by key id."""

    algorithms = frozenset({"RS256", "ES256", "EdDSA"})

    def __init__(self, url: str, *, refetch_every: float | None = None,
                 timeout: float = JWKS_TIMEOUT) -> None:
        self.url = url
        self._refetch_every = JWKS_REFETCH_SECONDS if refetch_every is None else refetch_every
        self._timeout = timeout
        self._keys: dict[str, tuple[Any, str]] = {}
        self._fetched_at = -float("inf")
        self._lock = trio.Lock()
        #: key set fetches made (for tests and metrics)
        self.fetches = 0

    async def key_for(self, header: Mapping[str, Any]) -> Any | None:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            return None
        age = time.monotonic() - self._fetched_at
        if kid not in self._keys or age >= JWKS_MAX_AGE:
            async with self._lock:  # one fetch at a time; the others find its keys
                age = time.monotonic() - self._fetched_at
                if age >= JWKS_MAX_AGE or (kid not in self._keys
                                           and age >= self._refetch_every):
                    await self._refresh()
        found = self._keys.get(kid)
        if found is None or found[1] != header.get("alg"):
            return None
        return found[0]

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        self.fetches += 1
        try:
            raw = await trio.to_thread.run_sync(self._fetch)
            self._keys = _signing_keys(json.loads(raw))
        except Exception as exc:  # unreachable, slow, or not a key set: keep the old keys
            log.warning("could not fetch the JWT key set from %s: %s", self.url, exc)

    def _fetch(self) -> bytes:
        with urllib.request.urlopen(self.url, timeout=self._timeout) as response:  # noqa: S310
            body: bytes = response.read(JWKS_MAX_BYTES + 1)
        if len(body) > JWKS_MAX_BYTES:
            raise ValueError(f"the key set is larger than {JWKS_MAX_BYTES} bytes")
        return body


def _signing_keys(document: Any) -> dict[str, tuple[Any, str]]:
    """kid -> (key, algorithm) of the signature keys of a key set (others are skipped)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    keys: dict[str, tuple[Any, str]] = {}
    for entry in document["keys"][:JWKS_MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            key = jwt.PyJWK.from_dict(entry).key
            algorithm = public_key_algorithm(key)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue  # a private, symmetric or unsupported key: never used
        if entry.get("alg", algorithm) == algorithm:
            keys[kid] = (key, algorithm)
    return keys
