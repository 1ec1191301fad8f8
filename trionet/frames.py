"""Moved to :mod:`trionet.core.frames`; this path stays while trionet.store.postgres imports it."""

from .core.frames import (
    INVITE_SUBTYPE,
    RESERVED_NOTIFICATION_KEYS,
    message_frame,
    notification_frame,
)

__all__ = ["INVITE_SUBTYPE", "RESERVED_NOTIFICATION_KEYS", "message_frame", "notification_frame"]
