"""HTTP and WebSocket endpoints, one blueprint per concern."""

from __future__ import annotations

from quart import request
from quart_trio import QuartTrio

from .common import check_origin

__all__ = ["register_blueprints"]


def register_blueprints(app: QuartTrio) -> None:
    """Attach every trionet endpoint to ``app``."""
    from . import accounts, ops, ws

    for module in (accounts, ops, ws):
        app.register_blueprint(module.bp)

    @app.before_request
    async def _refuse_cross_site() -> None:
        if request.method in ("POST", "PUT", "PATCH", "DELETE"):
            check_origin()
