"""What PostgreSQL cannot hold in ``text``: the NUL character (U+0000).

The WebSocket protocol lets a client put ``\\u0000`` in ``content`` or ``client_id``, and a
single such record would fail its whole batch (every retry too). The PostgreSQL store writes
U+FFFD (the replacement character) in its place, in every text it stores, and looks values up
the same way; the SQLite store keeps the NUL.
"""

from __future__ import annotations

__all__ = ["clean", "clean_or_none"]

NUL = "\x00"
REPLACEMENT = "\ufffd"


def clean(text: str) -> str:
    """``text`` as PostgreSQL can store it (NUL replaced)."""
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def clean_or_none(text: str | None) -> str | None:
    return None if text is None else clean(text)
