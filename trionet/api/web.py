"""The chat web page: ``GET /`` and its files under ``/static/``, with a strict CSP.

The page is plain HTML, CSS and JavaScript modules shipped inside the package
(``trionet/static/``); there is no build step. Its assets are served by the app's own static
route (``/static/<file>``); this blueprint serves the page at ``/`` and puts the security headers
on both.
"""

from __future__ import annotations

import re
from pathlib import Path

from quart import Blueprint, Response, request, send_from_directory

from ..realtime.frameschema import frame_schema
from .common import json_response, services

__all__ = ["STATIC_DIR", "bp", "content_security_policy"]

bp = Blueprint("web", __name__)

#: where the page's files live inside the package
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: a Host header that may be echoed into the CSP (anything else: same-origin ``'self'`` only)
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    """The page's CSP: only this origin's scripts, styles and images, no inline code, no framing.

    ``connect-src`` also names the WebSocket URLs of ``host`` (older browsers do not count
    ``ws:``/``wss:`` as ``'self'``); a ``host`` that is not a plain host name is left out.
    """
    connect = "'self'"
    if host and _SAFE_HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        f"connect-src {connect}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


@bp.get("/")
async def index() -> Response:
    """The chat page."""
    return await send_from_directory(STATIC_DIR, "index.html")


@bp.after_app_request
async def _page_headers(response: Response) -> Response:
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers["Content-Security-Policy"] = content_security_policy(
            request.headers.get("Host"))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        # revalidate each time (ETag / Last-Modified): a new version is picked up at once
        response.headers["Cache-Control"] = "no-cache"
        response.headers.pop("Expires", None)
    return response


@bp.get("/schema/frames.json")
async def frames_schema() -> Response:
    """No authentication. The JSON Schema of every WebSocket frame, this app's own types
    included (trionet.realtime.frameschema)."""
    svc = services()
    schema = svc.frame_schema
    if schema is None:
        schema = svc.frame_schema = frame_schema(svc.message_types)
    return json_response(schema)
