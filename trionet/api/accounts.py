"""Accounts and sessions: register, login, logout, me, user look-up."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from ..auth import hash_password, hash_token, new_token, verify_password
from ..errors import ApiError, ErrorCode
from ..storage import accounts
from .common import current_identity, id_list_param, json_body, json_response, services

__all__ = ["bp"]

bp = Blueprint("accounts", __name__)

Username = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=accounts.USERNAME_MAX, pattern=accounts.USERNAME_PATTERN),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


async def create_account(
    username: str, password: str | None, *, is_admin: bool = False
) -> dict[str, Any]:
    """Create a user (409 on a taken name)."""
    hashed = await hash_password(password) if password is not None else None
    try:
        user = await services().db.write(accounts.create_user, username, hashed, is_admin=is_admin)
    except accounts.UsernameTaken:
        raise ApiError(409, ErrorCode.CONFLICT, f"username {username!r} is taken") from None
    return {"id": user["id"], "username": username}


@bp.post("/api/auth/register")
async def register() -> Response:
    if not services().settings.registration_open:
        raise ApiError(403, ErrorCode.FORBIDDEN, "self-registration is disabled")
    body = await json_body(Credentials)
    assert body is not None
    return json_response(await create_account(body.username, body.password), 201)


@bp.post("/api/auth/login")
async def login() -> Response:
    svc = services()
    body = await json_body(LoginBody)
    assert body is not None
    keys = [f"user:{body.username.lower()}", f"addr:{request.remote_addr}"]
    wait = svc.throttle.retry_after(keys)
    if wait is not None:
        raise ApiError(429, ErrorCode.TOO_MANY_REQUESTS, "too many failed logins; wait",
                       headers={"Retry-After": str(wait)})
    # counted as failed until it succeeds, so a burst of concurrent guesses cannot all pass
    attempt = svc.throttle.failed(keys)
    row = await svc.db.read(accounts.get_user_by_name, body.username)
    if not await verify_password(body.password, None if row is None else row["password_hash"]):
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "wrong username or password")
    assert row is not None
    svc.throttle.succeeded(keys[:1])
    svc.throttle.forgive(keys[1:], attempt)
    token = new_token()
    ttl = svc.settings.session_ttl
    await svc.db.write(accounts.create_session, hash_token(token), row["id"], time.time() + ttl)
    response = json_response({"id": row["id"], "username": row["username"],
                              "is_admin": bool(row["is_admin"]), "token": token})
    response.set_cookie(svc.settings.cookie_name, token, max_age=ttl, httponly=True,
                        samesite="Lax", secure=svc.settings.cookie_secure, path="/")
    return response


@bp.post("/api/auth/logout")
async def logout() -> Response:
    svc = services()
    identity = await current_identity()
    if identity.session_key is not None:
        await svc.db.write(accounts.delete_session, identity.session_key)
        svc.manager.end_session(identity.session_key)
    response = json_response({"ok": True})
    response.delete_cookie(svc.settings.cookie_name, path="/")
    return response


@bp.get("/api/me")
async def me() -> Response:
    identity = await current_identity()
    row = await services().db.read(accounts.get_user, identity.user_id)
    if row is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "authentication required")
    return json_response({"id": row["id"], "username": row["username"],
                          "is_admin": bool(row["is_admin"])})


@bp.get("/api/users")
async def users() -> Response:
    await current_identity()
    db = services().db
    if "username" in request.args:
        name = request.args["username"]
        row = await db.read(accounts.get_user_by_name, name) if len(name) <= 64 else None
        if row is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no user named {name!r}")
        return json_response({"users": [accounts.public_user(row)]})
    ids = id_list_param(request.args, "ids", most=500)
    rows = await db.read(accounts.users_by_ids, ids)
    return json_response({"users": [accounts.public_user(r) for r in rows]})
