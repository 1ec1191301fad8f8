"""HTTP and WebSocket endpoints, one blueprint per concern."""

from __future__ import annotations

from quart import request
from quart_trio import QuartTrio
from werkzeug.routing import IntegerConverter

from ..services import services_of
from . import accounts, blocks, groups, history, notifications, ops, presence, server, web
from .common import check_origin
from .ws import WebSocketEndpoint

__all__ = ["register_blueprints"]


class AsciiIntegerConverter(IntegerConverter):
    """``<int:...>`` in a path: ASCII digits only (werkzeug's ``\\d`` takes any script's)."""

    regex = r"[0-9]+"


def register_blueprints(app: QuartTrio) -> None:
    """Attach every trionet endpoint to ``app``."""
    app.url_map.converters["int"] = AsciiIntegerConverter
    for module in (accounts, ops, history, groups, notifications, presence, blocks, server, web):
        app.register_blueprint(module.bp)
    # /ws is served by a lean ASGI endpoint in front of Quart (see api/ws.py)
    app.asgi_app = WebSocketEndpoint(app.asgi_app, services_of(app))  # type: ignore[assignment, arg-type]

    @app.before_request
    async def _refuse_cross_site() -> None:
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            check_origin()
