"""Error codes, close codes and the exceptions trionet raises.

Exception tree::

    TrionetError
    ├── ApiError            an HTTP request is refused (status + code + message)
    ├── FrameError          a WebSocket frame is refused (code + message), connection stays open
    └── StoreUnavailable    the database is locked, busy or unreachable: retry later (HTTP 503)
"""

from __future__ import annotations

import enum

__all__ = ["ApiError", "CloseCode", "ErrorCode", "FrameError", "StoreUnavailable", "TrionetError"]


class CloseCode(enum.IntEnum):
    """WebSocket close codes trionet sends."""

    #: The server is shutting down or restarting; reconnect (with ``since``) shortly.
    GOING_AWAY = 1001
    #: Sustained abuse: 10 s of continuous ``rate_limited`` frames.
    POLICY_VIOLATION = 1008
    #: An inbound message exceeded ``TRIONET_MAX_MESSAGE_BYTES``.
    MESSAGE_TOO_BIG = 1009
    #: An unexpected server fault on this connection.
    INTERNAL_ERROR = 1011
    #: This node may have missed frames for the connection (its backplane was down); reconnect
    #: with ``since`` at once to resume.
    SERVICE_RESTART = 1012
    #: The session behind this connection was logged out or expired; log in again.
    SESSION_ENDED = 4001
    #: The client did not read fast enough and its send queue filled up; reconnect with ``since``.
    SLOW_CONSUMER = 4008


class ErrorCode(enum.StrEnum):
    """The ``code`` of an error frame or an HTTP error body."""

    INVALID_JSON = "invalid_json"
    INVALID_MESSAGE = "invalid_message"
    BINARY_FRAME = "binary_frame"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    NOT_MEMBER = "not_member"
    FORBIDDEN = "forbidden"
    UNKNOWN_USER = "unknown_user"
    #: one of the two users blocks the other (HTTP 403)
    BLOCKED = "blocked"
    RATE_LIMITED = "rate_limited"
    CLIENT_ID_REUSED = "client_id_reused"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"
    #: no such record (a ``read`` naming a message of another conversation; HTTP 404)
    NOT_FOUND = "not_found"
    # HTTP-only codes
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    TOO_MANY_REQUESTS = "too_many_requests"
    PAYLOAD_TOO_LARGE = "payload_too_large"


class TrionetError(Exception):
    """Base of trionet's own exceptions."""


class ApiError(TrionetError):
    """An HTTP request is refused; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class FrameError(TrionetError):
    """A client frame is refused; answered with an ``error`` frame."""

    def __init__(self, code: ErrorCode, message: str, client_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_id = client_id


class StoreUnavailable(TrionetError):
    """The database could not serve a call now (locked by another process, busy, unreachable).

    HTTP handlers answer it with 503 and ``Retry-After``; nothing was changed.
    """
