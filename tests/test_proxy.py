"""Behind reverse proxies (TRIONET_PROXY_HOPS): addresses, scheme and host from the proxy."""

from __future__ import annotations

import httpx
import trio

from trionet.settings import Settings
from trionet.testing import running_server

PASSWORD = "correct horse battery"


async def login(client: httpx.AsyncClient, name: str, password: str,
                forwarded_for: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": name, "password": password},
                             headers={"X-Forwarded-For": forwarded_for})


async def test_throttle_counts_the_forwarded_client_not_the_proxy() -> None:
    async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
        with trio.fail_after(30):
            async with server.http() as client:
                await client.post("/api/auth/register",
                                  json={"username": "alice", "password": PASSWORD})
                for _ in range(10):
                    r = await login(client, "alice", "wrong-password", "203.0.113.7")
                    assert r.status_code == 401
                assert (await login(client, "alice", PASSWORD, "203.0.113.7")).status_code == 429
                # another client behind the same proxy is not locked out
                assert (await login(client, "alice", PASSWORD, "198.51.100.2")).status_code == 200


async def test_without_proxy_hops_forwarded_headers_are_ignored() -> None:
    async with running_server(Settings(rate_limit=0)) as server:
        with trio.fail_after(30):
            async with server.http() as client:
                await client.post("/api/auth/register",
                                  json={"username": "alice", "password": PASSWORD})
                for i in range(10):  # a client cannot dodge the throttle by inventing addresses
                    r = await login(client, "alice", "wrong-password", f"192.0.2.{i}")
                    assert r.status_code == 401
                assert (await login(client, "alice", PASSWORD, "198.51.100.2")).status_code == 429


async def test_origin_of_the_public_https_site_is_the_own_origin_behind_a_tls_proxy() -> None:
    async with running_server(Settings(proxy_hops=1, rate_limit=0)) as server:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.com",
                     "X-Forwarded-For": "203.0.113.9"}
        with trio.fail_after(30):
            async with server.http() as client:
                ok = await client.post(
                    "/api/auth/register", json={"username": "bob", "password": PASSWORD},
                    headers={**forwarded, "Origin": "https://chat.example.com"})
                assert ok.status_code == 201
                refused = await client.post(
                    "/api/auth/register", json={"username": "eve", "password": PASSWORD},
                    headers={**forwarded, "Origin": "https://evil.example"})
                assert refused.status_code == 403
            user = await server.create_user("carol")
            async with server.connect(user, headers={**forwarded,
                                                     "Origin": "https://chat.example.com"}) as ws:
                await server.send_json(ws, {"type": "ping"})
                assert (await server.receive_json(ws))["type"] == "pong"
