"""trionet: a real-time messaging server (WebSocket chat and notifications) on trio."""

from __future__ import annotations

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "__version__", "create_app"]

__version__ = "0.1.0"
