"""Accounts and sessions: register, login, logout, me, session, user look-up."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response, request

from ..auth import (
    HashersBusy,
    LoginThrottle,
    hash_password,
    hash_token,
    new_token,
    verify_password,
)
from ..core.errors import ApiError, ErrorCode
from ..core.names import USERNAME_MAX, USERNAME_PATTERN
from ..store import UsernameTaken
from .common import (
    current_identity,
    id_list_param,
    json_body,
    json_response,
    optional_identity,
    services,
)

__all__ = ["bp"]

bp = Blueprint("accounts", __name__)

Username = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=USERNAME_MAX, pattern=USERNAME_PATTERN),
]
Password = Annotated[str, msgspec.Meta(min_length=8, max_length=256)]

#: ``Retry-After`` seconds of a 503 when every password hasher is busy and the queue is full
HASHERS_BUSY_RETRY_AFTER = 1


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    password: Password


class LoginBody(msgspec.Struct, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Annotated[str, msgspec.Meta(max_length=256)]


def _taken(username: str) -> ApiError:
    return ApiError(409, ErrorCode.CONFLICT, f"username {username!r} is taken")


def _hashers_busy() -> ApiError:
    return ApiError(503, ErrorCode.UNAVAILABLE, "too many password checks in progress; retry",
                    headers={"Retry-After": str(HASHERS_BUSY_RETRY_AFTER)})


async def create_account(
    username: str, password: str | None, *, is_admin: bool = False
) -> dict[str, Any]:
    """Create a user (409 on a taken name, 503 when the password hashers are saturated)."""
    svc = services()
    # a read first, so a taken name costs no hash; the insert still settles a race (409)
    if await svc.store.get_user_by_name(username) is not None:
        raise _taken(username)
    try:
        hashed = (await hash_password(password, hashers=svc.hashers)
                  if password is not None else None)
    except HashersBusy:
        raise _hashers_busy() from None
    try:
        user = await svc.store.create_user(username, hashed, is_admin=is_admin)
    except UsernameTaken:
        raise _taken(username) from None
    return user.public()


@bp.post("/api/auth/register")
async def register() -> Response:
    svc = services()
    if not svc.settings.registration_open:
        raise ApiError(403, ErrorCode.FORBIDDEN, "self-registration is disabled")
    body = await json_body(Credentials)
    assert body is not None
    # every well-formed attempt counts, a 409 too: each could otherwise cost a hash
    wait = svc.register_limit.take(request.remote_addr, time.monotonic())
    if wait is not None:
        raise ApiError(429, ErrorCode.TOO_MANY_REQUESTS,
                       "too many registrations from this address; wait",
                       headers={"Retry-After": str(wait)})
    return json_response(await create_account(body.username, body.password), 201)


@bp.post("/api/auth/login")
async def login() -> Response:
    svc = services()
    body = await json_body(LoginBody)
    assert body is not None
    # (username, address), username, address: see LoginThrottle.for_logins for the limits
    keys = LoginThrottle.login_keys(body.username, request.remote_addr)
    # counted as failed until it succeeds, so a burst of concurrent guesses cannot all pass
    wait, attempt = await svc.logins.begin(keys)
    if wait is not None:
        raise ApiError(429, ErrorCode.TOO_MANY_REQUESTS, "too many failed logins; wait",
                       headers={"Retry-After": str(wait)})
    user = await svc.store.get_user_by_name(body.username)
    try:
        ok = await verify_password(body.password, None if user is None else user.password_hash,
                                   hashers=svc.hashers)
    except HashersBusy:
        await svc.logins.forgive(keys, attempt)  # the password was not checked
        raise _hashers_busy() from None
    if not ok:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "wrong username or password")
    assert user is not None
    # the pair's failures are forgotten; the username's and the address's ceilings keep
    # everyone else's failures (only this attempt is taken back)
    await svc.logins.succeeded(keys[:1])
    await svc.logins.forgive(keys[1:], attempt)
    token = new_token()
    ttl = svc.settings.session_ttl
    await svc.store.create_session(hash_token(token), user.id, time.time() + ttl)
    response = json_response({**user.own(), "token": token})
    response.set_cookie(svc.settings.cookie_name, token, max_age=ttl, httponly=True,
                        samesite="Lax", secure=svc.settings.cookie_secure, path="/")
    return response


@bp.post("/api/auth/logout")
async def logout() -> Response:
    svc = services()
    identity = await current_identity()
    if identity.session_key is not None:
        await svc.store.delete_session(identity.session_key)
        await svc.manager.end_session(identity.session_key)
    response = json_response({"ok": True})
    response.delete_cookie(svc.settings.cookie_name, path="/")
    return response


@bp.get("/api/me")
async def me() -> Response:
    identity = await current_identity()
    user = await services().store.get_user(identity.user_id)
    if user is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "authentication required")
    return json_response(user.own())


@bp.get("/api/session")
async def session() -> Response:
    """Who is signed in, 200 either way: ``{"user": null}`` without a valid credential.

    The same resolution as ``/api/me``, for a page that asks before it knows: a 401 there
    would be logged as an error in the browser's console on every signed-out load."""
    identity = await optional_identity()
    user = None if identity is None else await services().store.get_user(identity.user_id)
    return json_response({"user": None if user is None else user.own()})


@bp.get("/api/users")
async def users() -> Response:
    await current_identity()
    store = services().store
    if "username" in request.args:
        name = request.args["username"]
        user = await store.get_user_by_name(name) if len(name) <= 64 else None
        if user is None:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no user named {name!r}")
        return json_response({"users": [user.public()]})
    ids = id_list_param(request.args, "ids", most=500)
    return json_response({"users": [u.public() for u in await store.users_by_ids(ids)]})
