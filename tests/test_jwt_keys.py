"""Asymmetric JWTs: a public key file (RS256, ES256, EdDSA) or a JWKS URL, with audience and
issuer, against a live server; keys generated here, the key set served from 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trionet.settings import Settings, SettingsError
from trionet.testing import running_server


def pem(private: Any) -> bytes:
    return bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def token(private: Any, alg: str, sub: str = "7", **claims: Any) -> str:
    body = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    headers = {"kid": claims.pop("kid")} if "kid" in claims else None
    body.pop("kid", None)
    return jwt.encode(body, private, algorithm=alg, headers=headers)


def hs256_with(secret: bytes, claims: dict[str, Any]) -> str:
    """An HS256 token signed by hand (PyJWT refuses a PEM key as an HMAC secret)."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    mac = hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + part(mac)


async def status(server: Any, jwt_token: str) -> int:
    async with server.http() as http:
        r = await http.get("/api/me", headers={"Authorization": f"Bearer {jwt_token}"})
        return int(r.status_code)


KEYS = {
    "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


@pytest.mark.parametrize("alg", sorted(KEYS))
async def test_a_public_key_file_verifies_its_own_algorithm_only(alg: str, tmp_path: Path) -> None:
    private = KEYS[alg]()
    path = tmp_path / "key.pem"
    path.write_bytes(pem(private))
    settings = Settings(rate_limit=0, jwt_public_key=str(path), jwt_audience="chat",
                        jwt_issuer="https://backend.example")
    async with running_server(settings) as server:
        with trio.fail_after(20):
            good = token(private, alg, aud="chat", iss="https://backend.example")
            assert await status(server, good) == 200
            async with server.http() as http:
                me = (await http.get("/api/me", headers={"Authorization": f"Bearer {good}"}))
                assert me.json()["id"] == 7
            # a WebSocket opens with it too
            async with server.connect(headers={"Authorization": f"Bearer {good}"}) as ws:
                await server.send_json(ws, {"type": "ping", "client_id": "p"})
                assert (await server.receive_json(ws))["type"] == "pong"
            other = KEYS[alg]()
            for bad in (
                token(other, alg, aud="chat", iss="https://backend.example"),  # another key
                token(private, alg, iss="https://backend.example"),  # no audience
                token(private, alg, aud="other", iss="https://backend.example"),
                token(private, alg, aud="chat"),  # no issuer
                token(private, alg, aud="chat", iss="https://backend.example",
                      exp=int(time.time()) - 10),
                # the public key as an HS256 secret: algorithm confusion
                hs256_with(pem(private), {"sub": "7", "exp": int(time.time()) + 60,
                                          "aud": "chat", "iss": "https://backend.example"}),
            ):
                assert await status(server, bad) == 401


def test_a_public_key_setting_names_what_is_wrong(tmp_path: Path) -> None:
    weak = tmp_path / "weak.pem"
    weak.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)))
    curve = tmp_path / "p384.pem"
    curve.write_bytes(pem(ec.generate_private_key(ec.SECP384R1())))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    for path, words in ((weak, "too weak"), (curve, "P-256"), (junk, "no PEM public key"),
                        (tmp_path / "missing.pem", "cannot read")):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env(environ={"TRIONET_JWT_PUBLIC_KEY": str(path)})
        assert words in str(caught.value)
    with pytest.raises(SettingsError, match="TRIONET_OPEN_REGISTRATION"):
        Settings(jwks_url="http://127.0.0.1:1/keys", open_registration=True)
    assert not Settings(jwks_url="http://127.0.0.1:1/keys").registration_open


class KeySet:
    """A JWKS served on 127.0.0.1 from a thread; ``keys`` can be replaced (a rotation)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.requests += 1
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"

    def publish(self, kid: str, private: Any) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
        self.keys = [*self.keys, {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]


@pytest.fixture
def keyset() -> Iterator[KeySet]:
    keys = KeySet()
    thread = threading.Thread(target=keys.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield keys
    finally:
        keys.httpd.shutdown()
        keys.httpd.server_close()
        thread.join(5)


async def test_a_jwks_url_serves_keys_by_kid_and_follows_a_rotation(
    keyset: KeySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trionet import jwtkeys

    monkeypatch.setattr(jwtkeys, "JWKS_REFETCH_SECONDS", 0.5)
    first, second = KEYS["RS256"](), KEYS["RS256"]()
    keyset.publish("k1", first)
    async with running_server(Settings(rate_limit=0, jwks_url=keyset.url)) as server:
        with trio.fail_after(20):
            assert await status(server, token(first, "RS256", kid="k1")) == 200
            assert await status(server, token(first, "RS256", kid="k1", sub="8")) == 200
            assert keyset.requests == 1  # cached
            # tokens naming unknown keys: at most one fetch per refetch interval
            for i in range(20):
                assert await status(server, token(second, "RS256", kid=f"made-up-{i}")) == 401
            assert keyset.requests <= 2
            # the backend rotates: k2 appears, k1 goes
            keyset.keys = []
            keyset.publish("k2", second)
            await trio.sleep(0.6)
            assert await status(server, token(second, "RS256", kid="k2")) == 200
            assert await status(server, token(first, "RS256", kid="k2")) == 401
            await trio.sleep(0.6)
            # k1 is gone from the set: once refetched, its tokens fail
            assert await status(server, token(second, "RS256", kid="k3")) == 401
            assert await status(server, token(first, "RS256", kid="k1")) == 401
            # a key of the set never verifies a token of another algorithm
            hs = jwt.encode({"sub": "7", "exp": int(time.time()) + 60}, "s" * 32,
                            algorithm="HS256", headers={"kid": "k2"})
            assert await status(server, hs) == 401


async def test_a_header_that_is_not_a_jwt_header_is_a_401(tmp_path: Path) -> None:
    private = KEYS["EdDSA"]()
    path = tmp_path / "key.pem"
    path.write_bytes(pem(private))
    async with running_server(Settings(rate_limit=0, jwt_public_key=str(path))) as server:
        with trio.fail_after(10):
            def part(data: bytes) -> str:
                return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

            odd = ".".join((part(b'{"alg":["EdDSA"]}'), part(b'{"sub":"7"}'), part(b"x")))
            assert await status(server, odd) == 401
