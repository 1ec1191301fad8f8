"""Moved to :mod:`trionet.core.errors`; this import path stays for integrators."""

from .core.errors import ApiError, CloseCode, ErrorCode, FrameError, StoreUnavailable, TrionetError

__all__ = ["ApiError", "CloseCode", "ErrorCode", "FrameError", "StoreUnavailable", "TrionetError"]
