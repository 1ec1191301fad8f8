"""What every endpoint shares: the caller's identity, JSON bodies, query parameters, Origin."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from quart import Response, current_app, request

from ..core.errors import ApiError, ErrorCode
from ..interfaces import Handshake, Identity
from ..services import Services, services_of

__all__ = [
    "check_origin",
    "current_identity",
    "id_list_param",
    "handshake_of",
    "int_param",
    "json_body",
    "json_response",
    "optional_identity",
    "optional_int_param",
    "origin_allowed",
    "services",
]

T = TypeVar("T")
_encoder = msgspec.json.Encoder()
#: an integer in a query: ASCII digits with an optional minus, nothing else (Python's int()
#: would also take " 3", "+3", "1_0" and other scripts' digits)
_INTEGER = re.compile(r"\A-?[0-9]{1,16}\Z")


def services() -> Services:
    return services_of(current_app)  # type: ignore[arg-type]


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(data), status=status, headers=headers,
                    content_type="application/json")


def handshake_of(obj: Any) -> Handshake:
    """A :class:`Handshake` from a Quart request or websocket."""
    return Handshake(headers=obj.headers, cookies=obj.cookies, remote_addr=obj.remote_addr)


async def optional_identity() -> Identity | None:
    """The authenticated caller, or None when the request carries no valid credential."""
    return await services().resolver.resolve(handshake_of(request))


async def current_identity() -> Identity:
    """The authenticated caller, or 401."""
    identity = await optional_identity()
    if identity is None:
        raise ApiError(401, ErrorCode.UNAUTHORIZED, "authentication required")
    return identity


def origin_allowed(origin: str, allowed: tuple[str, ...], scheme: str, host: str | None) -> bool:
    """True when a browser at ``origin`` may talk to this server."""
    origin = origin.rstrip("/").lower()
    if "*" in allowed or origin in {a.rstrip("/").lower() for a in allowed}:
        return True
    if allowed:
        return False
    own_scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
    return host is not None and origin.lower() == f"{own_scheme}://{host}".lower()


def check_origin() -> None:
    """Refuse (403) a state-changing request from a foreign Origin."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    settings = services().settings
    if settings.cors_origins and origin.rstrip("/").lower() in settings.cors_origins and (
            request.path.startswith("/api/") and not request.path.startswith("/api/server/")):
        return  # a page of an origin CORS lets call the API (TRIONET_CORS_ORIGINS)
    if not origin_allowed(origin, settings.allowed_origins, request.scheme,
                          request.headers.get("Host")):
        raise ApiError(403, ErrorCode.FORBIDDEN, f"origin {origin!r} is not allowed")


async def json_body(schema: type[T], *, required: bool = True) -> T | None:
    """Decode and validate the JSON body (415 without a JSON content type, 400 if invalid)."""
    check_origin()
    raw = await request.get_data(cache=False, as_text=False)
    assert isinstance(raw, bytes)
    if not raw.strip():
        if required:
            raise ApiError(400, ErrorCode.BAD_REQUEST, "a JSON body is required")
        return None
    if request.mimetype != "application/json":
        raise ApiError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                       "send the body as application/json")
    try:
        return msgspec.json.decode(raw, type=schema)
    except msgspec.ValidationError as exc:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"invalid body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"body is not valid JSON: {exc}") from None


def int_param(
    args: Mapping[str, str],
    name: str,
    *,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer query parameter; 400 naming it when missing, malformed or out of range."""
    raw = args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ApiError(400, ErrorCode.BAD_REQUEST, f"query parameter {name!r} is required")
        return default
    if _INTEGER.match(raw) is None:
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       f"query parameter {name!r} must be an integer (ASCII digits)")
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       f"query parameter {name!r} must be between {minimum} and {maximum}")
    return value


def optional_int_param(args: Mapping[str, str], name: str, *, minimum: int = 1) -> int | None:
    if args.get(name) in (None, ""):
        return None
    return int_param(args, name, minimum=minimum, maximum=2**53 - 1)


def id_list_param(args: Mapping[str, str], name: str, *, most: int) -> list[int]:
    """A comma-separated list of positive ids (400 when malformed or longer than ``most``)."""
    raw = args.get(name)
    if not raw:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"query parameter {name!r} is required")
    parts = [p.strip(" ") for p in raw.split(",") if p.strip(" ")]
    if len(parts) > most:
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"{name!r} takes at most {most} ids")
    if any(_INTEGER.match(p) is None for p in parts):
        raise ApiError(400, ErrorCode.BAD_REQUEST,
                       f"query parameter {name!r} must be comma-separated integers")
    ids = [int(p) for p in parts]
    if not ids or any(not 0 < i < 2**53 for i in ids):
        raise ApiError(400, ErrorCode.BAD_REQUEST, f"query parameter {name!r} has a bad id")
    return ids
