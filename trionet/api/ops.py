"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import trio
from quart import Blueprint, Response, request

from ..auth import bearer, same_secret
from ..core.errors import ApiError, ErrorCode, StoreUnavailable
from ..interfaces import Handshake
from .common import json_response, services

__all__ = ["bp", "count_trio_tasks"]

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
async def readyz() -> Response:
    svc = services()
    try:
        await svc.store.ping()
    except StoreUnavailable as exc:
        raise ApiError(503, ErrorCode.UNAVAILABLE, f"database not ready: {exc}") from None
    if not svc.started:
        raise ApiError(503, ErrorCode.UNAVAILABLE, "starting")
    if not svc.backplane.ready:
        raise ApiError(503, ErrorCode.UNAVAILABLE,
                       "backplane not ready: Redis is unreachable, reconnecting")
    return json_response({"status": "ready"})


def count_trio_tasks() -> int:
    """Every live task of the running trio loop (walks the task tree from its root)."""
    root = trio.lowlevel.current_root_task()
    if root is None:
        return 0
    count, stack = 0, [root]
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


@bp.get("/metrics")
async def metrics() -> Response:
    svc = services()
    key = svc.settings.api_key
    if key is not None:
        given = bearer(Handshake(headers=dict(request.headers), cookies={}))
        if given is None or not same_secret(given, key):
            raise ApiError(401, ErrorCode.UNAUTHORIZED, "the server API key is required")
    svc.metrics.trio_tasks.set(count_trio_tasks())
    return Response(svc.metrics.render(), content_type="text/plain; version=0.0.4")
