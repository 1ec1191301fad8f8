"""Moved to :mod:`trionet.core.clock`; this path stays while trionet.store.postgres imports it."""

from .core.clock import now_iso

__all__ = ["now_iso"]
