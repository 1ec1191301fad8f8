"""ASGI middleware around the app: request-level limits and HTTP/1.1 keep-alive hygiene."""

from __future__ import annotations

from .keepalive import BodyBeforeResponse
from .limits import AddressLimit

__all__ = ["AddressLimit", "BodyBeforeResponse"]
